"""Rendering the dependency layer's Dockerfile (no engine)."""

from pathlib import Path

import pytest

from distrokernels.distros import OsRelease
from distrokernels.dockerfiles import KERNEL_PYTHON, plan_layer, render_dockerfile
from distrokernels.errors import NoRecipe
from distrokernels.wheels import ipykernel_stack

DATA = Path(__file__).parent.parent / "data" / "os-release"


def test_debian_without_python_installs_it_with_apt_and_cleans_lists():
    plan = plan_layer("sha256:abc", OsRelease.parse((DATA / "debian-12").read_text()))
    text = plan.dockerfile(ipykernel_stack((3, 11)))
    assert text.startswith("# Generated")
    assert "FROM sha256:abc AS system" in text
    assert "DEBIAN_FRONTEND=noninteractive" in text
    assert "apt-get install -y --no-install-recommends python3" in text
    assert "rm -rf /var/lib/apt/lists/*" in text
    assert "--break-system-packages" not in text
    assert "/usr/bin/python3 -m venv --without-pip /opt/distrokernels" in text
    assert "ipykernel==7.4.0" in text
    assert "COPY --from=venv /opt/distrokernels /opt/distrokernels" in text


def test_image_with_python_gets_only_the_venv():
    plan = plan_layer("img", OsRelease.parse("ID=plan9\n"), python_path="/usr/local/bin/python3")
    text = plan.dockerfile(ipykernel_stack((3, 12)))
    assert "RUN /usr/local/bin/python3 -m venv" in text
    assert "apt-get" not in text


def test_unknown_distro_without_python_names_the_family_and_how_to_add_a_recipe():
    with pytest.raises(NoRecipe) as caught:
        plan_layer("img", OsRelease.parse("ID=plan9\nID_LIKE=bell\n"))
    assert "plan9" in str(caught.value)
    assert "recipes.py" in str(caught.value)


def test_system_stage_alone_is_rendered_before_python_version_is_known():
    text = render_dockerfile("base", "/usr/bin/python3", "apt-get install python3")
    assert "AS system" in text
    assert "AS venv" not in text


def test_wheels_never_stay_in_the_final_image():
    text = render_dockerfile("base", "/usr/bin/python3", "", ("ipykernel==7.4.0",))
    final_stage = text.rsplit("FROM system\n", 1)[1]
    assert "wheels" not in final_stage
    assert f"{KERNEL_PYTHON} " in text


def test_labels_are_one_instruction_with_quoted_values():
    text = render_dockerfile(
        "base", "/usr/bin/python3", "", ("ipykernel",), {"a.b": 'say "hi"', "c": "x y"}
    )
    label_lines = [line for line in text.splitlines() if line.startswith("LABEL")]
    assert len(label_lines) == 1
    assert 'a.b="say \\"hi\\""' in text
