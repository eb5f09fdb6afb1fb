"""The engines one process talks to: one connection each, and an orphan sweep on each.

A Jupyter server starts many kernels; they share one connection per engine (its pool of
HTTP connections) instead of opening one per kernel, and every start asks for a sweep of
containers whose Jupyter process is gone, run in the background and coalesced.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .engine import Engine

_ENGINES: dict[str, Engine] = {}
_SWEEPS: dict[str, asyncio.Task[None]] = {}  # engine URL -> its running orphan sweep
_SWEEP_AGAIN: set[str] = set()


def shared_engine(url: str = "") -> Engine:
    """One connection per engine and process, shared by every kernel's provisioner."""
    if url not in _ENGINES:
        _ENGINES[url] = Engine.connect(url)
    return _ENGINES[url]


def collect_orphans_in_background(
    url: str, log: logging.Logger | logging.LoggerAdapter[Any]
) -> None:
    """Remove containers of dead Jupyter servers, off the start path.

    One sweep per engine at a time: starts during a sweep ask for one more sweep after
    it, so twenty kernels started at once cost two sweeps, not twenty, and an owner that
    died during a sweep is still collected.
    """
    loop = asyncio.get_running_loop()
    running = _SWEEPS.get(url)
    if running is not None and not running.done() and running.get_loop() is loop:
        _SWEEP_AGAIN.add(url)
        return

    async def sweep() -> None:
        try:
            while True:
                _SWEEP_AGAIN.discard(url)
                try:
                    await asyncio.to_thread(lambda: shared_engine(url).collect_orphans())
                except Exception as error:  # the kernel starts anyway; `gc` can retry
                    log.warning(
                        "distrokernels: orphan sweep on %s failed: %s",
                        url or "the default engine",
                        error,
                    )
                if url not in _SWEEP_AGAIN:
                    return
        finally:
            if _SWEEPS.get(url) is task:
                del _SWEEPS[url]

    task = loop.create_task(sweep())
    _SWEEPS[url] = task
