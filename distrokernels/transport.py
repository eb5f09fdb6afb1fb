"""How Jupyter and one kernel reach each other: IPC in its runtime folder, or TCP.

On a local engine the kernel binds IPC sockets in its own io folder (runtime.py), which
is the only folder of the runtime root its container sees, and Jupyter connects to the
same files from the host: no port opens on any interface. On a swarm or a remote
engine the kernel is reached over TCP, encrypted with CurveZMQ (connection.py), at the
address and ports the engine publishes. This module writes each side's connection
file, says when the kernel is ready, and sends the one message jupyter_client has no
public call for.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Awaitable, Callable
from typing import Any

import zmq
from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.manager import KernelManager

from . import connection, runtime
from .kernel_engine import KernelEngine

_FIRST_HEARTBEAT_WAIT = 0.2  # seconds; grows while a TCP kernel does not answer
_LONGEST_HEARTBEAT_WAIT = 3.0


def encrypts(ipykernel: str, uses_tcp: bool, plaintext_tcp: bool, policy: str) -> bool:
    """TCP: always when the kernel can (else opt in to plaintext). IPC in the private
    folder: when Jupyter's transport_encryption asks for it."""
    if uses_tcp:
        return connection.choose_encryption(ipykernel, plaintext_tcp, policy)
    if policy == "disabled":
        return False
    return connection.choose_encryption(ipykernel, allow_plaintext=True, policy=policy)


def set_up(km: KernelManager, runtime_dir: str, encrypt: bool, uses_tcp: bool) -> None:
    """Jupyter's side of this start: its connection file in the kernel's host-only
    folder, its keys, and (IPC) the socket paths in the kernel's io folder."""
    km.connection_file = os.path.join(runtime_dir, "kernel.json")
    if encrypt and km.curve_publickey is None:
        km.curve_publickey, km.curve_secretkey = zmq.curve_keypair()
    if uses_tcp:
        # Jupyter's address and ports are known once the engine has placed the kernel;
        # a restart keeps the ones it had.
        km.transport = "tcp"
    else:
        # The kernel binds them in its own folder (runtime.KERNEL_DIR), which is this
        # path's io folder on the host.
        km.transport, km.ip = "ipc", os.path.join(runtime_dir, runtime.IO, "k")


def write_ipc_files(km: KernelManager, session_name: str) -> KernelConnectionInfo:
    """Jupyter's connection file (host-only), and what it says, for an IPC kernel. The
    session's name goes in where jupyter_client records one (8+; 7 writes none)."""
    parameters = inspect.signature(km.write_connection_file).parameters.values()
    if any(parameter.kind is parameter.VAR_KEYWORD for parameter in parameters):
        km.write_connection_file(jupyter_session=session_name)
    else:
        km.write_connection_file()
    return km.get_connection_info()


def fresh_io(runtime_dir: str, info: KernelConnectionInfo, slot: str | None = None) -> None:
    """The folder this start's container mounts, new (a claimed warm ``slot`` moved in,
    or an empty one), holding the kernel's own copy of the connection file."""
    io = runtime.replace_io(runtime_dir, slot)
    runtime.write_new(io, "kernel.json", connection.ipc_kernel_side(info, runtime.KERNEL_DIR))


def sockets_exist(km: KernelManager) -> Callable[[], Awaitable[bool]]:
    """Ready when the five IPC sockets are bound (sockets themselves: no link counts)."""
    ports = [km.shell_port, km.iopub_port, km.stdin_port, km.hb_port, km.control_port]
    paths = [f"{km.ip}-{port}" for port in ports]

    async def ready() -> bool:
        return all(runtime.is_socket(path) for path in paths)

    return ready


class TcpReadiness:
    """Ready when the kernel is placed, its ports published, and it answers a heartbeat;
    ``info`` is then Jupyter's side of the connection."""

    def __init__(self, km: KernelManager, engine: KernelEngine) -> None:
        self._km = km
        self._engine = engine
        self._wait = _FIRST_HEARTBEAT_WAIT
        self.info: KernelConnectionInfo = {}

    async def __call__(self) -> bool:
        """One try: ask where the kernel is (until the engine says), then ping it."""
        if not self.info:
            endpoint = await self._engine.on_backend(lambda backend: backend.endpoint())
            if endpoint is None:
                return False
            self.info = connection.client_side(
                self._km.get_connection_info(), endpoint.address, endpoint.ports
            )
        if await connection.heartbeat_answers(self.info, self._wait):
            return True
        # A busy node needs longer for TCP and the Curve handshake: wait longer each try,
        # or no try would ever finish.
        self._wait = min(self._wait * 1.5, _LONGEST_HEARTBEAT_WAIT)
        return False


def send_interrupt_request(km: KernelManager) -> None:
    """An ``interrupt_request`` on the control channel: the interrupt of a kernel whose
    process no engine here can signal (ipykernel 6.2+). jupyter_client's own
    interrupt_kernel does the same through these two private members, the only ones used."""
    connect: Callable[[], Any] = km._connect_control_socket
    connect()
    km.session.send(km._control_socket, km.session.msg("interrupt_request", content={}))
