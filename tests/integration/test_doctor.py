"""`distrokernels doctor`: passes on a working machine; each check fails with its fix."""

import os
import subprocess
import sys
from pathlib import Path

from .conftest import run_cli, variant_kernelspec
from .test_gc import orphan_of_a_killed_owner


def doctor(**env) -> subprocess.CompletedProcess:
    return run_cli("doctor", env=env)


def test_doctor_passes_on_a_working_machine(installed_kernel):
    result = doctor()
    assert result.returncode == 0, result.stdout
    assert "all checks passed" in result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("ok    engine") and "Docker Engine" in line for line in lines)
    assert any(line.startswith(f"ok    kernel {installed_kernel}: ") for line in lines)
    assert any(line.startswith(f"ok    launcher of {installed_kernel}") for line in lines)
    assert any(line.startswith("ok    runtime folder") for line in lines)


def test_doctor_says_how_to_start_an_engine_that_does_not_answer(installed_kernel):
    result = doctor(DOCKER_HOST="unix:///nonexistent/docker.sock")
    assert result.returncode == 1
    assert "FAIL  engine unix:///nonexistent/docker.sock: the Docker engine is not reachable" in (
        result.stdout
    )
    assert "fix: start it" in result.stdout


def test_doctor_names_a_kernel_whose_image_is_gone_and_its_reinstall(installed_kernel):
    def gone(spec):
        config = spec["metadata"]["kernel_provisioner"]["config"]
        config["image"], config["image_id"] = "distrokernels/deleted:0", ""

    name = variant_kernelspec(installed_kernel, "dk-test-doctor-gone", gone)
    try:
        result = doctor()
    finally:
        run_cli("remove", name)
    assert result.returncode == 1
    assert f"FAIL  kernel {name}: its image distrokernels/deleted:0 is not on its engine" in (
        result.stdout
    )
    assert f"fix: distrokernels install debian:bookworm --name {name} --replace" in result.stdout


def test_doctor_finds_an_orphan_and_suggests_gc(installed_kernel, engine, tmp_path):
    orphan_of_a_killed_owner(installed_kernel, tmp_path, engine)
    try:
        result = doctor()
    finally:
        run_cli("gc")
    assert result.returncode == 1
    assert "FAIL  orphans on the default Docker engine: 1 kernel container(s)" in result.stdout
    assert "fix: distrokernels gc" in result.stdout


def test_doctor_says_when_the_jupyter_on_path_cannot_see_distro_kernels(installed_kernel, tmp_path):
    """A `jupyter` from an environment without distrokernels hides the distro kernels."""
    elsewhere = tmp_path / "bin"
    elsewhere.mkdir()
    jupyter = elsewhere / "jupyter"
    jupyter.write_text("#!/usr/bin/python3\nimport sys\nsys.exit('an entry point')\n")
    jupyter.chmod(0o755)
    result = doctor(PATH=f"{elsewhere}:{os.environ['PATH']}")
    assert result.returncode == 1
    assert (
        f"FAIL  jupyter on PATH ({jupyter}): its environment has no distrokernels provisioner"
        in result.stdout
    )
    assert "fix: /usr/bin/python3 -m pip install distrokernels" in result.stdout
    ours = Path(sys.executable).parent
    result = doctor(PATH=f"{ours}:{os.environ['PATH']}")
    assert f"ok    jupyter on PATH ({ours / 'jupyter'})" in result.stdout
