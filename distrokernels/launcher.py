"""The host launcher: kernel.json's argv, for notebook clients that ignore provisioners.

VS Code's Jupyter extension, jupyter_client 6 (classic Notebook 6, old nbconvert) and
editors that launch kernels directly read kernel.json, write a connection file with the
transport, address and ports they chose, and run argv as their own child process:

    python -m distrokernels.launcher --name KERNELSPEC -f CONNECTION_FILE

This process is thin: it imports nothing heavier than the standard library on its way
to a kernel. It hands the connection file, its working folder and environment to the
user's warm-kernel agent (agent.py, started if none runs), which binds the client's
ports at once, starts the kernel (warm when it can, with every check and guarantee a
provisioner start has, hosted.py) and relays the channels. The launcher stays in the
foreground for the kernel's life and behaves like the local kernel process the client
expects:

- SIGINT interrupts the running cell;
- SIGTERM and SIGHUP stop the kernel (shutdown_request, then SIGTERM, then SIGKILL)
  and remove its container;
- when the kernel exits, the launcher exits with the kernel's exit status (after a
  client's shutdown_request: 0 once its container's init is gone, as jupyter_client
  takes a kernel it shuts down that is gone; the engine's report comes later);
- when its client is gone (the process JPY_PARENT_PID names, as ipykernel watches it,
  else the launcher's parent), the kernel is stopped, as a local kernel stops;
- when the launcher itself is killed, the agent sees its connection close and stops
  the kernel.

With ``DISTROKERNELS_AGENT=0`` in its environment, or when no agent can start, the
launcher runs the kernel in its own process instead (cold), with a watchdog of its own
(watchdog.py) that removes the container should the launcher be SIGKILLed.

Errors are one line on stderr (clients show a kernel's stderr) and an exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal
import sys
from typing import Any

from . import agent_client, owners
from .agent_client import AgentUnavailable, Connection
from .errors import DistroKernelsError, InvalidInput

_CLIENT_CHECK_INTERVAL = 1.0  # seconds between looking whether the client still runs
_FORWARDED = {signal.SIGINT: "interrupt", signal.SIGTERM: "stop", signal.SIGHUP: "stop"}


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


class ClientWatch:
    """Whether the client that launched this process is still there: the process
    JPY_PARENT_PID names (jupyter_client sets it), else this launcher's parent (a
    client SIGKILLed: the launcher is re-parented)."""

    def __init__(self) -> None:
        named = os.environ.get("JPY_PARENT_PID", "")
        self._named = named.isdigit()
        self.pid = int(named) if self._named else os.getppid()
        self._started = owners.process_start_time(self.pid)

    @property
    def gone(self) -> bool:
        """The client exited (or its pid now names another process)."""
        if owners.process_start_time(self.pid) != self._started:
            return True
        return not self._named and os.getppid() != self.pid


def run_request(name: str, client_info: dict[str, Any]) -> dict[str, Any]:
    """What the agent needs to run this client's kernel as this process would."""
    return {
        "op": "run",
        "name": name,
        "connection": client_info,
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "context": agent_client.context(with_prefix=True),
    }


def relay_signals(agent: Connection) -> int:
    """While the agent runs the kernel: forward signals, watch the client; its status."""
    wake_read, wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_write)
    for signum in _FORWARDED:
        signal.signal(signum, lambda *_: None)  # the wakeup fd carries it
    client = ClientWatch()
    stopping = False
    while True:
        ready, _, _ = select.select([agent.fileno(), wake_read], [], [], _CLIENT_CHECK_INTERVAL)
        if wake_read in ready:
            for number in os.read(wake_read, 64):
                with contextlib.suppress(AgentUnavailable):
                    agent.send({"op": _FORWARDED[signal.Signals(number)]})
        if agent.fileno() in ready:
            answer = agent.receive()
            if answer is None:
                raise DistroKernelsError(
                    "the warm-kernel agent stopped while it ran this kernel",
                    "restart the kernel; the agent's log is in ~/.local/state/distrokernels/logs",
                )
            if "error" in answer:
                _error(str(answer["error"]))
                return int(answer.get("code", 1))
            if death := answer.get("death"):
                _error(str(death))
            return int(answer.get("exit", 1))
        if not stopping and client.gone:
            stopping = True
            with contextlib.suppress(AgentUnavailable):
                agent.send({"op": "stop"})


def run_in_this_process(name: str, client_info: dict[str, Any]) -> int:
    """Run the kernel here (no agent): a watchdog first, then the kernel, cold."""
    import asyncio

    from .watchdog import Watchdog, install

    watchdog = Watchdog.fork()  # before any thread exists
    install(watchdog)  # the provisioner's starts in this process report to it
    from .hosted import HostedKernel

    async def run() -> int:
        kernel = HostedKernel(name, client_info)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(signum, stop.set)
        loop.add_signal_handler(signal.SIGINT, kernel.interrupt)
        client = ClientWatch()

        async def watch_client() -> None:
            while not client.gone:
                await asyncio.sleep(_CLIENT_CHECK_INTERVAL)
            stop.set()

        watching = loop.create_task(watch_client())
        try:
            status = await kernel.run(os.getcwd(), dict(os.environ), stop)
        finally:
            watching.cancel()
        if kernel.death:
            _error(kernel.death)
        return status

    try:
        return asyncio.run(run())
    finally:
        watchdog.release()


def main(argv: list[str] | None = None) -> int:
    """Run the kernel kernel.json's argv names; the kernel's exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m distrokernels.launcher",
        description="Run a distro kernel for a client that launches kernel.json's argv.",
    )
    parser.add_argument("--name", required=True, help="the kernelspec")
    parser.add_argument("-f", dest="connection_file", required=True, help="connection file")
    args = parser.parse_args(argv)
    try:
        client_info = read_connection_file(args.connection_file)
        if agent_client.enabled():
            try:
                agent = agent_client.connect_or_start()
                agent.ask(run_request(args.name, client_info))  # accepted
            except AgentUnavailable as error:
                print(
                    f"distrokernels: {error}; starting the kernel in this process",
                    file=sys.stderr,
                    flush=True,
                )
            else:
                return relay_signals(agent)
        return run_in_this_process(args.name, client_info)
    except DistroKernelsError as error:
        _error(f"{error}")
        return error.exit_code
    except Exception as error:
        from traitlets import TraitError

        if not isinstance(error, TraitError):
            raise
        # a hand-edited kernelspec's value of the wrong type
        _error(f"kernel {args.name!r}: {error}")
        return InvalidInput.exit_code


def _error(line: str) -> None:
    print(f"distrokernels: error: {line}", file=sys.stderr, flush=True)


def _exit(code: int) -> None:
    """Exit at once: everything the launcher made is gone by now, and a normal
    interpreter shutdown (module teardown, zmq's contexts) would add ~80 ms to every
    kernel's shutdown and restart, which the client waits for."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _exit(main())
