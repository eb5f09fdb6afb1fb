"""A notebook cannot escape its kernel: each attack a hostile notebook tried, as a test.

Kernels served warm and cold by one server (a MultiKernelManager, as Jupyter's) try to
read each other's keys and sockets, to make the host write through links they plant,
and to rewrite kernelspecs and the user's start-up files when their mounts hold the
home folder.
"""

import asyncio
import json
import os
from pathlib import Path

import pytest
from jupyter_client.manager import AsyncKernelManager

from distrokernels.pool import POOL
from distrokernels.runtime import runtime_root

from .agent import wait_for_ready_warm
from .conftest import Server, run_code, warm

pytestmark = pytest.mark.security

# Run in one kernel against another: its connection file, a socket, and every runtime
# folder a container might find.
SNOOP = r"""
import glob, json, os, socket
from ipykernel.connect import get_connection_file
def _try(action):
    try:
        action()
        return "ok"
    except OSError as error:
        return type(error).__name__
def _connect(path):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
    finally:
        s.close()
print(json.dumps({
    "key": _try(lambda: open(%(connection_file)r).read()),
    "socket": _try(lambda: _connect(%(socket)r)),
    "root": _try(lambda: os.listdir(%(root)r)),
    "found": sorted(glob.glob("/tmp/distrokernels*/*") + glob.glob("/run/user/*/distrokernels/*")),
    "own": sorted(os.listdir(os.path.dirname(get_connection_file()))),
}))
"""


def snoop_code(victim: AsyncKernelManager) -> str:
    return SNOOP % {
        "connection_file": victim.connection_file,
        "socket": f"{victim.ip}-{victim.shell_port}",
        "root": str(runtime_root()),
    }


def assert_sees_only_itself(seen: dict) -> None:
    assert seen["key"] == seen["socket"] == seen["root"] == "FileNotFoundError", seen
    assert seen["found"] == []
    own = set(seen["own"])
    assert "kernel.json" in own and all(n == "kernel.json" or n.startswith("k-") for n in own)


async def test_warm_and_cold_kernels_cannot_reach_each_others_key_or_sockets(
    server, installed_kernel
):
    notebooks = server.root / "notebooks"
    cold_id, _, was_warm = await server.start(installed_kernel, notebooks)
    assert not was_warm
    await warm(installed_kernel)
    warm_id, _, was_warm = await server.start(installed_kernel, notebooks)
    assert was_warm
    cold, hot = server.manager.get_kernel(cold_id), server.manager.get_kernel(warm_id)
    assert_sees_only_itself(json.loads(await run_code(hot, snoop_code(cold))))
    assert_sees_only_itself(json.loads(await run_code(cold, snoop_code(hot))))
    # A restart served warm: the kept endpoints, and still nothing of the other kernel.
    await warm(installed_kernel)
    await server.manager.restart_kernel(cold_id, now=True)
    assert_sees_only_itself(json.loads(await run_code(cold, snoop_code(hot))))


# Every name the host opens or removes, in the kernel's own folder and in every warm
# slot it can find, replaced by a link to a host file outside the container's mounts.
PLANT = r"""
import glob, os
from ipykernel.connect import get_connection_file
planted = []
for folder in [os.path.dirname(get_connection_file())] + glob.glob(%(root)r + "/w-*"):
    for name in os.listdir(folder) + ["claim", "kernel.json"]:
        path = os.path.join(folder, name)
        try:
            if os.path.lexists(path):
                os.rename(path, path + ".old")
            os.symlink(%(victim)r, path)
            planted.append(name)
        except OSError:
            pass
print(sorted(planted))
"""


@pytest.mark.parametrize("restart_warm", [True, False], ids=["warm restart", "cold restart"])
async def test_links_a_kernel_plants_in_its_folder_are_never_followed_by_the_host(
    server, installed_kernel, tmp_path_factory, restart_warm
):
    victim = tmp_path_factory.mktemp("outside") / "victim.txt"
    victim.write_text("mine\n")
    notebooks = server.root / "notebooks"
    await server.start(installed_kernel, notebooks)
    await warm(installed_kernel)
    kernel_id, _, was_warm = await server.start(installed_kernel, notebooks)
    assert was_warm
    manager = server.manager.get_kernel(kernel_id)
    planted = await run_code(manager, PLANT % {"victim": str(victim), "root": str(runtime_root())})
    assert "claim" in planted and "kernel.json" in planted
    if restart_warm:
        await warm(installed_kernel)
    else:
        manager.provisioner.pool_size = 0  # this restart: cold, in a new io folder
    await server.manager.restart_kernel(kernel_id, now=True)
    assert await run_code(manager, "print(sorted(__import__('os').listdir('/run/distrokernels')))")
    await server.manager.shutdown_kernel(kernel_id, now=True)
    assert victim.read_text() == "mine\n"
    assert not [p for p in runtime_root().iterdir() if p.is_symlink() and not p.exists()]


