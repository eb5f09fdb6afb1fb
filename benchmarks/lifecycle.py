"""Kernel life-cycle latency: a distrokernels kernel against the same ipykernel run locally.

    .venv/bin/python benchmarks/lifecycle.py [--rounds 7] [--concurrent-rounds 3] [--kernel NAME]
        [--podman-user USER]

--kernel measures another distro kernelspec, e.g. one installed with --backend swarm
or --docker-host (results then go to benchmarks/results/NAME.json).

The local reference is jupyter_client's LocalProvisioner starting the host's ipykernel
(same Python 3.11 and ipykernel as the Debian 12 kernel). The "cold" rows start kernels
under a KernelManager of their own (no pool), timed to wait_for_ready as before. The
"warm" rows start them in a server (a MultiKernelManager, as jupyter_server's), where
the distro kernel is served by a warm container and the local one starts as always;
they are timed to the first kernel_info_reply (wait_for_ready adds 0.2 s of IOPub
silence to both, a constant of the client), and so is the local start they compare to.
The "plain warm" rows start them under a KernelManager of their own again, as nbclient,
papermill or a console do, now with the user's warm-kernel agent on: the distro kernel
is served warm by the agent; timed to the first kernel_info_reply.
The "argv" rows start both kernels as clients without provisioner support do (VS Code,
jupyter_client 6): the kernelspec's argv as a child process on a TCP connection file;
"argv warm start" through the agent, "argv cold start" with it off (the launcher runs
the kernel itself); starts are timed to the first kernel_info_reply, the round trip is
the median of 20 `1+1` executions on a started kernel; interrupt and shutdown are the
warm path's. Before each warm start the agent has a ready warm container, as it has
when a user's starts are more than a second or so apart.
The "10 notebooks" rows run ten one-cell notebooks one after another, each in a process
of its own: papermill for both kernels, and `distrokernels run` for the distro kernel
against nbclient's `jupyter execute` (what `run` builds on) for the local one.
Runs alternate local and distro (A B A B ...). Prints a markdown table and writes
benchmarks/results/latest.json. Not a test: nothing here passes or fails.

--podman-user adds a rootless Podman column, measured in the same run after dockerd's
rounds: this script again, as USER (outside the docker group, with subuids, the
distro kernel installed with --engine podman, and ipykernel in PODMAN_PYTHON's venv for
the local reference), interleaving that user's local kernel and their Podman kernel.
Its ratio is to that user's own local kernel.

--platform-kernel KERNEL measures only the cold and warm start of KERNEL, a kernel of
another architecture (install --platform linux/arm64: its userland under qemu-user),
interleaved with --kernel's native distro kernel and the local one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import pwd
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path

import nbformat
import psutil
from jupyter_client.blocking import BlockingKernelClient
from jupyter_client.connect import write_connection_file
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from jupyter_client.multikernelmanager import AsyncMultiKernelManager
from traitlets.config import Config

from distrokernels import agent_client
from distrokernels.engine import Engine, engine_url
from distrokernels.pool import POOL

LOCAL = "python3"
DISTRO = "distro-debian-12"
ENGINE = "docker"  # the distro kernel's engine: "podman" in the --podman-user worker
PODMAN_PYTHON = "/tmp/dk-tester-venv/bin/python"  # the venv tests/integration/users.py makes
BASE = "debian:bookworm"
RESULTS = Path(__file__).parent / "results"

# metric -> (target kind, target value): "ratio" of medians or "absolute" milliseconds/MB
TARGETS = {
    "cold start": ("ratio", 1.3),
    "first execute": ("ratio", 1.2),
    "round trip": ("delta ms", 1),
    "cold restart": ("ratio", 1.15),
    "idle memory": ("delta MB", 15),
    # in a server: the distro kernel from the pool, the local one as always
    "warm start": ("ratio", 0.3),
    "warm restart": ("ratio", 0.5),
    "interrupt": ("ratio", 1.1),
    "shutdown": ("ratio", 1.2),
    "20 concurrent starts": ("ratio", 1.0),
    # outside a server, under a KernelManager of the client's own (nbclient, papermill,
    # `run`, a console): the distro kernel from the user's agent
    "plain warm start": ("ratio", 0.3),
    "plain warm restart": ("ratio", 0.5),
    # kernel.json's argv run as a child, as VS Code and jupyter_client 6 run it: through
    # the agent (warm), and with the agent off (DISTROKERNELS_AGENT=0: in the launcher)
    "argv warm start": ("ratio", 0.3),
    "argv cold start": ("ratio", 2.0),
    "argv round trip": ("delta ms", 1),
    "argv interrupt": ("absolute ms", 100),
    "argv shutdown": ("ratio", 1.2),
    # ten one-cell notebooks one after another, each in a new process and kernel
    "10 notebooks, papermill": ("ratio", 1.0),
    "10 notebooks, run": ("ratio", 1.0),
    # --slurm KERNEL: a kernel as a Slurm job on an idle partition (no target: measured)
    "slurm start": ("measured", 0),
    "slurm restart": ("measured", 0),
    "slurm interrupt": ("measured", 0),
}
ROUND_TRIPS = 20  # warm `1+1` executions whose median is the round trip
KERNEL_INFO_RETRY = 1.0  # seconds, as jupyter_client's wait_for_ready resends it


async def ready(manager: AsyncKernelManager):
    client = manager.client()
    client.start_channels()
    await client.wait_for_ready(timeout=120)
    return client


async def one_life(kernel: str, workdir: str) -> dict[str, float]:
    """Start, execute, interrupt, restart, measure memory, shut down: seconds (or MB)."""
    timings: dict[str, float] = {}
    manager = AsyncKernelManager(kernel_name=kernel)
    started = time.perf_counter()
    await manager.start_kernel(cwd=workdir)
    client = await ready(manager)
    timings["cold start"] = time.perf_counter() - started

    started = time.perf_counter()
    reply = await client.execute_interactive("1+1", timeout=30, output_hook=lambda msg: None)
    timings["first execute"] = time.perf_counter() - started
    assert reply["content"]["status"] == "ok"
    trips = []
    for _ in range(ROUND_TRIPS):
        started = time.perf_counter()
        await client.execute_interactive("1+1", timeout=30, output_hook=lambda msg: None)
        trips.append(time.perf_counter() - started)
    timings["round trip"] = statistics.median(trips)

    await asyncio.sleep(1.0)  # idle
    timings["idle memory"] = idle_memory_mb(manager)

    started = time.perf_counter()
    await manager.restart_kernel()
    await client.wait_for_ready(timeout=120)
    timings["cold restart"] = time.perf_counter() - started

    client.stop_channels()
    await manager.shutdown_kernel()
    return timings


async def first_kernel_info(manager: AsyncKernelManager, client=None):
    """Ask for kernel_info until the first reply (a restarted kernel may miss one)."""
    if client is None:
        client = manager.client()
        client.start_channels()
    while True:
        client.kernel_info()
        with contextlib.suppress(queue.Empty):
            await client.get_shell_msg(timeout=KERNEL_INFO_RETRY)
            return client


async def started_to_kernel_info(kernel: str, workdir: str):
    """A KernelManager of its own started, its client, and the seconds to the first
    kernel_info_reply."""
    manager = AsyncKernelManager(kernel_name=kernel)
    started = time.perf_counter()
    await manager.start_kernel(cwd=workdir)
    client = await first_kernel_info(manager)
    return manager, client, time.perf_counter() - started


async def plain_life(kernel: str, workdir: str) -> dict[str, float]:
    """A KernelManager of its own, as nbclient or a console starts one, served by the
    agent: start and restart, to the first kernel_info_reply."""
    agent(True)
    await asyncio.to_thread(agent_has_warm, kernel)
    timings: dict[str, float] = {}
    manager, client, timings["plain warm start"] = await started_to_kernel_info(kernel, workdir)
    await client.wait_for_ready(timeout=120)
    await asyncio.to_thread(agent_has_warm, kernel)
    started = time.perf_counter()
    await manager.restart_kernel()
    await first_kernel_info(manager, client)
    timings["plain warm restart"] = time.perf_counter() - started
    client.stop_channels()
    await manager.shutdown_kernel()
    agent(False)
    return timings


async def slurm_life(kernel: str, workdir: str) -> dict[str, float]:
    """A Slurm kernel (or the local one the same way): start and restart to the first
    kernel_info_reply, and the interrupt of a running ``time.sleep`` to its reply."""
    timings: dict[str, float] = {}
    manager, client, timings["slurm start"] = await started_to_kernel_info(kernel, workdir)
    await client.wait_for_ready(timeout=120)
    client.execute("import time; time.sleep(30)")
    await asyncio.sleep(1.0)
    started = time.perf_counter()
    await manager.interrupt_kernel()
    while (await client.get_shell_msg(timeout=30))["msg_type"] != "execute_reply":
        pass
    timings["slurm interrupt"] = time.perf_counter() - started
    started = time.perf_counter()
    await manager.restart_kernel()
    await first_kernel_info(manager, client)
    timings["slurm restart"] = time.perf_counter() - started
    client.stop_channels()
    await manager.shutdown_kernel()
    return timings


async def platform_life(kernel: str, in_server: AsyncMultiKernelManager, workdir: str) -> dict:
    """Cold start (a KernelManager of its own, no pool) and warm start (in a server, from
    its pool), each to the first kernel_info_reply: for --platform-kernel's emulated
    kernel, the native distro kernel and the local one alike."""
    agent(False)
    timings: dict[str, float] = {}
    manager, client, timings["cold start"] = await started_to_kernel_info(kernel, workdir)
    client.stop_channels()
    await manager.shutdown_kernel()
    if kernel != LOCAL:
        await asyncio.to_thread(POOL.wait_until_warm, kernel, 1)
    started = time.perf_counter()
    kernel_id = await in_server.start_kernel(kernel_name=kernel, cwd=workdir)
    client = await first_kernel_info(in_server.get_kernel(kernel_id))
    timings["warm start"] = time.perf_counter() - started
    client.stop_channels()
    await in_server.shutdown_kernel(kernel_id)
    return timings


async def platform_rows(foreign: str, rounds: int, workdir: str) -> str:
    """The emulated kernel's cold and warm start beside the native distro kernel's and
    the local kernel's, interleaved: a markdown table."""
    in_server = server(workdir)
    kernels = (LOCAL, DISTRO, foreign)
    for kernel in kernels[1:]:  # a server warms a kernelspec once it has started one
        primed = await in_server.start_kernel(kernel_name=kernel, cwd=workdir)
        await in_server.shutdown_kernel(primed, now=True)
    samples: dict[str, dict[str, list[float]]] = {kernel: {} for kernel in kernels}
    for _ in range(rounds):
        for kernel in kernels:
            for metric, value in (await platform_life(kernel, in_server, workdir)).items():
                samples[kernel].setdefault(metric, []).append(value * 1000)
    await in_server.shutdown_all()
    await asyncio.to_thread(POOL.close)
    lines = [
        f"| metric | local | {DISTRO} | {foreign} | {foreign} / {DISTRO} |",
        "|---|---|---|---|---|",
    ]
    for metric in ("cold start", "warm start"):
        cells = [samples[kernel][metric] for kernel in kernels]
        medians = [statistics.median(values) for values in cells]
        spreads = " | ".join(_spread(m, v, "ms") for m, v in zip(medians, cells, strict=True))
        lines.append(f"| {metric} | {spreads} | {medians[2] / medians[1]:.2f}x |")
    return "\n".join(lines)


