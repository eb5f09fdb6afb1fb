"""The user's warm-kernel agent: warm kernels for every client outside a Jupyter server.

A Jupyter server keeps its own pool (pool.py). Every other client starts one kernel at a
time and exits: nbclient, papermill, `distrokernels run`, `jupyter console`, a grading
script, and VS Code or jupyter_client 6, which run kernel.json's argv (the launcher).
They share one agent per user, started on demand by the first client that wants a
kernel (detached, in a session of its own) and exiting by itself after an idle time
(``DISTROKERNELS_AGENT_IDLE_TIMEOUT`` seconds in the environment of the client that
starts it, default 600, ``0`` for never), removing its warm containers as it goes.

It listens only on a unix socket in the user's private runtime folder and serves only
its own user: a peer of another uid (``SO_PEERCRED``; root included) is refused before
it can ask for anything. One JSON object per line each way:

- ``claim`` / ``refill`` (a DistroProvisioner outside a server, warm_start.AgentPool):
  hand out a ready container of that template, or start the next one. The client hands
  the start over itself and is the kernel's owner from then on (runtime.claimant), so
  its own watchdog, `gc` and orphan sweeps treat the kernel as its, not the agent's. A
  container handed out but never claimed (a client killed in between) is removed.
- ``run`` (the launcher): run a kernel for an argv client here (hosted.py), with the
  client's connection file, folder and environment; ``interrupt`` and ``stop`` on the
  same connection; ``exit`` with the kernel's status, or ``error``. The connection's
  end (a launcher gone, SIGKILLed or not) stops the kernel.

The agent's own containers (warm ones, the argv kernels it runs) carry its owner token
and are removed by its watchdog if it is killed; `gc` and the next start's orphan sweep
remove what remains.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import struct
import sys
import time
from typing import Any

from traitlets import TraitError

from . import agent_client, owners, warm_start, watchdog
from .engines import collect_orphans_in_background
from .errors import DistroKernelsError
from .hosted import HostedKernel
from .pool import POOL, Template, WarmContainer, claimed
from .runtime import runtime_root

log = logging.getLogger("distrokernels.agent")

DEFAULT_IDLE_TIMEOUT = 600.0  # seconds; measured: docs/warm-kernels.md
_REFILL_AFTER_CLAIM = 1.0  # seconds: a cold start here takes about 0.8 s
_HANDED_OUT_WAIT = 30.0  # seconds a client may take to claim what it was handed
_IDLE_CHECK = 1.0


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """The pid, uid and gid of the process at the other end, as the host kernel says."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", creds)
    return int(pid), int(uid), int(gid)


def idle_timeout(environ: dict[str, str] | os._Environ[str] = os.environ) -> float:
    """The idle time after which the agent exits, from its environment (0: never)."""
    value = environ.get(agent_client.IDLE_TIMEOUT, "")
    try:
        seconds = float(value) if value else DEFAULT_IDLE_TIMEOUT
    except ValueError:
        seconds = DEFAULT_IDLE_TIMEOUT
    return max(seconds, 0.0)


