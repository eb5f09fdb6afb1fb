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
- when its client is gone (the process JPY_PARENT_PID names, as ipykernel watches it,
  else the launcher's parent), the kernel is stopped, as a local kernel stops;
- when the launcher itself is SIGKILLed, its watchdog (watchdog.py), outside the
  client's process tree, sees its pipe close and removes the container; `distrokernels
  gc` collects it too, should the watchdog have died with it.

Errors are one line on stderr (clients show a kernel's stderr) and an exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from typing import TYPE_CHECKING, Any

from . import PROVISIONER_NAME, owners
from .errors import DistroKernelsError, InvalidInput
from .watchdog import Watchdog, install

if TYPE_CHECKING:  # imported when a kernel starts, after the watchdog's fork
    from jupyter_client.manager import AsyncKernelManager

    from .bridge import Bridge
    from .config import KernelConfig

_KERNEL_POLL_INTERVAL = 5.0  # seconds: the fallback when no disconnect is reported
_CLIENT_CHECK_INTERVAL = 1.0  # seconds between looking whether the client still runs
_EXIT_AFTER_DISCONNECT = 2.0  # seconds the engine may take to report a kernel's exit


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
    client_watch = loop.create_task(_stop_when_the_client_is_gone(stop))
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
        client_watch.cancel()
        # A start that failed has nothing left: the provisioner removed what it made.
        if manager.has_kernel:
            if status is None:  # SIGTERM, SIGHUP, or an error here: stop the kernel
                await manager.shutdown_kernel()
            else:
                await manager.cleanup_resources()
        watchdog.release()
    return status if status is not None else 0


async def _stop_when_the_client_is_gone(stop: asyncio.Event) -> None:
    """Stop the kernel when the client that launched it is gone, as a local kernel does:
    the process JPY_PARENT_PID names (jupyter_client sets it), else this launcher's
    parent (a client SIGKILLed: the launcher is re-parented)."""
    named = os.environ.get("JPY_PARENT_PID", "")
    client = int(named) if named.isdigit() else os.getppid()
    started = owners.process_start_time(client)
    while True:
        await asyncio.sleep(_CLIENT_CHECK_INTERVAL)
        gone = owners.process_start_time(client) != started or (
            not named and os.getppid() != client
        )
        if gone:
            stop.set()
            return


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
    watchdog = Watchdog.fork()
    install(watchdog)  # the provisioner's starts in this process report to it
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
