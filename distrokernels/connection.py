"""Connection info of TCP kernels: the kernel's side, Jupyter's side, and CurveZMQ.

A kernel on the local engine shares one connection file with Jupyter over IPC. A
kernel on a swarm node or a remote engine cannot: it binds fixed ports on every
interface of its own network namespace, and Jupyter connects to the node's address
and the ports the engine published there. Both sides share the HMAC key and, when
the kernel's ipykernel can use it, a CurveZMQ key pair that encrypts the traffic.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

import zmq
import zmq.asyncio

from .errors import KernelStartFailed, PlaintextRefused

if TYPE_CHECKING:  # jupyter_client's package imports its managers and clients: not here
    from jupyter_client.connect import KernelConnectionInfo

# Inside the container: its own network namespace, so fixed numbers never collide.
KERNEL_PORTS = {
    "shell_port": 50001,
    "iopub_port": 50002,
    "stdin_port": 50003,
    "control_port": 50004,
    "hb_port": 50005,
}
# Where the engine places the connection file (a swarm secret, or a file copied in).
DELIVERED_FILE = "/run/distrokernels/kernel.json"
# Older ipykernels rewrite their connection file at start: they get a writable copy.
RUNNING_FILE = "/home/kernel/.connection.json"

CURVE_SINCE = (7, 4)  # ipykernel reads curve_publickey/secretkey from the file since 7.4


def supports_curve(ipykernel_version: str) -> bool:
    parts = []
    for part in ipykernel_version.split(".")[:2]:
        if not part.isdigit():
            return False
        parts.append(int(part))
    return tuple(parts) >= CURVE_SINCE


def choose_encryption(ipykernel_version: str, allow_plaintext: bool, policy: str) -> bool:
    """Whether this TCP kernel's traffic is encrypted; refuse what the rules forbid.

    Encrypted whenever the kernel can do it. Plaintext only when the kernelspec opted
    in, and never when Jupyter's transport_encryption policy is 'required'.
    """
    if supports_curve(ipykernel_version) and zmq.has("curve"):
        return True
    if policy == "required":
        raise PlaintextRefused(
            f"transport_encryption is 'required', but this kernel's ipykernel "
            f"{ipykernel_version or '(unknown)'} cannot encrypt its traffic",
            "install it from a base whose Python is 3.10 or newer (ipykernel 7.4+)",
        )
    if not allow_plaintext:
        raise PlaintextRefused(
            f"this kernel is reached over TCP and its ipykernel "
            f"{ipykernel_version or '(unknown)'} cannot encrypt the traffic (CurveZMQ needs 7.4+)",
            "install it from a base whose Python is 3.10 or newer, or accept plaintext "
            "with `distrokernels install ... --plaintext-tcp`",
        )
    return False


def kernel_side(info: Mapping[str, Any]) -> bytes:
    """The kernel's connection file: all interfaces, the fixed in-container ports."""
    kernel = {key: _text(value) for key, value in info.items() if not key.endswith("_port")}
    kernel.update(KERNEL_PORTS, ip="0.0.0.0", transport="tcp")
    return json.dumps(kernel, indent=1).encode()


def ipc_kernel_side(info: Mapping[str, Any], folder: str) -> bytes:
    """A local kernel's connection file: its sockets in its own folder as it sees it."""
    kernel = {key: _text(value) for key, value in info.items()}
    kernel.update(ip=f"{folder}/k", transport="ipc")
    return json.dumps(kernel, indent=1).encode()


def client_side(
    info: Mapping[str, Any], address: str, published: dict[int, int]
) -> KernelConnectionInfo:
    """What Jupyter connects to: the node's address and the ports published there."""
    missing = [port for port in KERNEL_PORTS.values() if port not in published]
    if missing:
        raise KernelStartFailed(
            f"the engine did not publish the kernel's ports {missing}",
            "check that the node allows host-mode published ports",
        )
    client = dict(info, ip=address, transport="tcp")
    client.update({name: published[port] for name, port in KERNEL_PORTS.items()})
    return cast("KernelConnectionInfo", client)


def wrap_command(cmd: list[str], connection_file: str) -> list[str]:
    """The kernel command, reading a private writable copy of the delivered file."""
    argv = [RUNNING_FILE if arg == connection_file else arg for arg in cmd]
    copy = f"cp {DELIVERED_FILE} {RUNNING_FILE} && chmod 600 {RUNNING_FILE} && exec "
    return ["/bin/sh", "-c", copy + shlex.join(argv)]


async def heartbeat_answers(info: Mapping[str, Any], timeout: float) -> bool:
    """One ping on the kernel's heartbeat: True once the kernel answers.

    A published port accepts connections before the kernel binds it, so only an
    answer (through Curve when it is on) says the kernel is there.
    """
    context = zmq.asyncio.Context.instance()
    socket = context.socket(zmq.REQ)
    socket.linger = 0
    try:
        use_curve(socket, info)
        socket.connect(f"tcp://{info['ip']}:{info['hb_port']}")
        await socket.send(b"ping")
        if await socket.poll(int(timeout * 1000)):
            await socket.recv()
            return True
        return False
    finally:
        socket.close()


def use_curve(socket: zmq.Socket[Any], info: Mapping[str, Any], server: bool = False) -> None:
    """CurveZMQ on ``socket`` when ``info`` carries keys: both ends use the kernel's key
    pair, as jupyter_client does (the server is the kernel's side)."""
    if not info.get("curve_publickey"):
        return
    public = _bytes(info["curve_publickey"])
    socket.curve_secretkey = _bytes(info["curve_secretkey"])
    socket.curve_publickey = public
    if server:
        socket.curve_server = True
    else:
        socket.curve_serverkey = public


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def _bytes(value: Any) -> bytes:
    return value.encode() if isinstance(value, str) else value
