"""A Jupyter server's kernel management, as a separate process: for the warm pool's
tests that kill a server, or run one as another user.

``python -c SERVER KERNEL FOLDER STARTS [linger]`` starts KERNEL in FOLDER (also the
server's root_dir) STARTS times, one after the other, each running CODE, and prints a
JSON line per start: its container, whether that container was warm, CODE's output.
It waits for a warm container after each, prints the pool's containers, and then exits
(shutting its kernels down) or, with ``linger``, keeps its last kernel and sleeps.
"""

import json
import subprocess
import sys
import textwrap

CODE = "import os; open('owned.txt', 'w'); print(os.getuid(), os.getcwd())"

SERVER = textwrap.dedent(
    f"""
    import asyncio, json, sys
    from jupyter_client.multikernelmanager import AsyncMultiKernelManager
    from distrokernels.pool import POOL

    async def main(kernel_name, folder, starts, linger):
        server = AsyncMultiKernelManager()
        server.root_dir = folder  # as jupyter_server's MappingKernelManager has it
        for _ in range(starts):
            warm = POOL.warm_ids(kernel_name)
            kernel_id = await server.start_kernel(kernel_name=kernel_name, cwd=folder)
            manager = server.get_kernel(kernel_id)
            client = manager.client()
            client.start_channels()
            await client.wait_for_ready(timeout=60)
            out = []
            def hook(message):
                if message["msg_type"] == "stream":
                    out.append(message["content"]["text"])
            await client.execute_interactive({CODE!r}, output_hook=hook, timeout=60)
            client.stop_channels()
            container = manager.provisioner.container_id
            print(json.dumps({{"container": container, "warm": container in warm,
                              "output": "".join(out).split()}}), flush=True)
            if not linger:
                await server.shutdown_kernel(kernel_id, now=True)
            await asyncio.to_thread(POOL.wait_until_warm, kernel_name, 1)
        print(json.dumps({{"pool": POOL.warm_ids(kernel_name)}}), flush=True)
        if linger:
            await asyncio.sleep(3600)
        await server.shutdown_all(now=True)

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:] == ["linger"]))
    """
)


def parse(stdout: str) -> tuple[list[dict], list[str]]:
    """(one record per start, the pool's containers at the end) from SERVER's output."""
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    starts = [line for line in lines if "container" in line]
    pool = next((line["pool"] for line in lines if "pool" in line), [])
    return starts, pool


def start_lingering(kernel_name: str, folder) -> tuple[subprocess.Popen, list[dict], list[str]]:
    """A SERVER with one kernel running and one warm container ready: (its process, the
    start's record, the pool's containers)."""
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER, kernel_name, str(folder), "1", "linger"],
        stdout=subprocess.PIPE,
        text=True,
    )
    lines = []
    for line in process.stdout:
        lines.append(line)
        if '"pool"' in line:
            break
    starts, pool = parse("".join(lines))
    return process, starts, pool
