"""Warm kernels: a Jupyter server's second start of a kernelspec, and its restarts, are
served by a pre-started container, which must be indistinguishable from a cold one.

The server here is jupyter_client's AsyncMultiKernelManager with a root_dir, as
jupyter_server's MappingKernelManager is; the JupyterLab test runs the real one.
"""

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import distrokernels
from distrokernels.engine import LABEL_POOL, LABEL_RUNTIME_DIR
from distrokernels.engines import finish_removals
from distrokernels.pool import POOL
from distrokernels.runtime import runtime_root

from . import servers
from .conftest import BASE, execute, kill_with_its_watchdog, run_cli, variant_kernelspec, warm

CYCLES = 100
GONE_WITHIN = 10  # seconds: a killed server's kernels, as a local kernel's
FD_SETTLED = 30  # cycles after which the process's fds no longer grow
FD_SLACK = 3

# What a kernel can see of its own start; HOSTNAME is the container's id, the connection
# file's folder is the kernel's own: both differ between any two kernels.
PROBE = r"""
import json, os, sys
def _files(top):  # IPython's history journal comes and goes while it writes
    return sorted(os.path.relpath(os.path.join(base, name), top)
                  for base, dirs, files in os.walk(top) for name in dirs + files
                  if not name.endswith("-journal"))
_ip = get_ipython()
print(json.dumps({
    "cwd": os.getcwd(),
    "environ": {k: v for k, v in os.environ.items() if k != "HOSTNAME"},
    "argv": [arg for arg in sys.argv if not arg.endswith("kernel.json")],
    "orig_argv": [arg for arg in getattr(sys, "orig_argv", []) if not arg.endswith("kernel.json")],
    "path": sys.path,
    "modules": sorted({name.split(".")[0] for name in sys.modules}),
    "main": sys.modules["__main__"].__name__,
    "who": sorted(n for n in _ip.user_ns if not n.startswith("_") and n not in _ip.user_ns_hidden),
    "home": _files(os.path.expanduser("~")),
    "uid": [os.getuid(), os.getgid()],
}))
"""


async def test_second_start_is_served_from_the_pool_that_the_first_filled_and_list_shows_it(
    server, installed_kernel, engine
):
    _, first, was_warm = await server.start(installed_kernel, server.root / "notebooks")
    assert not was_warm
    assert LABEL_POOL not in engine.api.inspect_container(first)["Config"]["Labels"]
    pooled = await warm(installed_kernel)
    second_id, second, was_warm = await server.start(installed_kernel, server.root / "notebooks")
    assert was_warm and second in pooled
    assert await server.run(second_id, "print(1)") == "1\n"
    refilled = await warm(installed_kernel)
    assert second not in refilled  # handed out once, never again
    listing = run_cli("list", "--json")
    assert listing.returncode == 0, listing.stderr
    row = next(row for row in json.loads(listing.stdout) if row["name"] == installed_kernel)
    assert row["warm_containers"] == 1
    assert 10 * 2**20 < row["warm_memory_bytes"][0] < 200 * 2**20  # what it holds idle


async def test_a_warm_kernel_is_indistinguishable_from_a_cold_one(server, installed_kernel):
    """What the issue lists: cwd, environment, argv, sys.path, user-visible modules,
    %who; and the kernel's home folder and uid."""
    folder = server.root / "notebooks"
    env = {**os.environ, "LANG": "C.UTF-8", "TZ": "Europe/Paris", "JPY_SESSION_NAME": "a.ipynb"}
    cold_id, _, was_warm = await server.start(installed_kernel, folder, env=env)
    assert not was_warm
    cold = json.loads(await server.run(cold_id, PROBE))
    await warm(installed_kernel)
    env["JPY_SESSION_NAME"] = "b.ipynb"
    warm_id, _, was_warm = await server.start(installed_kernel, folder, env=env)
    assert was_warm
    pooled = json.loads(await server.run(warm_id, PROBE))
    assert pooled["environ"].pop("JPY_SESSION_NAME") == "b.ipynb"
    assert cold["environ"].pop("JPY_SESSION_NAME") == "a.ipynb"
    assert pooled == cold
    assert cold["cwd"] == str(folder)
    assert cold["who"] == ["json", "os", "sys"]  # the probe's own imports, nothing else
    assert cold["environ"]["TZ"] == "Europe/Paris"


