"""The user's warm-kernel agent: warm kernels for clients outside a Jupyter server.

Each test starts clients with the agent switched on (the `agent` fixture), so their
first start also starts the agent, and stops it afterwards.
"""

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import psutil
import pytest
from jupyter_client.manager import AsyncKernelManager

from distrokernels import agent_client
from distrokernels.engine import LABEL_OWNER
from distrokernels.owners import process_start_time
from distrokernels.pool import idle_warm_containers
from distrokernels.runtime import runtime_root

from .agent import agent_log_tail, ping, stop_agent, wait_for_ready_warm
from .conftest import BASE, KERNEL, kill_with_its_watchdog, run_cli, run_code
from .test_other_clients import (
    EXITS_WITHOUT_SHUTDOWN,
    GONE_WITHIN,
    STARTS_A_KERNEL,
    Launched,
    kernels,
    launched_containers,
    wait_until,
)
from .test_warm_pool import PROBE

THIN_LAUNCHER_USS_MB = 10  # the bound on what the argv launcher itself holds


def removed(engine, container: str) -> bool:
    """Whether the container is gone within GONE_WITHIN (the agent removes a stopped
    kernel's container off its client's path, on a thread)."""

    def gone() -> bool:
        return all(c.id != container for c in engine.kernel_containers())

    return wait_until(gone, GONE_WITHIN)


def test_an_argv_client_is_served_warm_and_its_launcher_stays_thin(
    agent, installed_kernel, engine, tmp_path
):
    first = Launched(installed_kernel, tmp_path, tmp_path)
    first.ready()
    first.client.shutdown()
    assert first.process.wait(timeout=30) == 0
    first.close()
    (warm,) = wait_for_ready_warm()

    second = Launched(installed_kernel, tmp_path, tmp_path)
    try:
        assert second.ready()["status"] == "ok"
        assert [c.id for c in launched_containers(engine, second.process.pid)] == [warm]
        assert second.run("import os; print(os.getcwd())") == f"{tmp_path}\n"
        # a hostile notebook cannot reach the agent that served it, nor the runtime folder
        socket = runtime_root() / agent_client.SOCKET
        reach = (
            "import socket\n"
            "s = socket.socket(socket.AF_UNIX)\n"
            f"try:\n    s.connect({str(socket)!r}); print('reached')\n"
            "except OSError as e:\n    print(type(e).__name__)\n"
            f"import os; print(os.path.exists({str(runtime_root())!r}))"
        )
        assert second.run(reach) == "FileNotFoundError\nFalse\n"
        uss = psutil.Process(second.process.pid).memory_full_info().uss / 2**20
        assert uss <= THIN_LAUNCHER_USS_MB, f"the launcher holds {uss:.1f} MB"
        running = second.client.execute("import time; time.sleep(30)")
        reply = None
        while reply is None or reply["parent_header"].get("msg_id") != running:
            if reply is None:
                time.sleep(0.5)
                second.process.send_signal(signal.SIGINT)
            reply = second.client.get_shell_msg(timeout=10)
        assert reply["content"]["ename"] == "KeyboardInterrupt"
    finally:
        second.client.shutdown()
        assert second.process.wait(timeout=30) == 0
        second.close()
    assert removed(engine, warm)


