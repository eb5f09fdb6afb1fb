"""As a real user: not root, only in the 'docker' group, with their own venv.

Root hides ownership bugs (everything root writes is root's anyway), so this test
creates an unprivileged user and proves engine access, the cache-hit install, the
kernel's uid and the ownership of what it writes, all as that user.
"""

import shutil
import signal
import subprocess
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from . import servers
from .conftest import BASE
from .users import CODE, as_user, assert_kernel_runs_as_user, install_checkout, make_user

DOCKERD = "unix:///var/run/docker.sock"

USER = "dk-tester"
SECOND_USER = "dk-tester2"

# As VS Code starts a kernel: kernel.json's argv as a child, on a TCP connection file.
ARGV_SCRIPT = textwrap.dedent(
    f"""
    import os, subprocess, sys, tempfile
    from jupyter_client.blocking import BlockingKernelClient
    from jupyter_client.connect import write_connection_file
    from jupyter_client.kernelspec import KernelSpecManager

    argv = KernelSpecManager().get_kernel_spec(sys.argv[1]).argv
    path, _ = write_connection_file(os.path.join(tempfile.mkdtemp(), "k.json"), ip="127.0.0.1")
    process = subprocess.Popen(
        [arg.replace("{{connection_file}}", path) for arg in argv], cwd=sys.argv[2]
    )
    client = BlockingKernelClient(connection_file=path)
    client.load_connection_file()
    client.start_channels()
    client.wait_for_ready(timeout=60)
    out = []
    def hook(message):
        if message["msg_type"] == "stream":
            out.append(message["content"]["text"])
    client.execute_interactive({CODE!r}, output_hook=hook, timeout=60)
    client.shutdown()
    print("".join(out), end="")
    print("EXIT", process.wait(timeout=30))
    """
)


@pytest.fixture(scope="module")
def user_env(engine, base_image):
    """A user in the docker group, and a venv of this checkout they can execute."""
    account, work = make_user(USER, docker_group=True)
    install_checkout()
    return account, work


def test_user_in_docker_group_installs_and_runs_a_kernel_owning_its_files(user_env):
    account, work = user_env
    install = as_user(account, "distrokernels", "install", BASE, "--replace", "--no-pull")
    assert install.returncode == 0, install.stderr
    assert install.stdout.strip() == "distro-debian-12"
    assert_kernel_runs_as_user(account, work, "distro-debian-12")