async def test_a_folder_outside_the_pool_root_starts_cold(
    server, installed_kernel, tmp_path_factory
):
    await server.start(installed_kernel, server.root / "notebooks")
    pooled = await warm(installed_kernel)
    outside = tmp_path_factory.mktemp("elsewhere")
    kernel_id, container, was_warm = await server.start(installed_kernel, outside)
    assert not was_warm and container not in pooled
    assert POOL.warm_ids(installed_kernel) == pooled  # still there for the next start
    assert await server.run(kernel_id, "import os; print(os.getcwd())") == f"{outside}\n"


async def test_a_restart_is_served_from_the_pool_and_keeps_the_clients_connection(
    server, installed_kernel, engine
):
    kernel_id, first, _ = await server.start(installed_kernel, server.root / "notebooks")
    manager = server.manager.get_kernel(kernel_id)
    client = manager.client()
    client.start_channels()
    await client.wait_for_ready(timeout=60)
    await execute(client, "x = 1")
    pooled = await warm(installed_kernel)
    runtime_dir = Path(manager.connection_file).parent
    await server.manager.restart_kernel(kernel_id, now=True)
    restarted = manager.provisioner.container_id
    assert restarted in pooled and restarted != first
    await client.wait_for_ready(timeout=60)  # the same client, on the same endpoints
    output, _ = await execute(client, "print('x' in dir())")
    assert output == "False\n"
    client.stop_channels()
    assert Path(manager.connection_file).parent == runtime_dir
    slot = engine.api.inspect_container(restarted)["Config"]["Labels"][LABEL_RUNTIME_DIR]
    assert Path(slot).resolve() == runtime_dir  # gc finds the kept folder through it
    await server.manager.shutdown_kernel(kernel_id, now=True)
    assert not Path(slot).is_symlink() and not runtime_dir.exists()


async def test_reinstall_a_changed_config_and_remove_drop_warm_containers(
    server, installed_kernel, engine
):
    name = variant_kernelspec(installed_kernel, "pool-variant", lambda spec: None)
    notebooks = server.root / "notebooks"

    def running(ids: list[str]) -> set[str]:
        return {c.id for c in engine.kernel_containers()} & set(ids)

    async def gone(ids: list[str]) -> None:
        for _ in range(100):
            if not running(ids):
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"warm containers still there: {running(ids)}")

    await server.start(name, notebooks)
    pooled = await warm(name)
    reinstall = run_cli("install", BASE, "--name", name, "--replace", "--memory", "2g")
    assert reinstall.returncode == 0, reinstall.stderr
    assert not running(pooled)  # removed by the install itself
    _, container, was_warm = await server.start(name, notebooks)
    assert not was_warm  # the server noticed, started cold
    pooled = await warm(name)

    kernel_json = Path(os.environ["JUPYTER_DATA_DIR"], "kernels", name, "kernel.json")
    spec = json.loads(kernel_json.read_text())
    spec["metadata"]["kernel_provisioner"]["config"]["memory"] = "1g"
    kernel_json.write_text(json.dumps(spec))  # a hand edit: another container
    _, container, was_warm = await server.start(name, notebooks)
    assert not was_warm
    assert engine.api.inspect_container(container)["HostConfig"]["Memory"] == 1 << 30
    await gone(pooled)  # the stale ones, removed off the start path
    pooled = await warm(name)

    removed = run_cli("remove", name)
    assert removed.returncode == 0, removed.stderr
    assert "removed 1 warm container(s)" in removed.stderr
    assert not running(pooled)


def test_a_killed_servers_kernels_and_pool_are_gone_within_seconds(
    installed_kernel, engine, tmp_path
):
    """As a local kernel goes when its server dies: no `gc` needed."""
    server, starts, pool = servers.start_lingering(installed_kernel, tmp_path)
    assert len(starts) == 1 and len(pool) == 1
    slot = engine.api.inspect_container(pool[0])["Config"]["Labels"][LABEL_RUNTIME_DIR]
    ours = {starts[0]["container"], *pool}
    server.send_signal(signal.SIGKILL)
    server.wait()
    deadline = time.monotonic() + GONE_WITHIN
    while ours & {c.id for c in engine.kernel_containers()}:
        assert time.monotonic() < deadline, "a killed server's kernel outlived it"
        time.sleep(0.1)
    assert not os.path.exists(slot)