def notebooks_life(kernel: str, folder: str) -> dict[str, float]:
    """Ten one-cell notebooks, one after another: with papermill, and with `distrokernels
    run` (the local kernel with nbclient's own `jupyter execute`, which `run` builds on)."""
    agent(True)
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": kernel, "display_name": kernel}
    notebook.cells = [nbformat.v4.new_code_cell("import platform; print(platform.system())")]
    paths = [str(Path(folder) / f"n{index}.ipynb") for index in range(10)]
    for path in paths:
        nbformat.write(notebook, path)
    bindir = Path(sys.executable).parent
    timings: dict[str, float] = {}
    tools = {
        "10 notebooks, papermill": lambda path: [
            str(bindir / "papermill"), "-k", kernel, "--no-progress-bar", path, path
        ],
        "10 notebooks, run": lambda path: (
            [str(bindir / "distrokernels"), "run", path]
            if kernel == DISTRO
            else [str(bindir / "jupyter-execute"), "--inplace", path]
        ),
    }  # fmt: skip
    for metric, command in tools.items():
        agent_has_warm(kernel)
        started = time.perf_counter()
        for path in paths:
            subprocess.run(command(path), cwd=folder, check=True, capture_output=True)
        timings[metric] = time.perf_counter() - started
    agent(False)
    return timings


