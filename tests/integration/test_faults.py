"""Faults against the real engine: the kernel dies, the engine restarts (dockerd) or its
API service dies (Podman), a build is interrupted, a kernel ignores SIGTERM. Nothing
hangs and nothing is left behind."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from jupyter_client.ioloop import AsyncIOLoopKernelManager
from jupyter_client.manager import AsyncKernelManager

from .conftest import BASE, applies_limits, execute, kernel_containers, run_cli

pytestmark = pytest.mark.faults

REPO = Path(__file__).resolve().parents[2]


async def until(condition, timeout: float = 60, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        await asyncio.sleep(interval)
    raise AssertionError(f"not true within {timeout} s")


async def ready_client(manager):
    client = manager.client()
    client.start_channels()
    await client.wait_for_ready(timeout=60)
    return client


@pytest.fixture
async def restarting_kernel(installed_kernel, tmp_path):
    """A kernel watched by jupyter_client's restarter, as Jupyter server runs it."""
    manager = AsyncIOLoopKernelManager(kernel_name=installed_kernel, autorestart=True)
    await manager.start_kernel(cwd=str(tmp_path))
    manager.start_restarter()
    client = await ready_client(manager)
    yield manager, client
    client.stop_channels()
    manager.stop_restarter()
    await manager.shutdown_kernel(now=True)


@pytest.mark.parametrize("how", ["docker kill of the container", "os._exit inside the container"])
async def test_restarter_revives_a_kernel_that_died(restarting_kernel, engine, how):
    manager, client = restarting_kernel
    died = manager.provisioner.container_id
    if how.startswith("docker kill"):
        engine.api.kill(died)
    else:
        client.execute("import os; os._exit(1)")

    async def restarted() -> bool:
        current = manager.provisioner.container_id
        return current not in (None, died) and await manager.is_alive()

    await until(restarted, timeout=60)
    # The notebook's own channels (the same client) work again: zmq reconnects them.
    await client.wait_for_ready(timeout=60)
    output, reply = await execute(client, "print('alive again')")
    assert reply["status"] == "ok" and output == "alive again\n"
    assert [c.id for c in kernel_containers(engine, manager.kernel_id)] == [
        manager.provisioner.container_id
    ]


async def test_kernel_ignoring_sigterm_and_shutdown_is_gone_within_the_wait(
    installed_kernel, engine, tmp_path
):
    manager = AsyncKernelManager(kernel_name=installed_kernel, shutdown_wait_time=4)
    await manager.start_kernel(cwd=str(tmp_path))
    client = await ready_client(manager)
    # Ignore SIGTERM and swallow shutdown_request: only SIGKILL can end this kernel.
    await execute(
        client,
        "import signal\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "kernel = get_ipython().kernel\n"
        "async def ignore(*args, **kwargs):\n    pass\n"
        "kernel.control_handlers['shutdown_request'] = ignore\n",
    )
    client.stop_channels()
    kernel_id = manager.kernel_id
    started = time.monotonic()
    await asyncio.wait_for(manager.shutdown_kernel(), timeout=30)
    elapsed = time.monotonic() - started
    assert elapsed < 4 + 3, f"shutdown took {elapsed:.1f} s"
    assert kernel_containers(engine, kernel_id) == []


def test_interrupted_build_registers_nothing_and_leaves_no_container(engine, base_image):
    before = {c["Id"] for c in engine.api.containers(all=True)}
    process = subprocess.Popen(
        [sys.executable, "-m", "distrokernels", "install", BASE, "--name", "dk-test-ctrl-c",
         "--packages", "hello", "--rebuild", "--verbose"],  # the build's lines, to stop it in
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    for line in process.stderr:
        if "step" in line.lower() and "RUN" in line:  # dockerd: Step, Podman: STEP
            break
    process.send_signal(signal.SIGINT)
    rest = process.stderr.read()
    assert process.wait(timeout=120) == 130, rest
    assert "interrupted" in rest and "Traceback" not in rest
    assert "dk-test-ctrl-c" not in run_cli("list").stdout
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        leftovers = {c["Id"] for c in engine.api.containers(all=True)} - before
        if not leftovers:
            break
        time.sleep(0.5)
    assert leftovers == set()


def restart_engine() -> None:
    pid = int(Path("/var/run/docker.pid").read_text())
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.2)
    subprocess.run(["bash", str(REPO / "dev" / "start-dockerd")], check=True, timeout=120)


