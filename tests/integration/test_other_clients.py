"""Clients that ignore provisioners: they run kernel.json's argv themselves.

VS Code's Jupyter extension writes a TCP connection file on 127.0.0.1 with ports it
chose, substitutes it into argv, runs argv as its child in the notebook's folder,
interrupts with SIGINT and ends with shutdown_request, SIGTERM or SIGKILL. These tests
do exactly that with the installed kernelspec, and drive jupyter_client 6.1.12's
KernelManager (no provisioner support) from a virtualenv of its own.
"""

import hashlib
import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from jupyter_client.blocking import BlockingKernelClient
from jupyter_client.connect import write_connection_file
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager

from distrokernels import agent_client
from distrokernels.engine import LABEL_OWNER, LABEL_RUNTIME_DIR
from distrokernels.errors import InvalidInput
from distrokernels.pool import idle_warm_containers

from .agent import ping, stop_agent
from .conftest import run_cli, variant_kernelspec

GONE_WITHIN = 10  # seconds: a SIGKILLed launcher's container


def owned_by(kernels: list, pid: int) -> list:
    """The kernel containers (or services) whose owner is the launcher process ``pid``."""
    return [k for k in kernels if k.labels.get(LABEL_OWNER, "").split(":")[1:2] == [str(pid)]]


def served_by_the_agent(pid: int) -> set[str]:
    """The containers the user's agent runs for the launcher ``pid``."""
    try:
        runs = agent_client.ask({"op": "ping"})["runs"]
    except agent_client.AgentUnavailable:
        return set()
    return {container for launcher, container in runs if launcher == pid and container}


def launched_containers(engine, pid: int) -> list:
    """The kernel containers of the launcher ``pid``: run by the agent for it, or, in
    the launcher's own process, owned by it."""
    served = served_by_the_agent(pid)
    return [
        container
        for container in engine.kernel_containers()
        if container.id in served or owned_by([container], pid)
    ]


def kernels(engine) -> set[str]:
    """The kernel containers running a kernel (not an idle warm one of the agent's)."""
    idle = {warm.id for warm in idle_warm_containers(engine)}
    return {c.id for c in engine.kernel_containers()} - idle


def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


