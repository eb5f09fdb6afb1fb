"""The launcher's watchdog and the one private jupyter_client call, without an engine."""

import os
import subprocess
import sys
import textwrap

import zmq
from jupyter_client.manager import KernelManager

from distrokernels import transport

WATCH = textwrap.dedent(
    """
    import os
    from distrokernels import launcher
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"url unix:///nonexistent/engine.sock\\n")
    os.close(write_fd)  # the launcher is gone, and never said "done"
    launcher._watch(read_fd, "owner-token")
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
        "could not remove the kernel of owner-token on 'unix:///nonexistent/engine.sock': "
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