async def server_life(kernel: str, server: AsyncMultiKernelManager, workdir: str) -> dict:
    """In a server: start (the distro kernel warm), interrupt, restart, shut down."""
    timings: dict[str, float] = {}
    if kernel == DISTRO:
        await asyncio.to_thread(POOL.wait_until_warm, kernel, 1)
    started = time.perf_counter()
    kernel_id = await server.start_kernel(kernel_name=kernel, cwd=workdir)
    manager = server.get_kernel(kernel_id)
    client = await first_kernel_info(manager)
    timings["warm start"] = time.perf_counter() - started
    await client.wait_for_ready(timeout=120)
    if kernel == DISTRO:
        await asyncio.to_thread(POOL.wait_until_warm, kernel, 1)

    msg_id = client.execute("import time; time.sleep(30)")
    await asyncio.sleep(0.5)
    started = time.perf_counter()
    await manager.interrupt_kernel()
    while True:
        reply = await client.get_shell_msg(timeout=30)
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    timings["interrupt"] = time.perf_counter() - started
    assert reply["content"]["ename"] == "KeyboardInterrupt"

    if kernel == DISTRO:
        await asyncio.to_thread(POOL.wait_until_warm, kernel, 1)
        timings["pooled container memory"] = pooled_memory_mb(kernel)
    started = time.perf_counter()
    await server.restart_kernel(kernel_id)
    await first_kernel_info(manager, client)
    timings["warm restart"] = time.perf_counter() - started
    await client.wait_for_ready(timeout=120)

    client.stop_channels()
    if kernel == DISTRO:  # the refill after the restart is done: a server at rest
        await asyncio.to_thread(POOL.wait_until_warm, kernel, 1)
    started = time.perf_counter()
    await server.shutdown_kernel(kernel_id)
    timings["shutdown"] = time.perf_counter() - started
    timings["kill fallback"] = float(manager._shutdown_status.value == "SigkillRequest")
    return timings


