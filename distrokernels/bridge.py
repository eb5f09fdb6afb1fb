"""Relay a client's five endpoints to a kernel's own, message for message.

A client that launches kernels itself (VS Code, jupyter_client 6) writes a connection
file with the transport, address and ports it chose. The kernel container does not use
them: it runs exactly as the provisioner runs it, on IPC sockets in the private runtime
folder (so it needs no network and opens no port), or over CurveZMQ TCP on a swarm
node. The launcher binds the client's endpoints, on loopback only, and this bridge
relays between the two sides in libzmq's own proxy: C code, one thread per channel,
without the GIL, whole messages moved without copying or re-signing them (both sides
share the client's HMAC key).

Routing works through the proxy as it does for a direct connection: a ROUTER in front
keeps the client's identity in the envelope, and the kernel addresses replies to that
envelope. The kernel sends stdin's input_request to the envelope of the shell request
that asked for input, so the shell and stdin relays connect under one routing id.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import zmq
import zmq.asyncio

from .connection import use_curve
from .errors import InvalidInput

# channel -> (the client-facing socket type, the kernel-facing socket type)
CHANNELS = {
    "shell": (zmq.ROUTER, zmq.DEALER),
    "control": (zmq.ROUTER, zmq.DEALER),
    "stdin": (zmq.ROUTER, zmq.DEALER),
    "hb": (zmq.ROUTER, zmq.DEALER),
    "iopub": (zmq.XPUB, zmq.XSUB),
}
_ROUTING_ID = b"distrokernels-bridge"
DELIMITER = b"<IDS|MSG>"  # between a message's routing ids and its signature
_MAX_HEADER = 4096  # bytes: a real header is a few hundred
_COPIES_KEPT = 100  # control messages the copy holds unread before it drops them
_JOIN_TIMEOUT = 5  # seconds a relay may take to stop
_counter = itertools.count()


def endpoint(info: Mapping[str, Any], channel: str) -> str:
    """A channel's zmq address in connection info: tcp://ip:port or ipc://ip-port."""
    port = info[f"{channel}_port"]
    if info.get("transport", "tcp") == "ipc":
        return f"ipc://{info['ip']}-{port}"
    return f"tcp://{info['ip']}:{port}"


def check_client_info(info: dict[str, Any]) -> None:
    """Refuse a connection file the bridge cannot honour, in one line."""
    missing = [f"{channel}_port" for channel in CHANNELS if f"{channel}_port" not in info]
    missing += [key for key in ("ip", "key") if key not in info]
    if missing:
        raise InvalidInput(
            f"the connection file lacks {', '.join(missing)}",
            "let the notebook client write it (it passes it as {connection_file})",
        )
    transport = info.get("transport", "tcp")
    if transport not in ("tcp", "ipc"):
        raise InvalidInput(f"transport {transport!r} is not tcp or ipc", "fix the client")
    if transport == "tcp" and not _is_loopback(info["ip"]):
        raise InvalidInput(
            f"the connection file asks for address {info['ip']}: a distro kernel is only "
            "served on loopback",
            "let the client use 127.0.0.1 (its default)",
        )


def is_shutdown_request(frames: list[bytes]) -> bool:
    """Whether a message's frames (routing ids, delimiter, signature, header, ...) are a
    shutdown_request; anything unreadable is not. The copy holds the kernel's messages
    too, so a header is parsed only when it is of a header's size."""
    try:
        header = frames[frames.index(DELIMITER) + 2]
        if len(header) > _MAX_HEADER:
            return False
        return bool(json.loads(header).get("msg_type") == "shutdown_request")
    except (ValueError, IndexError, AttributeError):
        return False


def _is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


@dataclass
class _Relay:
    thread: threading.Thread
    stop: zmq.Socket[bytes]  # the main thread's end of the proxy's control pair