class Agent:
    """The agent's socket, its clients, and its idle clock."""

    def __init__(self, idle: float) -> None:
        self.idle = idle
        self._stop = asyncio.Event()
        self._runs: dict[asyncio.Event, tuple[int, HostedKernel | None]] = {}  # stop: pid, kernel
        self._last_activity = time.monotonic()
        self._engines: set[str] = set()
        self.owner = owners.current_owner()

    async def serve(self) -> None:
        """Listen until stopped (SIGTERM, SIGINT) or idle; then remove what it kept."""
        root = runtime_root()
        lock = open(root / agent_client.LOCK, "w")  # noqa: SIM115 - held for the agent's life
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("another agent serves this user")
            return
        path = root / agent_client.SOCKET
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # a killed agent's: the lock says none listens there
        old_umask = os.umask(0o177)
        try:
            server = await asyncio.start_unix_server(self._client, str(path))
        finally:
            os.umask(old_umask)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(signum, self._stop.set)
        log.info("agent %s listening on %s (idle timeout %s s)", os.getpid(), path, self.idle)
        try:
            while not self._stop.is_set():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), _IDLE_CHECK)
                quiet = time.monotonic() - self._last_activity
                if self.idle and not self._runs and quiet > self.idle:
                    log.info("idle for %.0f s: exiting", quiet)
                    break
        finally:
            server.close()
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            for stop in self._runs:
                stop.set()
            while self._runs:
                await asyncio.sleep(0.05)
            await asyncio.to_thread(POOL.close)
            watchdog.for_this_process().release()
            lock.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._last_activity = time.monotonic()
        try:
            pid, uid, _ = peer_credentials(writer.get_extra_info("socket"))
            if uid != os.getuid():
                log.warning("refused a client of uid %s", uid)
                await _send(writer, {"refused": f"this agent serves uid {os.getuid()} only"})
                return
            while line := await reader.readline():
                message = json.loads(line)
                if message.get("op") != "ping" and (
                    differs := agent_client.mismatch(message.get("context"))
                ):
                    await _send(writer, {"mismatch": differs})
                    continue
                if message.get("op") == "run":
                    await self._run(message, reader, writer, pid)
                    return
                await _send(writer, self._answer(message))
        except (ValueError, AttributeError, ConnectionError) as error:
            log.warning("a client sent something wrong: %s", error)
        finally:
            self._last_activity = time.monotonic()
            writer.close()

    def _answer(self, message: dict[str, Any]) -> dict[str, Any]:
        """The answer to one pool request."""
        op = message.get("op")
        if op == "ping":
            return {
                "pid": os.getpid(),
                "owner": owners.current_owner(),
                "warm": POOL.warm_ids(),
                "ready": POOL.warm_ids(ready=True),
                "runs": [  # the argv kernels it runs: the launcher's pid, the container
                    [pid, kernel.container_id if kernel else None]
                    for pid, kernel in self._runs.values()
                ],
            }
        if op not in ("claim", "refill"):
            return {"error": f"unknown request {op!r}"}
        try:
            template = Template.from_json(message.get("template")).owned_by(self.owner)
        except DistroKernelsError as error:
            return {"error": str(error)}
        if template.runtime_root != str(runtime_root()):  # its slots go in the agent's
            return {"mismatch": "runtime folder"}
        self._watch(template.engine_url)
        if op == "refill":
            POOL.refill(template)
            return {"ok": True}
        warm = POOL.claim(template)
        loop = asyncio.get_running_loop()
        # The next one, once this start is likely done (the client asks too when it
        # lives on; a client that exits at once cannot).
        loop.call_later(_REFILL_AFTER_CLAIM, POOL.refill, template)
        if warm is None:
            return {"warm": None}
        loop.call_later(_HANDED_OUT_WAIT, self._unclaimed, template.engine_url, warm)
        return {"warm": {"id": warm.id, "slot": warm.slot}}

    def _watch(self, engine_url: str) -> None:
        """This agent's watchdog sweeps the engine; the first time, sweep orphans on it."""
        watchdog.for_this_process().watch(engine_url)
        if engine_url not in self._engines:
            self._engines.add(engine_url)
            collect_orphans_in_background(engine_url, log)

    @staticmethod
    def _unclaimed(engine_url: str, warm: WarmContainer) -> None:
        """A container handed out whose client never claimed it (killed in between)."""
        if os.path.isdir(warm.slot) and not claimed(warm.slot):
            log.info("warm container %s was handed out and never claimed", warm.id[:12])
            POOL.discard(engine_url, [warm])

    async def _run(
        self,
        message: dict[str, Any],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        launcher: int,
    ) -> None:
        """Run an argv client's kernel until it exits, the client stops it or goes."""
        stop = asyncio.Event()
        self._runs[stop] = (launcher, None)
        try:
            await _send(writer, {"accepted": True})
            kernel = HostedKernel(str(message.get("name", "")), dict(message["connection"]))
            self._runs[stop] = (launcher, kernel)
            running = asyncio.ensure_future(
                kernel.run(str(message["cwd"]), dict(message["env"]), stop)
            )
            listening = asyncio.ensure_future(_requests(reader, kernel, stop))
            try:
                status = await running
            finally:
                listening.cancel()
            answer: dict[str, Any] = {"exit": status}
            if kernel.death:
                answer["death"] = kernel.death
        except DistroKernelsError as error:
            answer = {"error": str(error), "code": error.exit_code}
        except TraitError as error:  # a hand-edited kernelspec's value of the wrong type
            answer = {"error": f"kernel {message.get('name')!r}: {error}", "code": 2}
        except Exception as error:
            log.exception("a kernel run failed")
            answer = {"error": f"{type(error).__name__}: {error}", "code": 1}
        finally:
            del self._runs[stop]
        with contextlib.suppress(ConnectionError):
            await _send(writer, answer)


async def _requests(
    reader: asyncio.StreamReader, kernel: HostedKernel, stop: asyncio.Event
) -> None:
    """The launcher's interrupts and stops; its connection's end stops the kernel."""
    with contextlib.suppress(ConnectionError, ValueError):
        while line := await reader.readline():
            op = json.loads(line).get("op")
            if op == "interrupt":
                kernel.interrupt()
            elif op == "stop":
                log.info("the launcher of %s asks to stop it", kernel.container_id)
                stop.set()
    if not stop.is_set():
        log.info("the launcher of %s is gone: stopping it", kernel.container_id)
    stop.set()


async def _send(writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
    writer.write(json.dumps(message).encode() + b"\n")
    await writer.drain()


def main() -> int:
    """Run the agent in this process (clients start it detached, on demand)."""
    from .reporting import log_path

    path = log_path("agent")
    path.parent.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        filename=str(path),
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    warm_start.serve_here()
    try:
        asyncio.run(Agent(idle_timeout()).serve())
    except Exception:
        log.exception("the agent failed")
        return 1
    finally:
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