def pooled_memory_mb(kernel: str) -> float:
    """What one idle warm container of ``kernel`` holds (as `docker stats` counts)."""
    engine = Engine.connect(engine_url(ENGINE))
    sizes = [engine.container_memory(warm) for warm in POOL.warm_ids(kernel)]
    return max(size or 0 for size in sizes) / 2**20


def agent(on: bool) -> None:
    """Clients of this process (and its children) use the user's agent, or not."""
    os.environ[agent_client.SWITCH] = "1" if on else "0"


def agent_has_warm(kernel: str) -> None:
    """Until the agent has a ready warm container (a user's next start, some time after
    the last one); nothing for the local kernel."""
    if kernel != DISTRO:
        return
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with contextlib.suppress(agent_client.AgentUnavailable):
            if agent_client.ask({"op": "ping"})["ready"]:
                return
        time.sleep(0.05)
    raise RuntimeError("the agent warmed no container in 120 s")


def argv_lives(kernel: str, workdir: str) -> dict[str, float]:
    """A cold argv life (no agent: the launcher runs the kernel) and a warm one."""
    agent(False)
    timings = {"argv cold start": argv_life(kernel, workdir)["argv start"]}
    agent(True)
    agent_has_warm(kernel)
    warm = argv_life(kernel, workdir)
    timings["argv warm start"] = warm.pop("argv start")
    return timings | warm