class Bridge:
    """The client's endpoints bound, the kernel's connected, a proxy per channel.

    ``listen`` first, as soon as the launcher starts: the client's sockets connect while
    the container starts and its first requests wait in the bridge, instead of the
    client retrying its connections every 100 ms. ``connect`` once the kernel runs.
    """

    def __init__(self, client_info: dict[str, Any]) -> None:
        check_client_info(client_info)
        self.client_info = client_info
        self.context = zmq.Context()
        self._fronts: dict[str, zmq.Socket[bytes]] = {}
        self._relays: list[_Relay] = []
        self._echo: _Relay | None = None  # answers heartbeats until the kernel runs
        self._sockets: list[zmq.Socket[bytes]] = []
        self._disconnects: zmq.asyncio.Socket | None = None  # the kernel's hb disconnects
        self._control_copies: zmq.asyncio.Socket | None = None  # what the control relay moved

    def listen(self) -> None:
        """Bind the client's five endpoints."""
        for channel, (front_type, _) in CHANNELS.items():
            front = self._socket(front_type)
            if front_type == zmq.XPUB:
                front.setsockopt(zmq.XPUB_VERBOSE, 1)  # every client's subscription
            use_curve(front, self.client_info, server=True)
            address = endpoint(self.client_info, channel)
            try:
                front.bind(address)
            except zmq.ZMQError as error:
                raise InvalidInput(
                    f"cannot listen on {address}: {error}",
                    "another process holds that port; let the client choose free ports",
                ) from error
            self._fronts[channel] = front
        # Until the kernel runs, the launcher answers heartbeats itself (an echo, as
        # ipykernel's own heartbeat is): the process the client started is alive, and a
        # client that pings during a slow start (a swarm node, a busy engine) must not
        # take the silence for a dead kernel.
        self._echo = self._relay("hb-echo", self._fronts["hb"], self._fronts["hb"])

    def connect(self, kernel_info: Mapping[str, Any]) -> None:
        """Connect to the kernel's endpoints and relay each channel."""
        backs = {}
        for channel, (_, back_type) in CHANNELS.items():
            back = self._socket(back_type)
            if back_type == zmq.DEALER:
                back.routing_id = _ROUTING_ID
            use_curve(back, kernel_info)
            back.connect(endpoint(kernel_info, channel))
            backs[channel] = back
        # The kernel's end of a connection closes when its process exits, crash or not.
        monitor = backs["hb"].get_monitor_socket(zmq.EVENT_DISCONNECTED)
        self._disconnects = zmq.asyncio.Socket.from_socket(monitor)
        if self._echo is not None:  # the kernel answers from now on
            self._stop([self._echo])
            self._echo = None
        # A copy of the control channel's traffic, to see a shutdown_request pass; PUB
        # drops what nobody reads rather than ever holding the relay up.
        capture = self._socket(zmq.PUB)
        capture.sndhwm = _COPIES_KEPT
        capture.bind(address := f"inproc://distrokernels-bridge-capture-{next(_counter)}")
        # Made asyncio's from the start: one object owns it, closed once in close().
        copies = zmq.asyncio.Context.shadow(self.context).socket(zmq.SUB)
        copies.linger = 0
        copies.rcvhwm = _COPIES_KEPT
        copies.setsockopt(zmq.SUBSCRIBE, b"")
        copies.connect(address)
        self._control_copies = copies
        for channel, back in backs.items():
            copy = capture if channel == "control" else None
            self._relays.append(self._relay(channel, self._fronts[channel], back, copy))

    async def shutdown_requested(self) -> None:
        """Returns once a client's shutdown_request has passed to the kernel."""
        assert self._control_copies is not None, "connect() first"
        while True:
            if is_shutdown_request(await self._control_copies.recv_multipart()):
                return

    async def kernel_disconnected(self) -> None:
        """Returns when the kernel's side of the heartbeat drops: it has (likely) exited."""
        assert self._disconnects is not None, "connect() first"
        await self._disconnects.recv_multipart()

    def _socket(self, kind: int) -> zmq.Socket[bytes]:
        socket = self.context.socket(kind)
        socket.linger = 0
        self._sockets.append(socket)
        return socket

    def _relay(
        self,
        channel: str,
        front: zmq.Socket[bytes],
        back: zmq.Socket[bytes],
        capture: zmq.Socket[bytes] | None = None,
    ) -> _Relay:
        address = f"inproc://distrokernels-bridge-{channel}-{next(_counter)}"
        control = self._socket(zmq.PAIR)
        control.bind(address)
        stop = self._socket(zmq.PAIR)
        stop.connect(address)

        def run() -> None:
            # Returns when told TERMINATE; ContextTerminated only if close() was skipped.
            with contextlib.suppress(zmq.ContextTerminated):
                zmq.proxy_steerable(front, back, capture, control)

        thread = threading.Thread(target=run, name=f"bridge-{channel}", daemon=True)
        thread.start()
        return _Relay(thread, stop)

    def close(self) -> None:
        """Stop the relays, then close every socket: the client sees its kernel go."""
        self._stop(self._relays + ([self._echo] if self._echo else []))
        for socket in self._sockets:
            socket.close(linger=0)
        for watcher in (self._disconnects, self._control_copies):
            if watcher is not None:
                watcher.close(linger=0)
        self.context.term()
        self._relays, self._sockets, self._echo = [], [], None
        self._disconnects = self._control_copies = None

    @staticmethod
    def _stop(relays: list[_Relay]) -> None:
        for relay in relays:
            relay.stop.send(b"TERMINATE")
        for relay in relays:
            relay.thread.join(timeout=_JOIN_TIMEOUT)
