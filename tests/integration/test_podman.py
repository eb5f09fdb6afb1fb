"""Rootless Podman, as a user who is not in the docker group and cannot reach dockerd.

The user has /etc/subuid and /etc/subgid ranges (what an admin gives once) and runs
this checkout from their own venv. The core suites (lifecycle, security, faults, gc)
run again as that user with ``pytest --engine podman``: the same tests, on Podman.
"""

import shutil
import subprocess
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager

from distrokernels.engine import Engine

from .conftest import BASE, KERNEL, run_cli
from .users import (
    REPO,
    as_user,
    assert_kernel_runs_as_user,
    give_subordinate_ids,
    install_checkout,
    make_user,
    runtime_dir,
)

USER = "dk-podman"
SUITE = Path("/tmp/dk-podman-suite")  # a copy of the tests the user can read
CORE_SUITES = [
    "test_kernel_lifecycle.py",
    "test_security.py",
    "test_isolation.py",
    "test_faults.py",
    "test_gc.py",
    "test_agent.py",
]


@pytest.fixture(scope="module")
def podman_user():
    """The user, their venv, their Podman service and Debian 12 in their storage."""
    if not shutil.which("podman"):
        pytest.fail("podman is not installed: dev/setup installs it from Debian")
    account, work = make_user(USER, docker_group=False)
    give_subordinate_ids(account)
    info = as_user(account, "podman", "info")
    assert info.returncode == 0, f"rootless Podman does not work on this machine: {info.stderr}"
    install_checkout("pytest", "pytest-asyncio", "psutil", "papermill")
    if as_user(account, "podman", "image", "exists", BASE).returncode != 0:
        bootstrap = as_user(account, "distrokernels", "bootstrap", BASE, "--engine", "podman")
        assert bootstrap.returncode == 0, bootstrap.stderr  # mmdebstrap's unshare mode
    yield account, work
    as_user(account, "pkill", "-u", str(account.pw_uid), "-f", "podman system service")


def test_user_who_cannot_reach_dockerd_runs_distro_kernels_on_podman(podman_user):
    account, work = podman_user
    denied = as_user(account, "docker", "info")
    assert denied.returncode != 0
    assert "permission denied" in (denied.stdout + denied.stderr).lower()
    # No --engine: dockerd is closed to this user, so `auto` picks their Podman.
    install = as_user(account, "distrokernels", "install", BASE, "--replace")
    assert install.returncode == 0, install.stderr
    assert "engine: rootless Podman" in install.stderr
    if "pids" not in _controllers(account):  # cgroup v1: nothing delegated
        assert "cannot apply pids_limit=1024" in install.stderr
    listed = as_user(account, "distrokernels", "list")
    assert "podman (default)" in listed.stdout, listed.stdout
    assert_kernel_runs_as_user(account, work, KERNEL)
    left = as_user(account, "podman", "ps", "--all", "--quiet")
    assert left.stdout.strip() == ""


def test_core_suites_pass_on_rootless_podman(podman_user):
    account, _ = podman_user
    shutil.rmtree(SUITE, ignore_errors=True)
    SUITE.mkdir()
    shutil.copytree(REPO / "tests", SUITE / "tests")
    shutil.copy(REPO / "pyproject.toml", SUITE)
    subprocess.run(["chown", "-R", f"{account.pw_uid}:{account.pw_gid}", str(SUITE)], check=True)
    run = as_user(
        account, "sh", "-c",
        f"cd {SUITE} && python -m pytest -p no:cacheprovider --engine podman -ra -q "
        + " ".join(f"tests/integration/{name}" for name in CORE_SUITES),
        timeout=1800,
    )  # fmt: skip
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr
    failures = run.stdout[run.stdout.find("= FAILURES =") :]  # before the warnings' noise
    assert run.returncode == 0, failures[:8000] + run.stdout[-1500:] + run.stderr[-2000:]
    assert " passed" in summary and "failed" not in summary, summary


def test_copy_takes_a_kernel_image_from_dockerd_to_a_users_podman(podman_user, installed_kernel):
    account, _ = podman_user
    as_user(account, "distrokernels", "list")  # the user's service runs (started if need be)
    podman_url = f"unix://{runtime_dir(account)}/podman/podman.sock"
    copied = run_cli("copy", installed_kernel, "--to", podman_url)
    assert copied.returncode == 0, copied.stderr
    image_id = _kernelspec_image_id(installed_kernel)
    assert Engine.connect(podman_url).find_image(image_id) is not None


def _kernelspec_image_id(name: str) -> str:
    spec = KernelSpecManager().get_kernel_spec(name)
    return spec.metadata["kernel_provisioner"]["config"]["image_id"]


def _controllers(account) -> str:
    return as_user(account, "podman", "info", "--format", "{{.Host.CgroupControllers}}").stdout