class Launched:
    """A kernel started as VS Code starts it: argv as a child, a client on its file."""

    def __init__(self, kernel_name: str, cwd: Path, connection_dir: Path) -> None:
        spec = KernelSpecManager().get_kernel_spec(kernel_name)
        self.connection_file, _ = write_connection_file(
            str(connection_dir / f"kernel-{kernel_name}.json"), ip="127.0.0.1", transport="tcp"
        )
        argv = [arg.replace("{connection_file}", self.connection_file) for arg in spec.argv]
        self.process = subprocess.Popen(
            argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.client = BlockingKernelClient(connection_file=self.connection_file)
        self.client.load_connection_file()
        self.client.start_channels()

    def ready(self) -> dict:
        self.client.wait_for_ready(timeout=60)
        return self.client.kernel_info(reply=True, timeout=30)["content"]

    def run(self, code: str, timeout: float = 60, **kwargs) -> str:
        chunks: list[str] = []

        def collect(message):
            if message["msg_type"] == "stream":
                chunks.append(message["content"]["text"])

        reply = self.client.execute_interactive(
            code, output_hook=collect, timeout=timeout, **kwargs
        )
        assert reply["content"]["status"] == "ok", reply["content"]
        return "".join(chunks)

    def close(self) -> None:
        self.client.stop_channels()
        heartbeat = self.client._hb_channel  # a thread that may still be making its socket
        if heartbeat is not None and heartbeat.is_alive():
            heartbeat.join(5)
        self.client.context.destroy(linger=0)  # each client's own: a hundred lives add up
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate(timeout=30)


@pytest.fixture
def launch(tmp_path):
    launched: list[Launched] = []

    def start(kernel_name: str, cwd: Path) -> Launched:
        launched.append(Launched(kernel_name, cwd, tmp_path))
        return launched[-1]

    yield start
    for each in launched:
        each.close()


@pytest.fixture(params=["in-process", "agent"])
def argv_mode(request, monkeypatch):
    """The launcher hands the kernel to the user's warm-kernel agent, or runs it itself."""
    stop_agent()
    monkeypatch.setenv(agent_client.SWITCH, "1" if request.param == "agent" else "0")
    yield request.param
    stop_agent()


def listener(kernel: Launched, argv_mode: str) -> int:
    """The process that listens on the client's ports: the agent, or the launcher."""
    return ping()["pid"] if argv_mode == "agent" else kernel.process.pid


@pytest.fixture(scope="module")
def no_network_kernel(installed_kernel) -> str:
    def no_network(spec):
        spec["metadata"]["kernel_provisioner"]["config"]["network_mode"] = "none"

    return variant_kernelspec(installed_kernel, "dk-test-no-network", no_network)


@pytest.mark.parametrize("network", ["bridge", "none"])
def test_a_client_running_argv_gets_the_distro_kernel_as_if_it_were_local(
    network, argv_mode, installed_kernel, no_network_kernel, launch, engine, tmp_path
):
    kernel_name = installed_kernel if network == "bridge" else no_network_kernel
    work = tmp_path / "notebooks"
    work.mkdir()
    kernel = launch(kernel_name, work)
    assert kernel.ready()["status"] == "ok"

    (container,) = launched_containers(engine, kernel.process.pid)
    inspect = engine.api.inspect_container(container.id)
    assert inspect["HostConfig"]["NetworkMode"] == network
    assert not inspect["NetworkSettings"]["Ports"]  # nothing published by the engine
    server = psutil.Process(listener(kernel, argv_mode))
    listening = [
        c.laddr.ip for c in server.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN
    ]
    assert len(listening) == 5 and all(ip.startswith("127.") for ip in listening), listening
    assert sorted(c.laddr.port for c in server.net_connections(
        kind="inet") if c.status == psutil.CONN_LISTEN) == sorted(
        port for key, port in json.loads(Path(kernel.connection_file).read_text()).items()
        if key.endswith("_port")
    )  # fmt: skip

    out = kernel.run(
        "import os; print(open('/etc/os-release').read()); print('CWD', os.getcwd()); "
        "open('written.txt', 'w').write('x')"
    )
    assert 'VERSION_ID="12"' in out and "ID=debian" in out
    assert f"CWD {work}" in out
    written = (work / "written.txt").stat()
    assert (written.st_uid, written.st_gid) == (os.getuid(), os.getgid())

    # stdin: input_request reaches the client that asked, through the relay
    kernel.client.execute("name = input('who? ')", allow_stdin=True)
    request = kernel.client.get_stdin_msg(timeout=30)
    assert request["content"]["prompt"] == "who? "
    kernel.client.input("ada")
    kernel.client.get_shell_msg(timeout=30)
    assert kernel.run("print(name)") == "ada\n"

    # 50 MB of output arrives intact
    big = kernel.run(
        "import hashlib; data = ''.join(chr(65 + i % 26) for i in range(50_000_000)); "
        "print(hashlib.sha256(data.encode()).hexdigest()); print(data, end='')",
        timeout=120,
    )
    digest, data = big.split("\n", 1)
    assert len(data) == 50_000_000
    assert hashlib.sha256(data.encode()).hexdigest() == digest

    # SIGINT to the launcher interrupts the running cell, as VS Code interrupts
    msg_id = kernel.client.execute("import time; time.sleep(30)")
    time.sleep(1)
    interrupted = time.monotonic()
    kernel.process.send_signal(signal.SIGINT)
    reply = kernel.client.get_shell_msg(timeout=10)
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert time.monotonic() - interrupted < 2
    assert kernel.run("print('still here')") == "still here\n"

    # shutdown_request ends the kernel; the launcher exits with it and leaves nothing
    kernel.client.shutdown()
    assert kernel.process.wait(timeout=30) == 0
    assert launched_containers(engine, kernel.process.pid) == []


def test_a_slow_start_is_not_taken_for_a_dead_kernel(installed_kernel, launch, tmp_path):
    """jupyter_client's wait_for_ready gives up when the heartbeat is silent for a second
    before the first kernel_info_reply: the launcher answers it while the kernel starts."""

    def slow(spec):
        config = spec["metadata"]["kernel_provisioner"]["config"]
        config["container_argv"] = [
            "/bin/sh",
            "-c",
            f"sleep 3; exec {shlex.join(config['container_argv'])}",
        ]

    kernel = launch(variant_kernelspec(installed_kernel, "dk-test-slow", slow), tmp_path)
    started = time.monotonic()
    assert kernel.ready()["status"] == "ok"
    assert time.monotonic() - started > 3
    assert kernel.run("print(1 + 1)") == "2\n"


def test_a_sigkilled_launcher_leaves_no_container(
    argv_mode, installed_kernel, launch, engine, tmp_path
):
    kernel = launch(installed_kernel, tmp_path)
    kernel.ready()
    assert len(launched_containers(engine, kernel.process.pid)) == 1
    kernel.process.kill()  # not reaped yet: a client may take its time
    assert wait_until(lambda: not launched_containers(engine, kernel.process.pid), GONE_WITHIN)


def test_gc_collects_the_container_when_launcher_and_watchdog_both_died(
    installed_kernel, launch, engine, tmp_path
):
    kernel = launch(installed_kernel, tmp_path)
    kernel.ready()
    launcher = psutil.Process(kernel.process.pid)
    (watchdog,) = [
        process for process in psutil.process_iter(["cmdline"])
        if process.info["cmdline"] == launcher.cmdline() and process.pid != launcher.pid
    ]  # fmt: skip
    assert os.getsid(watchdog.pid) != os.getsid(launcher.pid)  # outside the client session
    watchdog.kill()
    kernel.process.kill()
    kernel.process.wait(timeout=10)
    assert len(launched_containers(engine, kernel.process.pid)) == 1
    gc = run_cli("gc")
    assert gc.returncode == 0, gc.stderr
    assert launched_containers(engine, kernel.process.pid) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_stop_the_kernel_and_remove_its_container(
    signum, argv_mode, installed_kernel, launch, engine, tmp_path
):
    kernel = launch(installed_kernel, tmp_path)
    kernel.ready()
    (container,) = launched_containers(engine, kernel.process.pid)
    runtime_dir = Path(container.labels[LABEL_RUNTIME_DIR])
    assert runtime_dir.is_dir()
    kernel.process.send_signal(signum)
    kernel.process.wait(timeout=30)
    assert launched_containers(engine, kernel.process.pid) == []
    assert not runtime_dir.exists()


def test_a_kernel_that_exits_by_itself_ends_its_launcher_with_its_status(
    argv_mode, installed_kernel, launch, engine, tmp_path
):
    """A crash is not a shutdown: the launcher exits with the kernel's own status (only
    after a client's shutdown_request is the kernel's end taken for a clean exit)."""
    kernel = launch(installed_kernel, tmp_path)
    kernel.ready()
    # Interrupted once first: the host watches the kernel's init from then on (its exit
    # is seen in /proc before the engine reports the exit status).
    msg_id = kernel.client.execute("import time; time.sleep(30)")
    time.sleep(1)
    kernel.process.send_signal(signal.SIGINT)
    reply = kernel.client.get_shell_msg(timeout=10)
    assert (reply["parent_header"]["msg_id"], reply["content"]["ename"]) == (
        msg_id,
        "KeyboardInterrupt",
    )
    kernel.client.execute("import os; os._exit(3)")
    assert kernel.process.wait(timeout=30) == 3
    assert wait_until(lambda: not launched_containers(engine, kernel.process.pid), GONE_WITHIN)


def test_a_kernel_that_ignores_its_shutdown_request_is_stopped_as_a_local_one_would_be(
    argv_mode, installed_kernel, launch, engine, tmp_path
):
    """jupyter_client stops a local kernel that is still there after shutdown_wait_time;
    a client that only sends shutdown_request and waits (not every client kills) must
    not wait for ever on a distro kernel."""
    kernel = launch(installed_kernel, tmp_path)
    kernel.ready()
    kernel.run("get_ipython().kernel.control_handlers['shutdown_request'] = lambda *a: None")
    assert launched_containers(engine, kernel.process.pid) != []
    kernel.client.shutdown()
    kernel.process.wait(timeout=45)
    assert launched_containers(engine, kernel.process.pid) == []


# A client process on jupyter_client's KernelManager, its kernel started and answering.
STARTS_A_KERNEL = textwrap.dedent(
    """
    import sys, time
    from jupyter_client.manager import KernelManager

    manager = KernelManager(kernel_name=sys.argv[1])
    manager.start_kernel(cwd=sys.argv[2])
    client = manager.client()
    client.start_channels()
    client.wait_for_ready(timeout=60)
    """
)
JC6_SCRIPT = STARTS_A_KERNEL + textwrap.dedent(
    """
    def run(code):
        out = []
        def hook(message):
            if message["msg_type"] in ("stream", "error"):
                out.append(message["content"].get("text") or message["content"]["ename"])
        client.execute_interactive(code, output_hook=hook, timeout=60)
        return "".join(out).strip()

    print("cwd", run("import os; kept = 1; print(os.getcwd())"))
    client.execute("import time; time.sleep(30)")
    time.sleep(1)
    manager.interrupt_kernel()
    print("interrupt", client.get_shell_msg(timeout=10)["content"]["ename"])
    manager.restart_kernel()
    client.wait_for_ready(timeout=60)
    print("after restart", run("print('kept' in dir())"))
    manager.shutdown_kernel()
    print("alive", manager.is_alive())
    client.stop_channels()
    """
)


def test_jupyter_client_6_starts_interrupts_restarts_and_shuts_down_a_distro_kernel(
    argv_mode, installed_kernel, jupyter_client_6, engine, tmp_path
):
    before = kernels(engine)
    result = subprocess.run(
        [jupyter_client_6, "-c", JC6_SCRIPT, installed_kernel, str(tmp_path)],
        capture_output=True, text=True, timeout=300, env=dict(os.environ),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"cwd {tmp_path}",
        "interrupt KeyboardInterrupt",
        "after restart False",
        "alive False",
    ]
    # jupyter_client 6 SIGKILLs a kernel that is slow to go; the watchdog removes it then.
    assert wait_until(lambda: kernels(engine) <= before, GONE_WITHIN)


# kernel.json's change, the install options that would ask for the same (none: no
# option asks for it any more), and the one line both give.
HAND_EDITS = {
    "cpus": ({"cpus": -1}, ["--cpus", "-1"], "cpus -1.0 must be a positive number"),
    "cpus-nan": ({"cpus": float("nan")}, ["--cpus", "nan"], "cpus nan must be a positive"),
    "cpus-more-than-host": ({"cpus": 1e9}, ["--cpus", "1e9"], "is more than this host's"),
    "memory-huge": ({"memory": "99999999999g"}, ["--memory", "99999999999g"], "is too large"),
    "memory-tiny": ({"memory": "1b"}, ["--memory", "1b"], "below the engine's minimum"),
    "pids": (
        {"pids_limit": 99999999999999},
        ["--pids-limit", "99999999999999"],
        "is more than Linux can ever run",
    ),
    "engine-socket": (
        {"mounts": ["/var/run:/host-run"]},
        ["--mount", "/var/run:/host-run"],
        "would hand the kernel the container engine",
    ),
    "system-folder-writable": (
        {"mounts": ["/etc:/hostetc:rw"]},
        ["--mount", "/etc:/hostetc:rw"],
        "would let the kernel write the host's /etc",
    ),
    "run-as-root": ({"run_as_root": True}, [], "run_as_root is no longer supported"),
}


@pytest.mark.parametrize("edit", sorted(HAND_EDITS))
async def test_a_hand_edited_kernelspec_is_refused_on_both_paths_with_the_cli_message(
    edit, argv_mode, installed_kernel, launch, engine, tmp_path
):
    change, options, message = HAND_EDITS[edit]

    def hand_edit(spec):
        spec["metadata"]["kernel_provisioner"]["config"].update(change)

    name = variant_kernelspec(installed_kernel, f"dk-test-edited-{edit}", hand_edit)
    with pytest.raises(InvalidInput, match=message):
        await AsyncKernelManager(kernel_name=name).start_kernel(cwd=str(tmp_path))
    kernel = launch(name, tmp_path)
    assert kernel.process.wait(timeout=30) == 2
    stderr = kernel.process.stderr.read()
    assert stderr.count("\n") == 1 and message in stderr, stderr
    if not options:
        return
    cli = subprocess.run(
        [sys.executable, "-m", "distrokernels", "install", "debian:bookworm", "--name", "x",
         *options],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert cli.returncode == 2
    assert message in cli.stderr and cli.stderr.count("\n") == 1


def test_the_launcher_fails_in_one_line_when_its_image_or_engine_is_gone(
    argv_mode, installed_kernel, launch, tmp_path
):
    def gone(spec):
        config = spec["metadata"]["kernel_provisioner"]["config"]
        config["image"], config["image_id"] = "distrokernels/deleted:0", ""

    no_image = launch(variant_kernelspec(installed_kernel, "dk-test-gone", gone), tmp_path)
    assert no_image.process.wait(timeout=30) == 10
    stderr = no_image.process.stderr.read()
    assert stderr.count("\n") == 1 and "distrokernels install debian:bookworm --replace" in stderr

    def no_engine(spec):
        spec["metadata"]["kernel_provisioner"]["config"]["docker_host"] = "unix:///nonexistent"

    down = launch(variant_kernelspec(installed_kernel, "dk-test-down", no_engine), tmp_path)
    assert down.process.wait(timeout=30) == 3
    assert "the Docker engine is not reachable" in down.process.stderr.read()


EXITS_WITHOUT_SHUTDOWN = textwrap.dedent(
    """
    import sys
    from jupyter_client.manager import KernelManager

    manager = KernelManager(kernel_name=sys.argv[1])
    manager.start_kernel(cwd=sys.argv[2])
    print(manager.provisioner.container_id, flush=True)
    # and exits without shutting the kernel down, as euporie-console's exit does
    """
)


def test_a_client_that_exits_without_shutting_its_kernel_down_leaves_no_container(
    installed_kernel, engine, tmp_path
):
    result = subprocess.run(
        [sys.executable, "-c", EXITS_WITHOUT_SHUTDOWN, installed_kernel, str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    container = result.stdout.strip()
    assert container
    assert wait_until(
        lambda: container not in {c.id for c in engine.kernel_containers()}, GONE_WITHIN
    )


HOLDS_A_KERNEL = STARTS_A_KERNEL + "print(manager.kernel.pid, flush=True)\ntime.sleep(3600)\n"


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_killed_jupyter_client_6_server_leaves_no_launcher_and_no_container(
    argv_mode, installed_kernel, jupyter_client_6, engine, tmp_path
):
    """Notebook 6's server SIGKILLed: its launcher is re-parented, sees its client is
    gone (JPY_PARENT_PID, as ipykernel watches it) and stops the kernel."""
    client = subprocess.Popen(
        [jupyter_client_6, "-c", HOLDS_A_KERNEL, installed_kernel, str(tmp_path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    launcher = int(client.stdout.readline())
    assert launched_containers(engine, launcher)
    client.kill()
    client.wait()
    assert wait_until(
        lambda: _gone(launcher) and not launched_containers(engine, launcher), GONE_WITHIN
    )