def test_a_killed_servers_pool_is_collected_by_gc_when_its_watchdog_died_too(
    installed_kernel, engine, tmp_path
):
    server, starts, pool = servers.start_lingering(installed_kernel, tmp_path)
    assert len(starts) == 1 and len(pool) == 1
    slot = engine.api.inspect_container(pool[0])["Config"]["Labels"][LABEL_RUNTIME_DIR]
    kill_with_its_watchdog(server)
    ours = {starts[0]["container"], *pool}
    assert ours <= {c.id for c in engine.kernel_containers()}  # nothing removed them
    gc = run_cli("gc")
    assert gc.returncode == 0, gc.stderr
    assert not ours & {c.id for c in engine.kernel_containers()}
    assert not os.path.exists(slot)


def test_a_servers_exit_removes_its_pool(installed_kernel, engine, tmp_path):
    run = subprocess.run(
        [sys.executable, "-c", servers.SERVER, installed_kernel, str(tmp_path), "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    starts, pool = servers.parse(run.stdout)
    assert [start["warm"] for start in starts] == [False, True]
    assert len(pool) == 1 and pool[0] not in {c.id for c in engine.kernel_containers()}


async def test_an_upgrade_that_changes_only_comments_keeps_the_build_and_the_warm_container(
    server, installed_kernel, engine_kind, tmp_path
):
    """The build cache is keyed by what decides the image (build format, rendered recipes,
    pins), not the modules' text: an upgrade that edits comments rebuilds nothing, and a
    reinstall that writes the same kernelspec leaves a server's warm container in use."""
    await server.start(installed_kernel, server.root / "notebooks")
    pooled = await warm(installed_kernel)
    kernel_json = Path(os.environ["JUPYTER_DATA_DIR"], "kernels", installed_kernel, "kernel.json")
    before = kernel_json.read_text()
    upgraded = tmp_path / "upgraded"
    shutil.copytree(Path(distrokernels.__file__).parent, upgraded / "distrokernels")
    for module in ("images.py", "recipes.py", "dockerfiles.py", "wheels.py", "provisioner.py"):
        with open(upgraded / "distrokernels" / module, "a") as source:
            source.write("\n# a comment the upgrade added\n")
    install = (
        "import sys, distrokernels, distrokernels.cli\n"
        "print('ran', distrokernels.__file__, file=sys.stderr)\n"
        "sys.exit(distrokernels.cli.main(sys.argv[1:]))"
    )
    reinstall = subprocess.run(
        [sys.executable, "-c", install, "install", BASE, "--replace", "--engine", engine_kind],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(upgraded)},
    )
    assert reinstall.returncode == 0, reinstall.stderr
    assert f"ran {upgraded / 'distrokernels' / '__init__.py'}" in reinstall.stderr
    assert "cache hit" in reinstall.stderr
    assert kernel_json.read_text() == before  # the same image id, the same settings
    _, container, was_warm = await server.start(installed_kernel, server.root / "notebooks")
    assert was_warm and container in pooled


async def test_a_hundred_claims_and_refills_leave_nothing_behind(server, installed_kernel, engine):
    notebooks = server.root / "notebooks"
    before = {c.id for c in engine.kernel_containers()}
    folders = set(runtime_root().iterdir())

    async def claim_and_shut_down() -> None:
        await warm(installed_kernel)
        kernel_id, _, was_warm = await server.start(installed_kernel, notebooks)
        assert was_warm
        await server.manager.shutdown_kernel(kernel_id, now=True)

    await server.start(installed_kernel, notebooks)  # cold: fills the pool
    await server.manager.shutdown_all(now=True)
    started = time.monotonic()
    for cycle in range(CYCLES):
        await claim_and_shut_down()
        if cycle == FD_SETTLED:  # the engine's HTTP connection pool has filled up by now
            fds = len(os.listdir("/proc/self/fd"))
    print(f"{CYCLES} claims in {time.monotonic() - started:.0f} s")
    await asyncio.to_thread(POOL.close)
    await asyncio.to_thread(finish_removals)
    assert {c.id for c in engine.kernel_containers()} == before
    assert set(runtime_root().iterdir()) == folders
    assert len(os.listdir("/proc/self/fd")) <= fds + FD_SLACK  # a leak: one per cycle at least
