"""The parts of a start, without an engine: the transport (its files, readiness and the
one private jupyter_client call), which starts a warm container can serve, why a kernel
stopped; and the launcher's watchdog."""

import asyncio
import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest
import zmq
from jupyter_client.manager import KernelManager

from distrokernels import readiness, runtime, transport, warm_start
from distrokernels.backends import OUT_OF_MEMORY, KernelState
from distrokernels.config import KernelConfig
from distrokernels.errors import PlaintextRefused

WATCH = textwrap.dedent(
    """
    import os
    from distrokernels import watchdog
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"url unix:///nonexistent/engine.sock\\n")
    os.close(write_fd)  # the watched process is gone, and never said "done"
    watchdog.watch(read_fd, "owner-token")
    """
)


def test_the_watchdog_logs_a_sweep_it_could_not_do(tmp_path):
    """It has no terminal: a failure to remove its launcher's kernel goes to its log."""
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path)}
    subprocess.run([sys.executable, "-c", WATCH], env=env, timeout=60, check=True)
    logs = list((tmp_path / "distrokernels" / "logs").glob("watchdog-*.log"))
    assert len(logs) == 1
    lines = logs[0].read_text().splitlines()
    assert len(lines) == 2  # one per sweep
    assert lines[0].startswith(
        "could not remove the kernels of owner-token on 'unix:///nonexistent/engine.sock': "
    )


def test_an_interrupt_by_message_is_an_interrupt_request_on_the_control_channel():
    control = zmq.Context.instance().socket(zmq.ROUTER)
    try:
        manager = KernelManager(transport="tcp", ip="127.0.0.1")
        manager.control_port = control.bind_to_random_port("tcp://127.0.0.1")
        manager.session.key = b"a-key"
        transport.send_interrupt_request(manager)
        assert control.poll(10_000)
        _, frames = manager.session.feed_identities(control.recv_multipart())
        message = manager.session.deserialize(frames)
        assert message["header"]["msg_type"] == "interrupt_request"
        manager._control_socket.close()
    finally:
        control.close()


COMMAND = ["/opt/distrokernels/bin/python", "-m", "ipykernel_launcher", "-f", "/run/x.json"]


@pytest.fixture
def folders(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    (tmp_path / "run").mkdir(mode=0o700)
    (tmp_path / "root" / "course").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    return tmp_path


def _template(config, cwd, command=COMMAND):
    return warm_start.template(config, "k", command, str(cwd), {"LANG": "C"}, "", None)


def test_a_start_in_a_folder_under_the_pool_root_has_a_warm_template(folders):
    config = KernelConfig(image="distrokernels/debian-12:abc", pool_root=str(folders / "root"))
    template = _template(config, folders / "root" / "course")
    assert template is not None and template.size == 1
    assert template.spec.working_dir == str(folders / "root")  # the pool root: any folder in it
    assert template.spec.command == COMMAND[:1]  # the waiter's python; the rest comes in the claim


def test_no_warm_template_outside_the_pool_root_for_tcp_for_no_pool_or_for_a_script(folders):
    root = str(folders / "root")
    assert _template(KernelConfig(image="i", pool_root=root), folders / "elsewhere") is None
    assert _template(KernelConfig(image="i", pool_root=root, pool_size=0), folders / "root") is None
    remote = KernelConfig(image="i", pool_root=root, docker_host="tcp://127.0.0.1:2375")
    assert _template(remote, folders / "root") is None
    script = ["/usr/bin/python3", "/opt/kernel.py", "-f", "x"]
    assert _template(KernelConfig(image="i", pool_root=root), folders / "root", script) is None


def test_jupyter_and_the_kernel_reach_each_other_over_ipc_in_the_kernels_own_folder(folders):
    folder = runtime.new_kernel_folder()
    manager = KernelManager()
    transport.set_up(manager, folder, encrypt=False, uses_tcp=False)
    assert manager.connection_file == f"{folder}/kernel.json"  # host-only
    assert (manager.transport, manager.ip) == ("ipc", f"{folder}/io/k")
    info = transport.write_ipc_files(manager, "a.ipynb")
    transport.fresh_io(folder, info)
    with open(f"{folder}/io/kernel.json") as kernel_file:
        kernel_side = json.load(kernel_file)
    assert kernel_side["ip"] == "/run/distrokernels/k"  # where its container sees the folder
    assert kernel_side["key"] == info["key"].decode()
    ready = transport.sockets_exist(manager)
    assert not asyncio.run(ready())
    ports = [manager.shell_port, manager.iopub_port, manager.stdin_port, manager.hb_port]
    for port in [*ports, manager.control_port]:
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(f"{folder}/io/k-{port}")
    assert asyncio.run(ready())


def test_a_tcp_kernel_is_encrypted_unless_its_ipykernel_cannot_and_plaintext_was_allowed():
    assert transport.encrypts("7.4.0", uses_tcp=True, plaintext_tcp=False, policy="disabled")
    assert not transport.encrypts("7.4.0", uses_tcp=False, plaintext_tcp=False, policy="disabled")
    assert not transport.encrypts("6.29.5", uses_tcp=True, plaintext_tcp=True, policy="disabled")
    with pytest.raises(PlaintextRefused):
        transport.encrypts("6.29.5", uses_tcp=True, plaintext_tcp=False, policy="disabled")


def test_why_a_kernel_stopped_names_its_memory_limit():
    stopped = KernelState(running=False, exit_code=137, reason=OUT_OF_MEMORY)
    assert readiness.why_stopped(stopped, "64m")[0] == "ran out of memory (limit 64m)"
    assert "host ran out" in readiness.why_stopped(stopped, None)[0]
    assert readiness.why_stopped(KernelState(False, 3), None) == ("exited with code 3", "")
