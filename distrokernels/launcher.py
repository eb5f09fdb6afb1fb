"""The host launcher: kernel.json's argv, for notebook clients that ignore provisioners.

VS Code's Jupyter extension, jupyter_client 6 (classic Notebook 6, old nbconvert) and
editors that launch kernels directly read kernel.json, write a connection file with the
transport, address and ports they chose, and run argv as their own child process:

    python -m distrokernels.launcher --name KERNELSPEC -f CONNECTION_FILE

The launcher starts the kernel through DistroProvisioner, under a jupyter_client
KernelManager of its own, so it is the very container a provisioner-aware Jupyter would
run (image by id, your uid:gid, this process's working folder, the environment
allowlist, limits, capabilities, labels with this process as owner) after the very same
checks of the kernelspec. bridge.py then serves the client's endpoints, on loopback
only, and relays them to the kernel. The launcher stays in the foreground for the
kernel's life and behaves like the local kernel process the client expects:

- SIGINT interrupts the running cell (a signal to the container, as the provisioner
  sends it);
- SIGTERM and SIGHUP stop the kernel (shutdown_request, then SIGTERM, then SIGKILL)
  and remove its container;
- when the kernel exits (shutdown_request, a crash), the container is removed and the
  launcher exits with the kernel's exit status;
- when the launcher itself is SIGKILLed, a watchdog process outside the client's
  process tree sees its pipe close and removes the container; `distrokernels gc`
  collects it too, should the watchdog have died with it.

Errors are one line on stderr (clients show a kernel's stderr) and an exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import PROVISIONER_NAME, owners
from .errors import DistroKernelsError, InvalidInput

if TYPE_CHECKING:  # imported when a kernel starts, after the watchdog's fork
    from jupyter_client.manager import AsyncKernelManager

    from .bridge import Bridge
    from .config import KernelConfig

_WATCHDOG_SWEEPS = 2  # a container whose creation was in flight is there by the second
_WATCHDOG_SWEEP_GAP = 2.0  # seconds
_KERNEL_POLL_INTERVAL = 5.0  # seconds: the fallback when no disconnect is reported
_EXIT_AFTER_DISCONNECT = 2.0  # seconds the engine may take to report a kernel's exit
_DONE = "done"


class Watchdog:
    """A process that removes this launcher's kernel if the launcher dies first.

    Forked before any thread exists, in a new session (a client that kills the
    launcher's process group or tree does not reach it). It holds the read end of a
    pipe whose write end only the launcher has: end of file means the launcher is gone.
    The launcher writes the engine URLs to sweep, and "done" once it has cleaned up.
    """

    def __init__(self, write_fd: int) -> None:
        self._pipe = os.fdopen(write_fd, "w", buffering=1)

    @classmethod
    def spawn(cls) -> Watchdog:
        """Fork the watchdog (twice, so init adopts it) and keep the pipe's write end."""
        token = owners.current_owner()
        read_fd, write_fd = os.pipe()
        child = os.fork()
        if child == 0:  # pragma: no cover - runs in the forked processes
            try:
                os.setsid()
                if os.fork() == 0:
                    os.close(write_fd)
                    _watch(read_fd, token)
            finally:
                os._exit(0)
        os.close(read_fd)
        os.waitpid(child, 0)
        return cls(write_fd)

    def watch(self, url: str) -> None:
        """Sweep this engine if the launcher dies (before the kernel is created on it)."""
        self._pipe.write(f"url {url}\n")

    def release(self) -> None:
        """The launcher cleaned up itself: nothing left to do."""
        self._pipe.write(f"{_DONE}\n")
        self._pipe.close()


def _watch(read_fd: int, launcher: str) -> None:  # pragma: no cover - a forked process
    """Wait for the launcher to go; then remove what it owned. Never returns."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # the client waits for EOF on the kernel's stdout and stderr
        os.dup2(devnull, fd)
    os.closerange(3, read_fd)
    os.closerange(read_fd + 1, os.sysconf("SC_OPEN_MAX"))
    received = b""
    while chunk := os.read(read_fd, 4096):
        received += chunk
    lines = received.decode(errors="replace").splitlines()
    if _DONE not in lines:
        from . import orphans
        from .engine import Engine

        for sweep in range(_WATCHDOG_SWEEPS):
            if sweep:
                time.sleep(_WATCHDOG_SWEEP_GAP)
            for url in {line[4:] for line in lines if line.startswith("url ")}:
                try:
                    orphans.collect(Engine.connect(url), lambda owner: owner == launcher)
                except Exception as error:  # no one to tell but the log; `gc` is the fallback
                    _log_failure(f"could not remove the kernel of {launcher} on {url!r}", error)
    os._exit(0)


@functools.cache
def _watchdog_log() -> str:
    from .reporting import log_path

    return str(log_path("watchdog"))


def _log_failure(what: str, error: Exception) -> None:  # pragma: no cover - the watchdog
    """A line in the watchdog's log (it has no terminal): what failed, and why."""
    path = Path(_watchdog_log())
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as log:
            log.write(f"{what}: {type(error).__name__}: {error}\n")


def read_connection_file(path: str) -> dict[str, Any]:
    """The client's connection file, or one line saying why it cannot be read."""
    try:
        with open(path) as file:
            info = json.load(file)
    except (OSError, ValueError) as error:
        raise InvalidInput(f"cannot read the connection file {path}: {error}", "") from error
    if not isinstance(info, dict):
        raise InvalidInput(f"the connection file {path} is not a JSON object", "")
    return info


async def run_kernel(name: str, connection_file: str, watchdog: Watchdog) -> int:
    """Start the kernel, serve the client's connection file, wait for the end."""
    from .bridge import Bridge

    client_info = read_connection_file(connection_file)
    bridge = Bridge(client_info)
    manager, config = _manager_for(name, client_info)
    watchdog.watch(config.engine_url)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    interrupts: list[asyncio.Task[None]] = []

    async def interrupt() -> None:
        await manager.interrupt_kernel()

    for signum in (signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, stop.set)
    # An interrupt before the kernel runs has nothing to interrupt.
    loop.add_signal_handler(signal.SIGINT, lambda: None)

    status = None
    try:
        bridge.listen()
        await manager.start_kernel(cwd=os.getcwd(), env=dict(os.environ))
        bridge.connect(manager.get_connection_info())
        loop.add_signal_handler(
            signal.SIGINT,
            lambda: interrupts.append(loop.create_task(interrupt())),
        )
        status = await _until_exit_or_stop(manager, bridge, stop)
        if death := getattr(manager.provisioner, "death", ""):
            print(f"distrokernels: error: {death}", file=sys.stderr, flush=True)
    finally:
        bridge.close()
        # A start that failed has nothing left: the provisioner removed what it made.
        if manager.has_kernel:
            if status is None:  # SIGTERM, SIGHUP, or an error here: stop the kernel
                await manager.shutdown_kernel()
            else:
                await manager.cleanup_resources()
        watchdog.release()
    return status if status is not None else 0


def _manager_for(name: str, client_info: dict[str, Any]) -> tuple[AsyncKernelManager, KernelConfig]:
    """A kernel manager for the distro kernelspec ``name``, with the client's key, and
    the kernelspec's checked settings."""
    from jupyter_client.kernelspec import NoSuchKernel
    from jupyter_client.manager import AsyncKernelManager

    from .config import validate_config

    manager = AsyncKernelManager(kernel_name=name)
    try:
        spec = manager.kernel_spec
    except NoSuchKernel as error:
        raise InvalidInput(
            f"no kernelspec named {name!r} on the Jupyter path", "see `jupyter kernelspec list`"
        ) from error
    provisioner = spec.metadata.get("kernel_provisioner", {}) if spec else {}
    if provisioner.get("provisioner_name") != PROVISIONER_NAME:
        # Otherwise jupyter_client would run argv, which is this launcher, again.
        raise InvalidInput(
            f"kernelspec {name!r} no longer names the distrokernels provisioner",
            "reinstall it: distrokernels install IMAGE --replace",
        )
    manager.session.key = str(client_info["key"]).encode()
    manager.session.signature_scheme = client_info.get("signature_scheme", "hmac-sha256")
    return manager, validate_config(provisioner.get("config", {}))


async def _until_exit_or_stop(
    manager: AsyncKernelManager, bridge: Bridge, stop: asyncio.Event
) -> int | None:
    """The kernel's exit status once it exits; None when a signal asks to stop it."""
    stopped = asyncio.ensure_future(stop.wait())
    try:
        while not stopped.done():
            disconnected = asyncio.ensure_future(bridge.kernel_disconnected())
            await asyncio.wait(
                {stopped, disconnected},
                timeout=_KERNEL_POLL_INTERVAL,
                return_when=asyncio.FIRST_COMPLETED,
            )
            fired = disconnected.done()
            disconnected.cancel()
            if stopped.done():
                break
            assert manager.provisioner is not None
            if fired:  # the engine reports the exit a little after the sockets close
                with contextlib.suppress(asyncio.TimeoutError):
                    exited = manager.provisioner.wait()  # polls until it has a status
                    status = await asyncio.wait_for(exited, _EXIT_AFTER_DISCONNECT)
                    return 1 if status is None else status
            elif (status := await manager.provisioner.poll()) is not None:
                return status
        return None
    finally:
        stopped.cancel()


def main(argv: list[str] | None = None) -> int:
    """Run the kernel kernel.json's argv names; the kernel's exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m distrokernels.launcher",
        description="Run a distro kernel for a client that launches kernel.json's argv.",
    )
    parser.add_argument("--name", required=True, help="the kernelspec")
    parser.add_argument("-f", dest="connection_file", required=True, help="connection file")
    args = parser.parse_args(argv)
    watchdog = Watchdog.spawn()
    from traitlets import TraitError  # after the fork, as every import of a kernel start

    try:
        return asyncio.run(run_kernel(args.name, args.connection_file, watchdog))
    except DistroKernelsError as error:
        print(f"distrokernels: error: {error}", file=sys.stderr, flush=True)
        return error.exit_code
    except TraitError as error:  # a hand-edited kernelspec's value of the wrong type
        print(f"distrokernels: error: kernel {args.name!r}: {error}", file=sys.stderr, flush=True)
        return InvalidInput.exit_code


def _exit(code: int) -> None:
    """Exit at once: everything the launcher made is gone by now, and a normal
    interpreter shutdown (module teardown, zmq's contexts) would add ~80 ms to every
    kernel's shutdown and restart, which the client waits for."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _exit(main())
