"""Bad input gets one clear line, a distinct exit code, and leaves nothing half-done."""

import json
import uuid

import pytest

from distrokernels.engine import LABEL_PROBE

from .conftest import BASE, run_cli


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("distrokernels:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize("reference", ["Debian:Bookworm", "debian:bookworm\nRUN id", "$(id)"])
def test_malformed_image_reference_exits_2(reference):
    result = run_cli("install", reference)
    assert result.returncode == 2
    assert "not a valid image reference" in one_error_line(result)


@pytest.mark.parametrize("option", ["--lock", "--requirements"])
def test_missing_input_file_exits_2_with_one_line(option, tmp_path):
    result = run_cli("install", "debian:bookworm", option, str(tmp_path / "absent"))
    assert result.returncode == 2
    assert "cannot read" in one_error_line(result)


def test_bad_kernelspec_name_exits_2_before_any_build():
    result = run_cli("install", BASE, "--name", "../../etc/evil")
    assert result.returncode == 2
    assert "not a valid kernelspec name" in one_error_line(result)


def test_unreachable_engine_exits_3_and_says_how_to_start_it(tmp_path):
    result = run_cli("install", BASE, env={"DOCKER_HOST": f"unix://{tmp_path}/no.sock"})
    assert result.returncode == 3
    line = one_error_line(result)
    assert "not reachable" in line and "dockerd" in line


def test_unknown_image_exits_4(engine):
    # A registry on a closed loopback port: the pull fails at once, no traffic leaves.
    result = run_cli("install", "127.0.0.1:9/distrokernels-test/nosuch:1")
    assert result.returncode == 4
    assert "could not be pulled" in one_error_line(result)


def test_existing_kernelspec_is_not_overwritten_without_replace(installed_kernel):
    result = run_cli("install", BASE)
    assert result.returncode == 5
    line = one_error_line(result)
    assert "already exists" in line and "--replace" in line


def _image_from(engine, tmp_path, dockerfile: str) -> str:
    tag = f"distrokernels-test/{uuid.uuid4().hex[:8]}:1"
    (tmp_path / "Dockerfile").write_text(dockerfile)
    engine.build(tmp_path, tag=tag, progress=lambda line: None)
    return tag


def _kernelspec_names() -> set[str]:
    result = run_cli("list", "--json")
    return {row["name"] for row in json.loads(result.stdout)}


def test_failing_build_exits_6_with_the_step_output_and_registers_nothing(
    engine, base_image, tmp_path
):
    broken = _image_from(engine, tmp_path, f"FROM {base_image}\nRUN rm /usr/bin/apt-get\n")
    before_containers = {c["Id"] for c in engine.api.containers(all=True)}
    try:
        result = run_cli("install", broken, "--name", "dk-test-broken")
        assert result.returncode == 6
        line = one_error_line(result)
        assert "apt-get" in line and "not found" in line
        assert "dk-test-broken" not in _kernelspec_names()
        after_containers = {c["Id"] for c in engine.api.containers(all=True)}
        assert after_containers == before_containers
        assert engine.api.containers(all=True, filters={"label": LABEL_PROBE}) == []
    finally:
        engine.remove_image(broken)


def test_unknown_distro_without_python_exits_7_naming_the_distro(engine, base_image, tmp_path):
    odd = _image_from(
        engine,
        tmp_path,
        f"FROM {base_image}\nRUN printf 'ID=plan9\\nNAME=Plan9\\n' > /etc/os-release\n",
    )
    try:
        result = run_cli("install", odd)
        assert result.returncode == 7
        line = one_error_line(result)
        assert "plan9" in line and "recipe" in line
    finally:
        engine.remove_image(odd)


def test_removing_an_unknown_kernel_exits_5():
    result = run_cli("remove", "no-such-kernel")
    assert result.returncode == 5
    assert "distrokernels list" in one_error_line(result)


def test_list_shows_installed_kernel_with_distro_and_status(installed_kernel):
    result = run_cli("list")
    assert result.returncode == 0
    row = next(line for line in result.stdout.splitlines() if line.startswith(installed_kernel))
    assert "Python 3.11 (Debian 12)" in row and "built" in row


def test_copy_names_the_missing_kernel_and_the_unreachable_engine(installed_kernel):
    missing = run_cli("copy", "no-such-kernel", "--to", "tcp://127.0.0.1:9")
    assert missing.returncode == 5
    assert "no-such-kernel" in one_error_line(missing)

    # A closed loopback port: refused at once, no traffic leaves the machine.
    unreachable = run_cli("copy", installed_kernel, "--to", "tcp://127.0.0.1:9")
    assert unreachable.returncode == 3
    assert "not reachable" in one_error_line(unreachable)
