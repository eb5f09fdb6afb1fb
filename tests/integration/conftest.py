"""Integration fixtures: a real Docker engine, a real installed kernel, real kernels."""

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from jupyter_client.multikernelmanager import AsyncMultiKernelManager

from distrokernels.engine import LABEL_KERNEL_ID, LABEL_POOL, Engine, engine_url
from distrokernels.engines import finish_removals, shared_engine
from distrokernels.errors import EngineUnavailable
from distrokernels.owners import process_start_time
from distrokernels.pool import POOL
from distrokernels.runtime import runtime_root

from .agent import agent, stop_agent  # noqa: F401 - `agent`: a fixture for every module

JC6_VENV = Path("/tmp/distrokernels-jupyter-client-6")
BASE = "debian:bookworm"
KERNEL = "distro-debian-12"


def run_cli(
    *args: str, env: dict | None = None, timeout: float = 900
) -> subprocess.CompletedProcess:
    """The real command, in a subprocess, so exit codes and stderr are what users see."""
    return subprocess.run(
        [sys.executable, "-m", "distrokernels", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="session", autouse=True)
def no_agent_of_yours_running():
    """The suite counts this user's warm containers: an agent left by `bash dev/demo` (or
    a client of yours) would hold one. Stopped first, as `agent` stops the tests' own."""
    stop_agent()


@pytest.fixture(scope="session")
def engine_kind(pytestconfig) -> str:
    """pytest --engine: dockerd (default), or this user's rootless Podman."""
    return pytestconfig.getoption("engine")


@pytest.fixture(scope="session")
def engine(engine_kind) -> Engine:
    try:
        connected = Engine.connect(engine_url(engine_kind))
        connected.api.ping()
    except EngineUnavailable as error:
        if os.environ.get("CI") or engine_kind == "podman":
            pytest.fail(f"the integration tests need a real {engine_kind} engine: {error}")
        pytest.skip(f"needs a running Docker engine ({error}); `bash dev/setup` starts one")
    if engine_kind == "podman":
        assert connected.podman is not None and connected.podman.rootless, "not rootless Podman"
    return connected


@pytest.fixture(scope="session")
def base_image(engine, engine_kind) -> str:
    if engine.find_image(BASE) is None:
        hint = f"`distrokernels bootstrap {BASE} --engine podman`"
        pytest.fail(f"{BASE} is missing: {hint if engine_kind == 'podman' else 'bash dev/setup'}")
    return BASE


@pytest.fixture(scope="session")
def installed_kernel(base_image, engine_kind) -> str:
    """`distrokernels install debian:bookworm`, for real, once per session."""
    result = run_cli("install", base_image, "--replace", "--engine", engine_kind)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == KERNEL
    return KERNEL


SUITES = ("debian:bullseye", "debian:bookworm", "debian:trixie")


@pytest.fixture(scope="session")
def suite_kernels(engine) -> dict[str, subprocess.CompletedProcess]:
    """The three Debian releases installed side by side (each base lacks python3)."""
    installs = {}
    for base in SUITES:
        if engine.find_image(base) is None:
            pytest.fail(f"{base} is missing: dev/test bootstraps it (DK_BASES)")
        installs[base] = run_cli("install", base, "--replace")
    return installs


def applies_limits(engine: Engine, *controllers: str) -> bool:
    """Whether the engine applies limits of these cgroup controllers ('memory', 'cpu',
    'pids'): dockerd does; rootless Podman only those delegated to the user."""
    return engine.podman is None or set(controllers) <= set(engine.podman.controllers)


def variant_kernelspec(installed_kernel: str, name: str, change) -> str:
    """Install a copy of the kernelspec with ``change`` applied to its JSON (a hand edit)."""
    manager = KernelSpecManager()
    source = Path(manager.get_kernel_spec(installed_kernel).resource_dir)
    spec = json.loads((source / "kernel.json").read_text())
    spec["argv"][spec["argv"].index("--name") + 1] = name  # the launcher reads this copy
    change(spec)
    target = Path(os.environ["JUPYTER_DATA_DIR"], "kernels", name)
    target.mkdir(parents=True, exist_ok=True)
    (target / "kernel.json").write_text(json.dumps(spec))
    return name


def kernel_containers(engine: Engine, kernel_id: str) -> list:
    return [c for c in engine.kernel_containers() if c.labels.get(LABEL_KERNEL_ID) == kernel_id]


async def execute(client, code: str, timeout: float = 60) -> tuple[str, dict]:
    """Run ``code``; return its stdout and the execute_reply content."""
    chunks: list[str] = []

    def collect(message):
        if message["msg_type"] == "stream":
            chunks.append(message["content"]["text"])
        elif message["msg_type"] == "error":
            chunks.append(f"{message['content']['ename']}: {message['content']['evalue']}")

    reply = await client.execute_interactive(code, output_hook=collect, timeout=timeout)
    return "".join(chunks), reply["content"]


async def run_in_new_kernel(
    kernel_name: str, cwd, code: str, manager_class=AsyncKernelManager
) -> tuple[str, dict, dict]:
    """Start a kernel, run ``code``, shut it down: (stdout, execute_reply content,
    the container's inspect data taken while it ran)."""
    manager = manager_class(kernel_name=kernel_name)
    await manager.start_kernel(cwd=str(cwd))
    client = manager.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        engine = shared_engine(manager.provisioner.engine_url)
        container = engine.api.inspect_container(manager.provisioner.container_id)
        output, reply = await execute(client, code)
    finally:
        client.stop_channels()
        await manager.shutdown_kernel(now=True)
    return output, reply, container


class RunningKernel:
    def __init__(self, manager: AsyncKernelManager, client, cwd: Path) -> None:
        self.manager = manager
        self.client = client
        self.cwd = cwd

    async def run(self, code: str, timeout: float = 60) -> str:
        output, content = await execute(self.client, code, timeout)
        assert content["status"] == "ok", output
        return output


@pytest.fixture
async def kernel(installed_kernel, tmp_path):
    """A started distro kernel whose working folder is ``tmp_path``."""
    manager = AsyncKernelManager(kernel_name=installed_kernel)
    await manager.start_kernel(cwd=str(tmp_path))
    client = manager.client()
    client.start_channels()
    await client.wait_for_ready(timeout=60)
    yield RunningKernel(manager, client, tmp_path)
    client.stop_channels()
    if manager.has_kernel:
        await asyncio.wait_for(manager.shutdown_kernel(now=True), 60)


@pytest.fixture(scope="session")
def swarm(engine) -> Engine:
    """This engine as a single-node swarm manager (advertised on loopback only)."""
    created = not engine.swarm_node_id()
    if created:
        engine.client.swarm.init(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")
    yield engine
    if created:
        engine.client.swarm.leave(force=True)


def install_swarm_kernel(name: str, *options: str, base: str = BASE) -> dict:
    """`distrokernels install BASE --backend swarm`: its provisioner config."""
    result = run_cli("install", base, "--backend", "swarm", "--name", name, "--replace", *options)
    assert result.returncode == 0, result.stderr
    spec = KernelSpecManager().get_kernel_spec(name)
    return spec.metadata["kernel_provisioner"]["config"]


def kernel_services(engine: Engine, kernel_id: str) -> list:
    return [s for s in engine.kernel_services() if s.labels.get(LABEL_KERNEL_ID) == kernel_id]


@contextlib.asynccontextmanager
async def running(kernel_name: str, cwd, ready_timeout: float = 60, **config):
    """(manager, client) of a started kernel, its provisioner config overridden by
    ``config``; shut down on the way out."""
    manager = AsyncKernelManager(kernel_name=kernel_name)
    manager.kernel_spec.metadata["kernel_provisioner"]["config"].update(config)
    await manager.start_kernel(cwd=str(cwd))
    client = manager.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=ready_timeout)
        yield manager, client
    finally:
        client.stop_channels()
        await manager.shutdown_kernel()


async def interrupted(manager, client) -> str:
    """Interrupt a running sleep: the name of the exception the kernel reports."""
    client.execute("import time; time.sleep(60)")
    await asyncio.sleep(1)
    await manager.interrupt_kernel()
    while (message := await client.get_iopub_msg(timeout=10))["msg_type"] != "error":
        pass
    return message["content"]["ename"]


class Server:
    """A kernel-managing server process's view, in this process: its pool is POOL."""

    def __init__(self, root: Path) -> None:
        self.manager = AsyncMultiKernelManager()
        self.manager.root_dir = str(root)  # as jupyter_server's MappingKernelManager has it
        self.root = root

    async def start(self, kernel_name: str, cwd: Path, **kwargs) -> tuple[str, str, bool]:
        """(kernel id, container id, whether the container was warm)."""
        warm = set(POOL.warm_ids(kernel_name))
        kernel_id = await self.manager.start_kernel(kernel_name=kernel_name, cwd=str(cwd), **kwargs)
        container = self.manager.get_kernel(kernel_id).provisioner.container_id
        return kernel_id, container, container in warm

    async def run(self, kernel_id: str, code: str) -> str:
        return await run_code(self.manager.get_kernel(kernel_id), code)


async def run_code(manager: AsyncKernelManager, code: str) -> str:
    """``code``'s stdout in a running kernel, through a client of its own; it must pass."""
    client = manager.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        output, reply = await execute(client, code)
    finally:
        client.stop_channels()
    assert reply["status"] == "ok", output
    return output


async def warm(kernel_name: str, count: int = 1) -> list[str]:
    await asyncio.to_thread(POOL.wait_until_warm, kernel_name, count)
    return POOL.warm_ids(kernel_name)


@pytest.fixture
async def server(installed_kernel, tmp_path, engine):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    server = Server(tmp_path)
    yield server
    await server.manager.shutdown_all(now=True)
    await asyncio.to_thread(POOL.close)
    await asyncio.to_thread(finish_removals)  # a server removes stopped kernels off-path
    assert not [c for c in engine.kernel_containers() if LABEL_POOL in c.labels]
    assert not list(runtime_root().glob("w-*"))


def kill_with_its_watchdog(process: subprocess.Popen | int) -> None:
    """SIGKILL a process that started kernels (a child, or a pid) and, first, its
    watchdog (which would remove them at once): what is left is what `gc` and `doctor`
    must find. /proc is read directly: the users' own venvs have no psutil."""
    pid = process if isinstance(process, int) else process.pid
    owner = f":{pid}:".encode()
    watchdogs = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0") if entry.name.isdigit() else []
        except OSError:
            continue
        if argv[1:3] == [b"-m", b"distrokernels.watchdog"] and owner in argv[3]:
            watchdogs.append(int(entry.name))
    assert len(watchdogs) == 1, watchdogs
    os.kill(watchdogs[0], signal.SIGKILL)  # the process's child: a zombie until it goes too
    deadline = time.monotonic() + 10
    while process_start_time(watchdogs[0]):
        assert time.monotonic() < deadline, "the watchdog outlived a SIGKILL"
        time.sleep(0.05)
    if isinstance(process, int):
        os.kill(pid, signal.SIGKILL)
        while process_start_time(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    else:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def jupyter_client_6() -> Path:
    """A virtualenv with jupyter_client 6.1.12, which knows no provisioners."""
    python = JC6_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run(["/usr/bin/python3", "-m", "venv", str(JC6_VENV)], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", "jupyter_client==6.1.12"], check=True)
    version = subprocess.run(
        [python, "-c", "import jupyter_client; print(jupyter_client.__version__)"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert version.stdout.strip() == "6.1.12"
    return python
