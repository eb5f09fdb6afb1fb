"""Containers of a killed Jupyter process are collected; a live one's never are."""

import asyncio
import os
import subprocess
import sys
import textwrap
import time

from distrokernels.engine import LABEL_KERNEL_ID

from .conftest import kernel_containers, kill_with_its_watchdog, run_cli

OWNER = textwrap.dedent(
    """
    import asyncio, sys
    from jupyter_client.manager import AsyncKernelManager

    async def main():
        manager = AsyncKernelManager(kernel_name=sys.argv[1])
        await manager.start_kernel(cwd=sys.argv[2])
        print(manager.kernel_id, flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


def orphan_of_a_killed_owner(kernel_name: str, cwd, engine) -> tuple[str, str]:
    """Start a kernel from another process, then SIGKILL that process, as when a Jupyter
    server is killed: (the orphaned kernel's id, its runtime folder)."""
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, kernel_name, str(cwd)], stdout=subprocess.PIPE, text=True
    )
    orphan_id = owner.stdout.readline().strip()
    containers = kernel_containers(engine, orphan_id)
    assert len(containers) == 1
    kill_with_its_watchdog(owner)
    return orphan_id, containers[0].labels["distrokernels.runtime-dir"]


def test_gc_removes_containers_of_a_killed_owner_and_keeps_live_ones(
    installed_kernel, engine, kernel, tmp_path
):
    orphan_id, runtime_dir = orphan_of_a_killed_owner(installed_kernel, tmp_path, engine)

    result = run_cli("gc")
    assert result.returncode == 0, result.stderr
    assert orphan_id in result.stdout
    assert kernel_containers(engine, orphan_id) == []
    assert not os.path.exists(runtime_dir)
    live = kernel_containers(engine, kernel.manager.kernel_id)
    assert len(live) == 1 and live[0].status == "running"


async def test_starting_a_kernel_collects_orphans_automatically(
    installed_kernel, engine, kernel, tmp_path
):
    orphan_id, _ = orphan_of_a_killed_owner(installed_kernel, tmp_path, engine)
    await kernel.manager.restart_kernel()  # a start, in this live process
    deadline = time.monotonic() + 30
    while kernel_containers(engine, orphan_id) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert kernel_containers(engine, orphan_id) == []
    assert any(
        c.labels.get(LABEL_KERNEL_ID) == kernel.manager.kernel_id
        for c in engine.kernel_containers()
    )