async def test_nbclient_run_and_papermill_are_served_warm_and_own_their_kernels(
    agent, installed_kernel, engine, tmp_path
):
    async def one_start() -> tuple[str, str]:
        manager = AsyncKernelManager(kernel_name=installed_kernel)
        await manager.start_kernel(cwd=str(tmp_path))
        try:
            container = manager.provisioner.container_id
            return container, await run_code(manager, "import os; print(os.getcwd())")
        finally:
            await manager.shutdown_kernel()

    await one_start()  # cold: it starts the agent, which warms one for this folder
    (warm,) = await asyncio.to_thread(wait_for_ready_warm)
    container, cwd = await one_start()
    assert (container, cwd) == (warm, f"{tmp_path}\n")
    assert removed(engine, container)

    # `distrokernels run`: another process, the same agent
    (warm,) = await asyncio.to_thread(wait_for_ready_warm)
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": installed_kernel, "display_name": "x"}
    notebook.cells = [nbformat.v4.new_code_cell("import os; print(os.getcwd())")]
    path = tmp_path / "n.ipynb"
    nbformat.write(notebook, path)
    run = await asyncio.to_thread(run_cli, "run", str(path))
    assert run.returncode == 0, run.stderr
    assert nbformat.read(path, as_version=4).cells[0].outputs[0]["text"] == f"{tmp_path}\n"
    assert removed(engine, warm)  # it served the run

    # papermill: another process again, on nbclient
    (warm,) = await asyncio.to_thread(wait_for_ready_warm)
    papermill = await asyncio.to_thread(
        subprocess.run,
        [str(Path(sys.executable).parent / "papermill"), "--no-progress-bar", str(path), str(path)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert papermill.returncode == 0, papermill.stderr
    assert nbformat.read(path, as_version=4).cells[0].outputs[0]["text"] == f"{tmp_path}\n"
    assert removed(engine, warm)  # it served papermill
    doctor = await asyncio.to_thread(run_cli, "doctor")
    assert f"ok    warm-kernel agent: pid {ping()['pid']}," in doctor.stdout, doctor.stdout


def test_a_client_that_exits_holding_a_warm_kernel_leaves_nothing(
    agent, installed_kernel, engine, tmp_path
):
    """A claimed warm container is its client's (runtime.claimant): the client's own
    watchdog removes it, though the agent that created it lives on."""

    def exits_without_shutdown() -> str:
        result = subprocess.run(
            [sys.executable, "-c", EXITS_WITHOUT_SHUTDOWN, installed_kernel, str(tmp_path)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    exits_without_shutdown()
    (warm,) = wait_for_ready_warm()
    assert exits_without_shutdown() == warm
    assert removed(engine, warm)
    assert ping() is not None


def test_an_idle_agent_exits_by_itself_and_removes_its_warm_containers(
    agent, installed_kernel, engine, tmp_path, monkeypatch
):
    monkeypatch.setenv(agent_client.IDLE_TIMEOUT, "3")  # the environment it is started with
    started = subprocess.run(
        [sys.executable, "-c", EXITS_WITHOUT_SHUTDOWN, installed_kernel, str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    (warm,) = wait_for_ready_warm()
    pid = ping()["pid"]
    assert wait_until(lambda: not process_start_time(pid), 60)
    assert warm not in {c.id for c in engine.kernel_containers()}


def test_a_killed_agent_leaves_what_gc_and_the_next_agent_collect(
    agent, installed_kernel, engine, tmp_path
):
    kernel = Launched(installed_kernel, tmp_path, tmp_path)
    kernel.ready()
    (running,) = launched_containers(engine, kernel.process.pid)
    (warm,) = wait_for_ready_warm()
    state = ping()
    kill_with_its_watchdog(state["pid"])
    assert kernel.process.wait(timeout=30) != 0  # the launcher says its agent is gone
    assert "agent stopped" in kernel.process.stderr.read()
    kernel.close()
    left = {c.id for c in engine.kernel_containers()}
    assert {running.id, warm} <= left
    gc = run_cli("gc")
    assert gc.returncode == 0, gc.stderr
    assert not {running.id, warm} & {c.id for c in engine.kernel_containers()}
    with pytest.raises(agent_client.AgentUnavailable):  # its socket answers no one
        agent_client.connect()

    # the next agent starts as the first did, and sweeps what a killed one left
    again = Launched(installed_kernel, tmp_path, tmp_path)
    try:
        assert again.ready()["status"] == "ok"
        assert ping()["pid"] != state["pid"]
    finally:
        again.close()


def test_a_users_agent_serves_them_and_refuses_every_other_uid(
    agent, installed_kernel, engine, tmp_path
):
    """As an unprivileged user in the docker group: their argv kernel through their agent
    runs as them; root, whom the runtime folder's mode does not stop, is refused by the
    uid check, and another user cannot reach the socket at all."""
    from .test_unprivileged_user import ARGV_SCRIPT
    from .users import as_user, assert_kernel_runs_as_user, install_checkout, make_user, need_root

    need_root()
    account, work = make_user("dk-tester", docker_group=True)
    install_checkout()
    install = as_user(account, "distrokernels", "install", BASE, "--replace", "--no-pull")
    assert install.returncode == 0, install.stderr
    on = {agent_client.SWITCH: "1"}
    assert_kernel_runs_as_user(account, work, KERNEL, ARGV_SCRIPT, ("EXIT", "0"), env=on)
    start = as_user(
        account, "python", "-c",
        "from distrokernels import agent_client; c = agent_client.connect(); "
        "print(agent_client.socket_path()); c.close()",
        env=on,
    )  # fmt: skip
    assert start.returncode == 0, start.stderr  # the argv kernel's start started it
    socket = start.stdout.strip()
    try:
        _refused_and_unreachable(account, socket, engine)
    finally:
        stop = as_user(
            account, "python", "-c",
            "import os, signal, time; from distrokernels import agent_client; "
            "pid = agent_client.ask({'op': 'ping'})['pid']; os.kill(pid, signal.SIGTERM)\n"
            "while os.path.exists(f'/proc/{pid}'): time.sleep(0.05)",
        )  # fmt: skip
    assert stop.returncode == 0, stop.stderr  # it removed its warm container as it went


def _refused_and_unreachable(account, socket: str, engine) -> None:
    from .users import as_user, make_user

    assert Path(socket).parent.stat().st_uid == account.pw_uid
    before = {c.id for c in engine.kernel_containers()}
    connection = agent_client.connect(socket)
    try:
        with pytest.raises(agent_client.AgentUnavailable, match="serves uid"):
            connection.ask({"op": "ping"})
    finally:
        connection.close()
    connection = agent_client.connect(socket)
    try:
        with pytest.raises(agent_client.AgentUnavailable, match="serves uid"):
            connection.ask({"op": "claim", "template": {}, "context": agent_client.context()})
    finally:
        connection.close()
    assert {c.id for c in engine.kernel_containers()} <= before
    # another unprivileged user cannot even reach it
    other, _ = make_user("dk-tester2", docker_group=True)
    reach = as_user(
        other, "python", "-c",
        f"from distrokernels import agent_client; agent_client.connect({socket!r})",
    )  # fmt: skip
    assert reach.returncode != 0 and "Permission denied" in reach.stderr


CYCLES = 100


def test_a_hundred_argv_lives_with_random_sigkills_leave_nothing_behind(
    agent, installed_kernel, engine, tmp_path
):
    random.seed(24)
    folders_before = set(os.listdir(runtime_root()))
    fds = []
    for cycle in range(CYCLES):
        kernel = Launched(installed_kernel, tmp_path, tmp_path)
        ending = random.choice(["shutdown", "sigkill", "sigterm", "sigkill-at-once"])
        if ending != "sigkill-at-once":
            kernel.ready()
        if ending in ("shutdown", "sigterm"):
            kernel.client.shutdown() if ending == "shutdown" else kernel.process.terminate()
            try:
                kernel.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                state = ping()
                containers = {c[:12]: engine.container_state(c) for c in kernels(engine)}
                pytest.fail(
                    f"cycle {cycle}: the launcher outlived a {ending} by 60 s: {state}\n"
                    f"containers: {containers}\nagent log:\n{agent_log_tail()}"
                )
        else:
            kernel.process.kill()
        kernel.close()
        if cycle in (9, CYCLES - 1):
            assert wait_until(lambda: not ping()["runs"], GONE_WITHIN)
            fds.append(psutil.Process(ping()["pid"]).num_fds())
    assert fds[1] <= fds[0] + 4, f"the agent's descriptors grew: {fds}"
    assert wait_until(lambda: not kernels(engine), GONE_WITHIN)
    stop_agent()
    assert not idle_warm_containers(engine)
    assert not [c for c in engine.kernel_containers() if LABEL_OWNER in c.labels]
    assert set(os.listdir(runtime_root())) - folders_before <= {agent_client.LOCK}
    launchers = [
        p for p in psutil.process_iter(["cmdline"])
        if "distrokernels.launcher" in " ".join(p.info["cmdline"] or [])
        and p.status() != psutil.STATUS_ZOMBIE
    ]  # fmt: skip
    assert not launchers


async def test_kernels_the_agent_serves_warm_are_indistinguishable_from_cold_ones(
    agent, installed_kernel, engine, tmp_path, monkeypatch
):
    """The warm/cold equivalence of test_warm_pool.py, on both of the agent's paths: a
    KernelManager of the client's own, and an argv client (served by the container the
    first one's refill made: two clients of one environment share the agent's pool)."""
    monkeypatch.setenv("TZ", "Europe/Paris")
    env = {**os.environ, "JPY_SESSION_NAME": "a.ipynb"}

    async def probe_plain() -> tuple[str, dict]:
        manager = AsyncKernelManager(kernel_name=installed_kernel)
        await manager.start_kernel(cwd=str(tmp_path), env=env)
        try:
            seen = json.loads(await run_code(manager, PROBE))
            return manager.provisioner.container_id, seen
        finally:
            await manager.shutdown_kernel()

    def probe_argv() -> tuple[str, dict]:
        kernel = Launched(installed_kernel, tmp_path, tmp_path)
        try:
            kernel.ready()
            seen = json.loads(kernel.run(PROBE))
            (container,) = launched_containers(engine, kernel.process.pid)
            return container.id, seen
        finally:
            kernel.client.shutdown()
            kernel.process.wait(timeout=30)
            kernel.close()

    monkeypatch.setenv(agent_client.SWITCH, "0")
    _, cold_plain = await probe_plain()
    _, cold_argv = await asyncio.to_thread(probe_argv)
    monkeypatch.setenv(agent_client.SWITCH, "1")
    await probe_plain()  # starts the agent, which warms one for this folder
    (warm,) = await asyncio.to_thread(wait_for_ready_warm)
    container, warm_plain = await probe_plain()
    assert container == warm
    assert warm_plain == cold_plain
    (warm,) = await asyncio.to_thread(wait_for_ready_warm)
    container, warm_argv = await asyncio.to_thread(probe_argv)
    assert container == warm
    assert warm_argv == cold_argv
    assert cold_plain["cwd"] == cold_argv["cwd"] == str(tmp_path)
    assert cold_plain["environ"]["TZ"] == "Europe/Paris"


HOLDS_UNTIL_TOLD = STARTS_A_KERNEL + textwrap.dedent(
    """
    print(manager.kernel.pid, flush=True)
    sys.stdin.readline()
    manager.shutdown_kernel()
    """
)


def test_jupyter_client_6_is_served_warm(
    agent, installed_kernel, jupyter_client_6, engine, tmp_path
):
    def one_kernel() -> list[str]:
        client = subprocess.Popen(
            [jupyter_client_6, "-c", HOLDS_UNTIL_TOLD, installed_kernel, str(tmp_path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        launcher = int(client.stdout.readline())
        containers = [c.id for c in launched_containers(engine, launcher)]
        client.communicate("done\n", timeout=60)
        assert client.returncode == 0
        return containers

    one_kernel()
    (warm,) = wait_for_ready_warm()
    assert one_kernel() == [warm]
