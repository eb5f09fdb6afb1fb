"""Talking to the user's warm-kernel agent (agent.py): find it, start it, ask it.

The agent listens on ``agent.sock`` in the user's private runtime folder (runtime.py),
one JSON object per line each way. This module is light on purpose: the argv launcher
imports it and nothing heavier on its way to a kernel (no jupyter_client, docker-py,
zmq or provisioner), so what VS Code runs costs almost nothing before the kernel
answers.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from typing import Any

from .runtime import runtime_root

SOCKET = "agent.sock"
LOCK = "agent.lock"
SWITCH = "DISTROKERNELS_AGENT"  # "0" in a client's environment: no agent, start in-process
IDLE_TIMEOUT = "DISTROKERNELS_AGENT_IDLE_TIMEOUT"  # seconds (0: never), read by a new agent
# What decides which kernelspecs and engine a start finds: a client whose values differ
# from the agent's (which has those of the client that started it) is not served by it.
CONTEXT = (
    "DOCKER_HOST",
    "CONTAINER_HOST",
    "JUPYTER_PATH",
    "JUPYTER_DATA_DIR",
    "JUPYTER_CONFIG_DIR",
    "JUPYTER_PREFER_ENV_PATH",
    "XDG_DATA_HOME",
    "XDG_CONFIG_HOME",
    "HOME",
)
_ASK_TIMEOUT = 5.0  # seconds an answer may take (a claim, a refill: no engine call)
_START_TIMEOUT = 20.0  # seconds a new agent may take to listen
_START_POLL = 0.02


class AgentUnavailable(Exception):
    """No agent answers (none runs, this user's is starting, or it refused)."""


def context(with_prefix: bool = False) -> dict[str, str]:
    """This process's values of what decides a start (and its Python's prefix, where the
    kernelspecs installed with it are found)."""
    values = {key: os.environ.get(key, "") for key in CONTEXT}
    if with_prefix:
        values["prefix"] = sys.prefix
    return values


def mismatch(sent: object) -> str:
    """What differs between a client's context and this process's ('' when nothing)."""
    if not isinstance(sent, dict):
        return "no context"
    own = context(with_prefix="prefix" in sent)
    return ", ".join(sorted(key for key in own if sent.get(key) != own[key]))


def enabled(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """Whether clients of this environment use the agent."""
    return environ.get(SWITCH, "1") != "0"


def socket_path() -> str:
    """Where this user's agent listens."""
    return str(runtime_root() / SOCKET)


class Connection:
    """One connection to the agent: JSON lines out and in."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = b""

    def fileno(self) -> int:
        """The socket's descriptor (for select)."""
        return self.sock.fileno()

    def send(self, message: dict[str, Any]) -> None:
        """Send one message; AgentUnavailable when the agent is gone."""
        try:
            self.sock.sendall(json.dumps(message).encode() + b"\n")
        except OSError as error:
            raise AgentUnavailable(f"the agent went away: {error}") from error

    def receive(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next message; None when the agent closed the connection."""
        self.sock.settimeout(timeout)
        while b"\n" not in self._buffer:
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError as error:
                raise AgentUnavailable("the agent did not answer in time") from error
            except OSError:
                return None
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        message = json.loads(line)
        if not isinstance(message, dict):
            raise AgentUnavailable("the agent sent something else than an object")
        return message

    def ask(self, message: dict[str, Any], timeout: float = _ASK_TIMEOUT) -> dict[str, Any]:
        """Send a request and return its answer; a refusal raises AgentUnavailable."""
        try:
            self.send(message)
        except AgentUnavailable:  # it may have refused and closed before reading
            answer = self.receive(timeout)
            if answer is None or "refused" not in answer:
                raise
        else:
            answer = self.receive(timeout)
        if answer is None:
            raise AgentUnavailable("the agent closed the connection")
        if "refused" in answer:
            raise AgentUnavailable(str(answer["refused"]))
        if "mismatch" in answer:
            raise AgentUnavailable(f"the agent serves another environment ({answer['mismatch']})")
        return answer

    def close(self) -> None:
        """Close the connection (the agent ends what it ran for it)."""
        self.sock.close()


def connect(path: str | None = None) -> Connection:
    """A connection to the running agent; AgentUnavailable when none listens."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(path or socket_path())
    except OSError as error:
        sock.close()
        raise AgentUnavailable(f"no agent listens: {error.strerror}") from error
    return Connection(sock)


def spawn() -> None:
    """Start an agent, detached: in a session of its own (a terminal's Ctrl-C or a killed
    client's process group spares it) and through a shell that exits at once, so that it
    is init's child, not a zombie of this client's; a second one exits at once (agent.py's
    lock)."""
    subprocess.run(
        ["/bin/sh", "-c", 'exec "$0" -m distrokernels.agent &', sys.executable],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        cwd="/",
        check=False,
    )


def connect_or_start(timeout: float = _START_TIMEOUT) -> Connection:
    """A connection to the agent, starting one when none listens."""
    with contextlib.suppress(AgentUnavailable):
        return connect()
    spawn()
    deadline = time.monotonic() + timeout
    while True:
        try:
            return connect()
        except AgentUnavailable:
            if time.monotonic() > deadline:
                raise AgentUnavailable(f"no agent listened within {timeout:.0f} s") from None
            time.sleep(_START_POLL)


def ask(message: dict[str, Any], timeout: float = _ASK_TIMEOUT) -> dict[str, Any]:
    """One request to the running agent on a connection of its own."""
    connection = connect()
    try:
        return connection.ask(message, timeout)
    finally:
        connection.close()
