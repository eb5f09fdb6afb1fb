"""Waiting for a started kernel to be ready, and saying why it never was.

A start is ready when its transport says so (transport.py: IPC sockets bound, or a TCP
heartbeat answered). Meanwhile the engine is asked every 0.2 s whether the container
still runs, so a kernel that exits or cannot be placed fails within 0.2 s with the last
lines of its output, and a warm kernel, ready in 50 ms, costs no engine call at all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

from .backends import OUT_OF_MEMORY, KernelState
from .errors import KernelStartFailed
from .kernel_engine import KernelEngine

ENGINE_CHECK_INTERVAL = 0.2  # seconds between asking the engine whether a start failed
_LOG_LINES = 12  # of the container's output fetched when a start fails
_LOG_LINES_SHOWN = 6


def why_stopped(state: KernelState | None, memory: str | None) -> tuple[str, str]:
    """What happened to a kernel that stopped, and what to do ('': the reinstall hint)."""
    if state is not None and state.reason == OUT_OF_MEMORY:
        return (
            f"{OUT_OF_MEMORY} (limit {memory or 'none: the host ran out'})",
            "free memory in the notebook, or reinstall it with a larger --memory",
        )
    if state is not None and state.reason:
        return state.reason, state.hint
    return f"exited with code {state and state.exit_code}", ""


class Start:
    """One start of one kernel, waited for; a failure removes its container."""

    def __init__(
        self, engine: KernelEngine, kernelspec: str, reinstall_hint: str, memory: str | None
    ) -> None:
        self._engine = engine
        self._kernelspec = kernelspec
        self._reinstall_hint = reinstall_hint
        self._memory = memory

    async def wait(
        self,
        ready: Callable[[], Awaitable[bool]],
        interval: float,
        timeout: float,
        queue_timeout: float = 0.0,
        log: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    ) -> None:
        """Return once ``ready``; raise KernelStartFailed within 0.2 s if the kernel
        exits or cannot be placed, or after ``timeout`` seconds. A kernel that waits
        in a queue (a Slurm job pending) may wait ``queue_timeout`` seconds more, says
        why in ``log`` each time the reason changes, and ``timeout`` counts from when
        it leaves the queue."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        queue_deadline = loop.time() + queue_timeout
        next_check = loop.time() + ENGINE_CHECK_INTERVAL
        waiting = ""
        while not await ready():
            if loop.time() >= next_check:
                state = await self._engine.state()
                if state is None or not state.running:
                    await self.fail(*why_stopped(state, self._memory))
                if state.waiting:
                    if loop.time() > queue_deadline:
                        await self.fail(
                            f"waited {queue_timeout:.0f} s in the queue ({state.waiting})",
                            "start it when the partition has room, or raise queue_timeout",
                        )
                    deadline = loop.time() + timeout
                    if state.waiting != waiting and log is not None:
                        log.info("distrokernels: %s: %s", self._kernelspec, state.waiting)
                waiting = state.waiting
                next_check = loop.time() + ENGINE_CHECK_INTERVAL
            if loop.time() > deadline:
                await self.fail(f"was not ready in {timeout:.0f} s")
            await asyncio.sleep(interval)

    async def fail(self, what: str, hint: str = "") -> NoReturn:
        """Remove the container and raise, with the last lines of its output."""
        logs = await self._engine.logs_then_remove(_LOG_LINES)
        lines = [line for line in logs.strip().splitlines()[-_LOG_LINES_SHOWN:] if line.strip()]
        last = " | ".join(lines)
        raise KernelStartFailed(
            f"the kernel container of {self._kernelspec!r} {what}" + (f": {last}" if last else ""),
            hint or f"if the image is broken, {self._reinstall_hint}",
        )