def test_user_in_docker_group_runs_a_swarm_kernel_owning_its_files(user_env, swarm):
    account, work = user_env
    install = as_user(
        account, "distrokernels", "install", BASE, "--backend", "swarm", "--name", "swarm-12",
        "--replace", "--no-pull",
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    assert_kernel_runs_as_user(account, work, "swarm-12")


def test_user_in_docker_group_runs_a_kernel_through_argv_as_vs_code_does(user_env, engine):
    account, work = user_env
    install = as_user(account, "distrokernels", "install", BASE, "--replace", "--no-pull")
    assert install.returncode == 0, install.stderr
    before = {container.id for container in engine.kernel_containers()}
    assert_kernel_runs_as_user(account, work, "distro-debian-12", ARGV_SCRIPT, ("EXIT", "0"))
    assert {container.id for container in engine.kernel_containers()} <= before


def test_user_outside_docker_group_is_told_how_to_get_access(user_env):
    account, _ = user_env
    subprocess.run(["gpasswd", "--delete", USER, "docker"], check=True, capture_output=True)
    try:
        result = as_user(account, "distrokernels", "list")
        # Pointed at dockerd (not at a Podman of their own, which `auto` would pick).
        gc = as_user(account, "distrokernels", "gc", env={"DOCKER_HOST": DOCKERD})
        doctor = as_user(account, "distrokernels", "doctor", env={"DOCKER_HOST": DOCKERD})
    finally:
        subprocess.run(["usermod", "--append", "--groups", "docker", USER], check=True)
    assert result.returncode == 0  # listing works without the engine
    assert gc.returncode == 3
    assert "docker' group" in gc.stderr
    assert doctor.returncode == 1
    assert f"FAIL  engine {DOCKERD}: permission denied" in doctor.stdout
    assert "fix: add your user to the 'docker' group" in doctor.stdout


@pytest.mark.security
def test_one_users_remove_cannot_break_another_users_kernel(user_env):
    """Both install the same request (one image on the shared engine); the first removes
    their kernel with its image: the second's kernel still runs."""
    first, _ = user_env
    second, work = make_user(SECOND_USER, docker_group=True)
    for account in (first, second):
        install = as_user(account, "distrokernels", "install", BASE, "--replace", "--no-pull")
        assert install.returncode == 0, install.stderr
    removed = as_user(first, "distrokernels", "remove", "distro-debian-12", "--image")
    assert removed.returncode == 0, removed.stderr
    assert "kept image" in removed.stderr and "references of other users" in removed.stderr
    assert_kernel_runs_as_user(second, work, "distro-debian-12")


@pytest.mark.security
def test_concurrent_installs_of_one_request_and_one_users_remove_image_break_nobody(user_env):
    """Two users build one request at the same moment (two images, one tag); the second
    removes theirs with its image: the first's kernel runs the image it recorded."""
    first, work = user_env
    second, _ = make_user(SECOND_USER, docker_group=True)
    install = ("distrokernels", "install", BASE, "--name", "dk-race", "--pip", "six")
    install += ("--rebuild", "--replace", "--no-pull")
    with ThreadPoolExecutor(2) as both:
        results = list(both.map(lambda account: as_user(account, *install), (first, second)))
    for result in results:
        assert result.returncode == 0, result.stderr
    removed = as_user(second, "distrokernels", "remove", "dk-race", "--image")
    assert removed.returncode == 0, removed.stderr
    try:
        assert_kernel_runs_as_user(first, work, "dk-race")
    finally:
        as_user(first, "distrokernels", "remove", "dk-race", "--image")


@pytest.mark.security
def test_a_runtime_folder_another_user_made_first_does_not_stop_the_users_kernels(user_env):
    account, work = user_env
    squatted = Path(f"/tmp/distrokernels-{account.pw_uid}")
    shutil.rmtree(squatted, ignore_errors=True)
    squatted.mkdir(mode=0o700)  # root's, as another user would make it before them
    no_session = {"XDG_RUNTIME_DIR": ""}  # no login session: the /tmp fallback
    try:
        install = as_user(account, "distrokernels", "install", BASE, "--replace", "--no-pull",
                          env=no_session)  # fmt: skip
        assert install.returncode == 0, install.stderr
        assert f"{squatted} is not yours (uid 0 made it); your kernels use {squatted}-" in (
            install.stderr
        )
        assert_kernel_runs_as_user(account, work, "distro-debian-12", env=no_session)
        fallbacks = list(Path("/tmp").glob(f"{squatted.name}-*"))
        assert len(fallbacks) == 1 and fallbacks[0].stat().st_uid == account.pw_uid
    finally:
        shutil.rmtree(squatted, ignore_errors=True)
        for fallback in Path("/tmp").glob(f"{squatted.name}-*"):
            shutil.rmtree(fallback, ignore_errors=True)


def test_users_warm_kernels_are_their_own(user_env, engine, installed_kernel, tmp_path):
    """Root's server keeps a warm container of a kernelspec of the same name; the user's
    server starts cold, then warm in a container of its own, as the user, and root's
    warm container is still waiting for root."""
    account, work = user_env
    install = as_user(account, "distrokernels", "install", BASE, "--replace", "--no-pull")
    assert install.returncode == 0, install.stderr
    root_server, _, roots = servers.start_lingering(installed_kernel, tmp_path)
    try:
        (work / "owned.txt").unlink(missing_ok=True)
        run = as_user(account, "python", "-c", servers.SERVER, "distro-debian-12", str(work), "2")
        assert run.returncode == 0, run.stderr
        starts, users = servers.parse(run.stdout)
        assert [start["warm"] for start in starts] == [False, True]
        for start in starts:
            assert start["output"] == [str(account.pw_uid), str(work)]
            assert start["container"] not in roots
        made = (work / "owned.txt").stat()
        assert (made.st_uid, made.st_gid) == (account.pw_uid, account.pw_gid)
        assert set(roots) <= {c.id for c in engine.kernel_containers()}  # still waiting
        assert not set(users) & {c.id for c in engine.kernel_containers()}  # exit took them
    finally:
        root_server.send_signal(signal.SIGINT)  # a clean exit: its pool goes with it
        root_server.wait(timeout=60)
    assert not set(roots) & {c.id for c in engine.kernel_containers()}
