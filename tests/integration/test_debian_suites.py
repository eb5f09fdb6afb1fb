"""Three Debian releases side by side, each bootstrapped without python3: the apt recipe
installs it, and each kernel runs its release's Python with the matching ipykernel pin."""

import pytest

from .conftest import run_cli, run_in_new_kernel

SUITES = [
    ("debian:bullseye", "distro-debian-11", "Python 3.9 (Debian 11)", "3.9", "6.31.0"),
    ("debian:bookworm", "distro-debian-12", "Python 3.11 (Debian 12)", "3.11", "7.4.0"),
    ("debian:trixie", "distro-debian-13", "Python 3.13 (Debian 13)", "3.13", "7.4.0"),
]


@pytest.mark.parametrize(("base", "name", "display", "python", "ipykernel"), SUITES)
async def test_each_suite_gives_a_kernel_with_its_python_and_pinned_ipykernel(
    engine, suite_kernels, base, name, display, python, ipykernel, tmp_path
):
    probe = engine.run_script(base, "command -v python3 || echo none")
    assert probe.strip() == "none", "the base must lack python3 to prove the apt recipe"

    install = suite_kernels[base]
    assert install.returncode == 0, install.stderr
    assert install.stdout.strip() == name
    listing = run_cli("list")
    assert display in listing.stdout

    output, reply, _ = await run_in_new_kernel(
        name,
        tmp_path,
        "import sys, ipykernel\nprint('%d.%d' % sys.version_info[:2], ipykernel.__version__)",
    )
    assert reply["status"] == "ok", output
    assert output.split() == [python, ipykernel]


def test_image_that_already_has_python3_gets_only_the_venv_layer(engine, base_image, tmp_path):
    tag = "distrokernels-test/bookworm-with-python:1"
    (tmp_path / "Dockerfile").write_text(
        f"FROM {base_image}\n"
        "RUN apt-get update && apt-get install -y --no-install-recommends python3 "
        "&& rm -rf /var/lib/apt/lists/*\n"
    )
    engine.build(tmp_path, tag=tag, progress=lambda line: None)
    try:
        dockerfile = run_cli("dockerfile", tag)
        assert dockerfile.returncode == 0, dockerfile.stderr
        assert "apt-get" not in dockerfile.stdout
        assert "RUN /usr/bin/python3 -m venv" in dockerfile.stdout
        install = run_cli("install", tag, "--name", "dk-test-with-python", "--replace")
        assert install.returncode == 0, install.stderr
        assert "installing Python" not in install.stderr
    finally:
        run_cli("remove", "dk-test-with-python", "--image")
        engine.remove_image(tag)