# What a notebook whose mounts hold the home folder tries to change.
PROTECTED = [
    ".bashrc",
    ".bash_profile",  # not there: must not be created either
    ".profile",
    ".ssh/authorized_keys",
    "bin/ls",  # ~/bin is on PATH: not a notebook's to write
    ".config/autostart/evil.desktop",
    ".jupyter/jupyter_server_config.py",
    ".ipython/profile_default/startup/00-evil.py",
    ".local/share/jupyter/kernels/victim/kernel.json",
    "venv/share/jupyter/kernels/victim2/kernel.json",  # a kernelspec on JUPYTER_PATH
]
OWN = ["notebooks/out.txt", "data.csv"]  # the notebook's own files stay writable
TRY_WRITE = r"""
import errno, json, os
result = {}
for path in %(paths)r:
    path_on_host = os.path.join(%(home)r, path)
    try:
        os.makedirs(os.path.dirname(path_on_host), exist_ok=True)
        with open(path_on_host, "a") as stream:
            stream.write("# written by a kernel\n")
        result[path] = "written"
    except OSError as error:
        result[path] = errno.errorcode[error.errno]
print(json.dumps(result))
"""


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A home folder with start-up files, Jupyter's and IPython's configuration, a
    kernelspec in it, and an environment with a kernelspec on JUPYTER_PATH."""
    home = tmp_path / "home"
    for path in PROTECTED + OWN:
        if path != ".bash_profile" and not path.startswith(".config/autostart"):
            (home / path).parent.mkdir(parents=True, exist_ok=True)
            (home / path).write_text("original\n")
    (home / ".config").mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv(
        "JUPYTER_PATH", f"{home}/venv/share/jupyter{os.pathsep}{os.environ['JUPYTER_PATH']}"
    )
    return home


def assert_only_own_files_changed(home: Path, result: dict) -> None:
    assert {path: result[path] for path in OWN} == dict.fromkeys(OWN, "written")
    refused = {path: result[path] for path in PROTECTED}
    assert refused == dict.fromkeys(PROTECTED, "EROFS"), refused
    for path in PROTECTED:
        assert not (home / path).exists() or (home / path).read_text() == "original\n", path


async def test_a_cold_kernel_in_the_home_folder_changes_no_start_up_file_nor_kernelspec(
    installed_kernel, home
):
    manager = AsyncKernelManager(kernel_name=installed_kernel)
    await manager.start_kernel(cwd=str(home))
    try:
        paths = PROTECTED + OWN
        result = json.loads(
            await run_code(manager, TRY_WRITE % {"paths": paths, "home": str(home)})
        )
    finally:
        await manager.shutdown_kernel(now=True)
    assert_only_own_files_changed(home, result)


async def test_a_warm_kernel_whose_pool_root_is_home_changes_no_start_up_file_nor_kernelspec(
    installed_kernel, home, engine
):
    at_home = Server(home)
    try:
        await at_home.start(installed_kernel, home / "notebooks")
        await warm(installed_kernel)
        kernel_id, _, was_warm = await at_home.start(installed_kernel, home / "notebooks")
        assert was_warm
        paths = PROTECTED + OWN
        result = json.loads(
            await at_home.run(kernel_id, TRY_WRITE % {"paths": paths, "home": str(home)})
        )
    finally:
        await at_home.manager.shutdown_all(now=True)
        POOL.close()
    assert_only_own_files_changed(home, result)


async def test_a_warm_kernel_from_the_agent_reaches_no_other_kernel_and_changes_nothing_in_home(
    installed_kernel, home, agent
):
    """The warm-kernel agent's kernels (nbclient, papermill, consoles) hold to what a
    server's do: another kernel's key and sockets out of reach, home's files unwritable."""
    cold = AsyncKernelManager(kernel_name=installed_kernel)
    await cold.start_kernel(cwd=str(home))  # starts the agent, which warms the next one
    hot = AsyncKernelManager(kernel_name=installed_kernel)
    try:
        ready = await asyncio.to_thread(wait_for_ready_warm)
        await hot.start_kernel(cwd=str(home))
        assert hot.provisioner.container_id in ready  # served warm by the agent
        assert_sees_only_itself(json.loads(await run_code(hot, snoop_code(cold))))
        assert_sees_only_itself(json.loads(await run_code(cold, snoop_code(hot))))
        paths = PROTECTED + OWN
        result = json.loads(await run_code(hot, TRY_WRITE % {"paths": paths, "home": str(home)}))
    finally:
        for manager in (cold, hot):
            if manager.has_kernel:
                await manager.shutdown_kernel(now=True)
    assert_only_own_files_changed(home, result)
