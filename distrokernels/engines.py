"""The engines one process talks to: one connection each, and an orphan sweep on each.

A Jupyter server starts many kernels; they share one connection per engine (its pool of
HTTP connections) instead of opening one per kernel, and every start asks for a sweep of
containers whose Jupyter process is gone, run in the background and coalesced. A server
also removes its kernels' stopped containers in the background, off the path of the
shutdown or restart the user waits for; the process waits for those removals at exit,
and `gc` collects any a SIGKILL interrupted.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
from typing import Any

from . import orphans, owners
from .engine import Engine
from .errors import DistroKernelsError
from .slurm import jobs

_ENGINES: dict[str, Engine] = {}
_SWEEPS: dict[str, asyncio.Task[None]] = {}  # engine URL -> its running orphan sweep
_SWEEP_AGAIN: set[str] = set()
_REMOVALS: set[threading.Thread] = set()
_REMOVAL_WAIT = 30.0  # seconds an exiting process waits for removals in flight


def shared_engine(url: str = "") -> Engine:
    """One connection per engine and process, shared by every kernel's provisioner."""
    if url not in _ENGINES:
        _ENGINES[url] = Engine.connect(url)
    return _ENGINES[url]


def collect_orphans(url: str) -> None:
    """Remove the kernels whose owner is gone: on the engine at ``url``, or this user's
    Slurm jobs (jobs.SWEEP_URL)."""
    if url == jobs.SWEEP_URL:
        jobs.collect(owners.owner_is_gone)
    else:
        orphans.collect(shared_engine(url))


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
                    await asyncio.to_thread(lambda: collect_orphans(url))
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


def remove_in_background(
    url: str, container_id: str, log: logging.Logger | logging.LoggerAdapter[Any]
) -> threading.Thread:
    """Remove a stopped kernel container on a thread (returned); the process waits for it
    at exit."""

    def remove() -> None:
        try:
            shared_engine(url).remove_container(container_id)
        except DistroKernelsError as error:  # it has stopped: `gc` removes it later
            log.warning("distrokernels: removing container %s failed: %s", container_id, error)
        finally:
            _REMOVALS.discard(thread)

    thread = threading.Thread(target=remove, name="distrokernels-remove", daemon=True)
    _REMOVALS.add(thread)
    thread.start()
    return thread


def finish_removals(timeout: float = _REMOVAL_WAIT) -> None:
    """Wait for the background removals in flight (at exit; tests)."""
    for thread in list(_REMOVALS):
        thread.join(timeout)


atexit.register(finish_removals)