async def test_engine_restart_reports_running_kernels_dead_and_new_ones_start(
    installed_kernel, engine, engine_kind, tmp_path
):
    if engine_kind != "docker":
        pytest.skip("no dockerd in this run: rootless Podman's service death is tested below")
    if os.geteuid() != 0:
        pytest.skip("restarting the Docker engine needs root (CI runs as root)")
    manager = AsyncKernelManager(kernel_name=installed_kernel)
    await manager.start_kernel(cwd=str(tmp_path))
    client = await ready_client(manager)
    client.stop_channels()

    await asyncio.to_thread(restart_engine)
    status = await asyncio.wait_for(manager.provisioner.poll(), timeout=10)
    assert status is not None, "a kernel of the restarted engine must be reported dead"
    assert not await asyncio.wait_for(manager.is_alive(), timeout=10)
    await asyncio.wait_for(manager.shutdown_kernel(now=True), timeout=30)

    fresh = AsyncKernelManager(kernel_name=installed_kernel)
    await fresh.start_kernel(cwd=str(tmp_path))
    client = await ready_client(fresh)
    output, _ = await execute(client, "print('after the restart')")
    client.stop_channels()
    await fresh.shutdown_kernel()
    assert output == "after the restart\n"


def kill_podman_service() -> None:
    """SIGKILL this user's Podman API service, as an OOM kill or a logout would."""
    found = subprocess.run(
        ["pgrep", "-u", str(os.getuid()), "-f", "podman system service"],
        capture_output=True,
        text=True,
    ).stdout.split()
    assert found, "this user's Podman service is not running"
    for pid in map(int, found):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() for pid in map(int, found)):
        assert time.monotonic() < deadline, "the Podman service did not die"
        time.sleep(0.1)


async def test_podman_service_death_leaves_kernels_running_and_the_next_start_revives_it(
    installed_kernel, engine, engine_kind, tmp_path
):
    if engine_kind != "podman":
        pytest.skip("no rootless Podman in this run (pytest --engine podman runs it)")
    manager = AsyncKernelManager(kernel_name=installed_kernel)
    await manager.start_kernel(cwd=str(tmp_path))
    client = await ready_client(manager)

    await asyncio.to_thread(kill_podman_service)
    # Podman's containers do not belong to its API service: the kernel runs on.
    output, _ = await execute(client, "print('still here')")
    assert output == "still here\n"
    assert await manager.is_alive()

    fresh = AsyncKernelManager(kernel_name=installed_kernel)
    await fresh.start_kernel(cwd=str(tmp_path))  # starts the service again
    fresh_client = await ready_client(fresh)
    output, _ = await execute(fresh_client, "print('a new kernel')")
    assert output == "a new kernel\n"
    for started, its_client in ((manager, client), (fresh, fresh_client)):
        its_client.stop_channels()
        await asyncio.wait_for(started.shutdown_kernel(), timeout=30)
        assert kernel_containers(engine, started.kernel_id) == []


OOM = "x = b'1' * (600 * 2**20)"  # pages written: ten times the kernel's limit


async def test_an_out_of_memory_kill_is_reported_as_such_to_jupyter_and_to_run(
    installed_kernel, engine, tmp_path
):
    if not applies_limits(engine, "memory"):
        pytest.skip("no memory cgroup controller delegated to rootless Podman on this machine")
    install = run_cli("install", BASE, "--name", "dk-test-oom", "--memory", "64m", "--replace")
    assert install.returncode == 0, install.stderr
    book = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(OOM)])
    book.metadata["kernelspec"] = {"name": "dk-test-oom", "display_name": "o", "language": "python"}
    nbformat.write(book, tmp_path / "oom.ipynb")
    manager = AsyncKernelManager(kernel_name="dk-test-oom")
    try:
        await manager.start_kernel(cwd=str(tmp_path))
        client = await ready_client(manager)
        client.execute(OOM)
        assert await until(manager.provisioner.poll, timeout=120) == 137
        client.stop_channels()
        death = manager.provisioner.death
        await manager.shutdown_kernel(now=True)
        result = run_cli("run", str(tmp_path / "oom.ipynb"))
    finally:
        run_cli("remove", "dk-test-oom")
    assert death == "the kernel 'dk-test-oom' ran out of memory (limit 64m)"
    assert result.returncode == 11, result.stderr
    assert f"oom.ipynb: {death}" in result.stderr.strip().splitlines()[-1]