def argv_life(kernel: str, workdir: str) -> dict[str, float]:
    """kernel.json's argv as a client that ignores provisioners runs it: seconds."""
    spec = KernelSpecManager().get_kernel_spec(kernel)
    with tempfile.TemporaryDirectory() as folder:
        path, _ = write_connection_file(str(Path(folder) / "kernel.json"), ip="127.0.0.1")
        argv = [sys.executable if arg == "python" else arg for arg in spec.argv]
        argv = [arg.replace("{connection_file}", path) for arg in argv]
        client = BlockingKernelClient(connection_file=path)
        client.load_connection_file()
        timings: dict[str, float] = {}
        started = time.perf_counter()
        process = subprocess.Popen(
            argv, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        client.start_channels()
        client.kernel_info()
        client.get_shell_msg(timeout=120)  # the first kernel_info_reply
        timings["argv start"] = time.perf_counter() - started
        client.wait_for_ready(timeout=120)
        client.execute_interactive("1+1", timeout=30, output_hook=lambda msg: None)
        trips = []
        for _ in range(ROUND_TRIPS):
            started = time.perf_counter()
            client.execute_interactive("1+1", timeout=30, output_hook=lambda msg: None)
            trips.append(time.perf_counter() - started)
        timings["argv round trip"] = statistics.median(trips)
        msg_id = client.execute("import time; time.sleep(30)")
        time.sleep(0.5)
        started = time.perf_counter()
        process.send_signal(signal.SIGINT)
        while client.get_shell_msg(timeout=30)["parent_header"].get("msg_id") != msg_id:
            pass
        timings["argv interrupt"] = time.perf_counter() - started
        started = time.perf_counter()
        client.shutdown()
        process.wait(timeout=60)
        timings["argv shutdown"] = time.perf_counter() - started
        client.stop_channels()
    return timings


def stop_agent() -> None:
    """End the agent this benchmark started (it removes its warm containers)."""
    with contextlib.suppress(agent_client.AgentUnavailable):
        pid = agent_client.ask({"op": "ping"})["pid"]
        os.kill(pid, signal.SIGTERM)
        while psutil.pid_exists(pid):
            time.sleep(0.05)


def idle_memory_mb(manager: AsyncKernelManager) -> float:
    """Resident memory: the kernel process locally, the container's cgroup (no cache)."""
    provisioner = manager.provisioner
    container_id = getattr(provisioner, "container_id", None)
    if container_id is None:
        return psutil.Process(provisioner.pid).memory_info().rss / 2**20
    engine = Engine.connect(provisioner.engine_url)
    if provisioner.backend == "swarm":  # the service's task container (on this node)
        container_id = engine.kernel_task(container_id).container_id
    if engine.podman and "memory" not in engine.podman.controllers:
        # No memory cgroup of its own (rootless, cgroup v1): its processes' resident sets.
        init = psutil.Process(engine.container_state(container_id).pid)
        return sum(p.memory_info().rss for p in [init, *init.children(True)]) / 2**20
    stats = engine.api.stats(container_id, stream=False)["memory_stats"]
    cache = stats.get("stats", {}).get("cache", stats.get("stats", {}).get("inactive_file", 0))
    return (stats["usage"] - cache) / 2**20


async def concurrent_starts(kernel: str, workdir: str, count: int = 20) -> float:
    """In a server whose pool holds ``count`` warm distro kernels (filled beforehand)."""
    manager = server(workdir, pool_size=count)
    if kernel == DISTRO:  # one start makes the server keep ``count`` warm ones
        kernel_id = await manager.start_kernel(kernel_name=kernel, cwd=workdir)
        await manager.shutdown_kernel(kernel_id, now=True)
        await asyncio.to_thread(POOL.wait_until_warm, kernel, count, 300)
    started = time.perf_counter()

    async def start_one() -> None:
        kernel_id = await manager.start_kernel(kernel_name=kernel, cwd=workdir)
        try:
            client = await ready(manager.get_kernel(kernel_id))
        except RuntimeError as error:
            raise RuntimeError(f"{kernel} {kernel_id}: {error}") from error
        client.stop_channels()

    await asyncio.gather(*(start_one() for _ in range(count)))
    elapsed = time.perf_counter() - started
    await manager.shutdown_all()
    await asyncio.to_thread(POOL.close)
    return elapsed


def server(workdir: str, pool_size: int = 1) -> AsyncMultiKernelManager:
    """A MultiKernelManager as jupyter_server's: a root_dir, and config for its kernels."""
    config = Config()
    config.DistroProvisioner.pool_size = pool_size
    # Connection files in a folder of their own, not the working folder (the default).
    manager = AsyncMultiKernelManager(config=config, connection_dir=tempfile.mkdtemp())
    manager.root_dir = workdir
    return manager


def warm_install_seconds() -> float:
    command = [sys.executable, "-m", "distrokernels", "install", BASE, "--replace"]
    subprocess.run(command, check=True, capture_output=True)  # make sure it is built
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def dependency_layer_mb() -> float:
    config = KernelSpecManager().get_kernel_spec(DISTRO).metadata["kernel_provisioner"]["config"]
    client = Engine.connect(config.get("docker_host", "")).client
    image = client.images.get(config["image"])
    base = client.images.get(image.labels["distrokernels.base-image"])
    return (image.attrs["Size"] - base.attrs["Size"]) / 1e6


async def interleave(
    rounds: int, measure: Callable[[str], Awaitable[dict[str, float]]]
) -> dict[str, dict[str, list[float]]]:
    samples: dict[str, dict[str, list[float]]] = {LOCAL: {}, DISTRO: {}}
    for _ in range(rounds):
        for kernel in (LOCAL, DISTRO):
            for metric, value in (await measure(kernel)).items():
                samples[kernel].setdefault(metric, []).append(value)
    return samples


def summarize(samples: dict[str, dict[str, list[float]]]) -> list[dict]:
    rows = []
    for metric, (kind, target) in TARGETS.items():
        local, distro = samples[LOCAL].get(metric), samples[DISTRO].get(metric)
        if not local or not distro:
            continue
        unit = "MB" if metric == "idle memory" else "ms"
        scale = 1 if unit == "MB" else 1000
        local_median, distro_median = statistics.median(local), statistics.median(distro)
        ratio = distro_median / local_median
        if kind == "measured":
            met, goal = True, "-"
        elif kind == "ratio":
            met = ratio <= target
            goal = f"<= {target}x"
        elif kind == "absolute ms":
            met = distro_median * 1000 <= target
            goal = f"<= {target} ms"
        else:
            met = (distro_median - local_median) * scale <= target
            goal = f"<= +{target} {unit}"
        rows.append(
            {
                "metric": metric,
                "unit": unit,
                "local": [v * scale for v in local],
                "distro": [v * scale for v in distro],
                "local_median": local_median * scale,
                "distro_median": distro_median * scale,
                "ratio": ratio,
                "target": goal,
                "met": met,
            }
        )
    return rows


def markdown(rows: list[dict], extras: dict[str, str], podman: list[dict]) -> str:
    """The table; with ``podman`` rows, two more columns: rootless Podman and its ratio
    to its own user's local kernel."""
    on_podman = {row["metric"]: row for row in podman}
    more = " rootless Podman median (min-max) | ratio |" if podman else ""
    lines = [
        "| metric | local median (min-max) | distrokernels median (min-max) "
        f"| ratio | target | met |{more}",
        "|---|---|---|---|---|---|" + "---|---|" * bool(podman),
    ]
    for row in rows:
        local = _spread(row["local_median"], row["local"], row["unit"])
        distro = _spread(row["distro_median"], row["distro"], row["unit"])
        cells = ""
        if podman:
            other = on_podman.get(row["metric"])
            cells = (
                f" {_spread(other['distro_median'], other['distro'], other['unit'])} "
                f"| {other['ratio']:.2f}x |"
                if other
                else " | |"
            )
        lines.append(
            f"| {row['metric']} | {local} | {distro} | {row['ratio']:.2f}x | {row['target']} "
            f"| {'yes' if row['met'] else 'NO'} |{cells}"
        )
    for metric, value in extras.items():
        lines.append(f"| {metric} | | {value} | | | |" + " | |" * bool(podman))
    return "\n".join(lines)


def _spread(median: float, values: list[float], unit: str) -> str:
    """'538 (485-684) ms'; one decimal below 20 (a round trip of a few ms)."""
    digits = 1 if median < 20 else 0
    return f"{median:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f}) {unit}"


async def measure_lives(rounds: int, workdir: str, argv: bool) -> dict:
    """``rounds`` interleaved lives of each kernel: alone, in a server, and (``argv``) run
    from kernel.json's argv as clients without provisioner support do."""
    in_server = server(workdir)
    primed = await in_server.start_kernel(kernel_name=DISTRO, cwd=workdir)  # fills its pool
    await in_server.shutdown_kernel(primed, now=True)

    if argv:  # the agent's first start is cold: it starts the agent, which warms one
        agent(True)
        primer = AsyncKernelManager(kernel_name=DISTRO)
        await primer.start_kernel(cwd=workdir)
        await primer.shutdown_kernel()

    async def life(kernel: str) -> dict[str, float]:
        agent(False)  # the cold rows: a KernelManager of its own, no pool
        timings = await one_life(kernel, workdir)
        timings |= await server_life(kernel, in_server, workdir)
        if argv:
            timings |= await plain_life(kernel, workdir)
            timings |= await asyncio.to_thread(argv_lives, kernel, workdir)
        return timings

    samples = await interleave(rounds, life)
    await in_server.shutdown_all()
    await asyncio.to_thread(POOL.close)
    return samples


def podman_rows(user: str, rounds: int) -> list[dict]:
    """This script as ``user``, measuring their local kernel and their Podman kernel."""
    account = pwd.getpwnam(user)
    folder = Path(tempfile.mkdtemp())
    os.chown(folder, account.pw_uid, account.pw_gid)
    environment = {
        "HOME": account.pw_dir,
        "XDG_RUNTIME_DIR": f"/run/user/{account.pw_uid}",
        "PATH": f"{Path(PODMAN_PYTHON).parent}:/usr/bin:/bin",
        "LANG": "C.UTF-8",
    }
    subprocess.run(
        ["runuser", "-u", user, "--", "env", "-i"]
        + [f"{key}={value}" for key, value in environment.items()]
        + [PODMAN_PYTHON, __file__, "--rounds", str(rounds), "--podman-worker", f"{folder}/r"],
        cwd=account.pw_dir,
        check=True,
    )
    return json.loads((folder / "r").read_text())


async def main() -> None:
    global DISTRO, ENGINE
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--concurrent-rounds", type=int, default=3)
    parser.add_argument("--kernel", default=DISTRO, help="the distro kernelspec to measure")
    parser.add_argument("--podman-user", help="add a rootless Podman column, run as USER")
    parser.add_argument("--podman-worker", metavar="FILE", help=argparse.SUPPRESS)
    parser.add_argument(
        "--slurm", metavar="KERNEL", help="only the Slurm rows: KERNEL (--backend slurm)"
    )
    parser.add_argument(
        "--platform-kernel",
        metavar="KERNEL",
        help="only the cold and warm start of KERNEL (install --platform) beside --kernel's",
    )
    args = parser.parse_args()
    DISTRO = args.slurm or args.kernel
    workdir = str(Path.cwd())
    if args.platform_kernel:
        table = await platform_rows(args.platform_kernel, args.rounds, workdir)
        when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        print(f"{when}, {args.rounds} rounds interleaved\n\n{table}")
        return
    if args.slurm:
        samples = await interleave(args.rounds, lambda kernel: slurm_life(kernel, workdir))
        when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        print(f"{when}, {args.rounds} rounds interleaved\n\n{markdown(summarize(samples), {}, [])}")
        return
    if args.podman_worker:  # the Podman column, as its user: rows to FILE
        ENGINE = "podman"
        samples = await measure_lives(args.rounds, workdir, argv=False)
        Path(args.podman_worker).write_text(json.dumps(summarize(samples)))
        return

    warm_install = warm_install_seconds()
    samples = await measure_lives(args.rounds, workdir, argv=True)

    async def concurrent(kernel: str) -> dict[str, float]:
        try:
            return {"20 concurrent starts": await concurrent_starts(kernel, workdir)}
        except RuntimeError as error:
            # Local kernels pick their TCP ports before binding them: twenty at once
            # sometimes collide ("Address already in use") and one never answers.
            print(f"round repeated: {error}", file=sys.stderr)
            return {"20 concurrent starts": await concurrent_starts(kernel, workdir)}

    more = await interleave(args.concurrent_rounds, concurrent)
    with tempfile.TemporaryDirectory() as folder:

        async def notebooks(kernel: str) -> dict[str, float]:
            return await asyncio.to_thread(notebooks_life, kernel, folder)

        for kernel, values in (await interleave(args.concurrent_rounds, notebooks)).items():
            more[kernel].update(values)
    stop_agent()
    for kernel in samples:
        samples[kernel].update(more[kernel])
    rows = summarize(samples)
    podman = podman_rows(args.podman_user, args.rounds) if args.podman_user else []
    fallbacks = int(sum(samples[DISTRO]["kill fallback"]))
    pooled = samples[DISTRO]["pooled container memory"]
    extras = {
        "idle memory of a warm (pooled) container": f"{statistics.median(pooled):.0f} MB",
        "shutdown fell back to SIGKILL": f"{fallbacks} of {args.rounds}",
        "warm install (cache hit)": f"{warm_install:.2f} s (target <= 2 s)",
        "dependency layer on Debian 12": f"{dependency_layer_mb():.1f} MB",
    }
    table = markdown(rows, extras, podman)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.node()}, {psutil.cpu_count()} cores, {platform.release()}"
    print(f"{when}, {machine}, {args.rounds} rounds interleaved\n\n{table}")
    RESULTS.mkdir(exist_ok=True)
    result = {"when": when, "machine": machine, "rows": rows, "podman": podman, "extras": extras}
    (RESULTS / ("latest.json" if DISTRO == "distro-debian-12" else f"{DISTRO}.json")).write_text(
        json.dumps(result, indent=2) + "\n"
    )


if __name__ == "__main__":
    asyncio.run(main())
