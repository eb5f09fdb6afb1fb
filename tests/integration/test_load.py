"""Load: many kernels at once and many in a row, with no leaked container, folder or fd."""

import asyncio
import os
from pathlib import Path

import pytest
from jupyter_client.multikernelmanager import AsyncMultiKernelManager

from distrokernels.engine import LABEL_OWNER
from distrokernels.engines import finish_removals
from distrokernels.owners import current_owner
from distrokernels.runtime import runtime_root

from .conftest import execute

pytestmark = pytest.mark.load

CONCURRENT = 20
CYCLES = 100


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def fds_settle_to(bound: int, timeout: float = 10) -> int:
    """Open fds once background work (orphan collection after each start) has finished."""
    deadline = asyncio.get_running_loop().time() + timeout
    while open_fds() > bound and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.2)
    return open_fds()


def our_containers(engine) -> list:
    """This process's kernel containers, once the removals a server does in the
    background after a shutdown have finished."""
    finish_removals()
    me = current_owner()
    return [c for c in engine.kernel_containers() if c.labels.get(LABEL_OWNER) == me]


def runtime_folders() -> set[Path]:
    return set(runtime_root().iterdir())


async def start_run_stop(manager: AsyncMultiKernelManager, name: str, cwd: str, code: str):
    kernel_id = await manager.start_kernel(kernel_name=name, cwd=cwd)
    client = manager.get_kernel(kernel_id).client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=120)
        output, reply = await execute(client, code, timeout=120)
    finally:
        client.stop_channels()
    return kernel_id, output, reply


async def test_twenty_concurrent_kernels_all_start_execute_and_leave_nothing(
    installed_kernel, engine, tmp_path
):
    manager = AsyncMultiKernelManager()
    folders_before = runtime_folders()

    async def round_of_kernels():
        return await asyncio.gather(
            *(
                start_run_stop(manager, installed_kernel, str(tmp_path), f"print({n} * 2)")
                for n in range(CONCURRENT)
            )
        )

    # Warm-up rounds: connection pools grow to their bounds once, then stay there.
    for _ in range(2):
        await round_of_kernels()
        await manager.shutdown_all()
    assert our_containers(engine) == []  # also opens this test's own engine connection
    fds_before = await fds_settle_to(0, timeout=2)

    results = await round_of_kernels()
    assert len(set(manager.list_kernel_ids())) == CONCURRENT
    assert len(our_containers(engine)) == CONCURRENT
    for n, (_, output, reply) in enumerate(results):
        assert reply["status"] == "ok" and output == f"{n * 2}\n"
    await manager.shutdown_all()

    assert our_containers(engine) == []
    assert runtime_folders() == folders_before
    assert await fds_settle_to(fds_before) <= fds_before


async def test_hundred_start_stop_cycles_leak_nothing(installed_kernel, engine, tmp_path):
    manager = AsyncMultiKernelManager()
    folders_before = runtime_folders()
    kernel_id, _, _ = await start_run_stop(manager, installed_kernel, str(tmp_path), "1")
    await manager.shutdown_kernel(kernel_id)
    assert our_containers(engine) == []
    fds_before = open_fds()
    for cycle in range(CYCLES):
        kernel_id, output, _ = await start_run_stop(
            manager, installed_kernel, str(tmp_path), f"print({cycle})"
        )
        assert output == f"{cycle}\n"
        await manager.shutdown_kernel(kernel_id)
    assert our_containers(engine) == []
    assert runtime_folders() == folders_before
    assert await fds_settle_to(fds_before) <= fds_before
