"""No kernel outlives the process that started it: a watchdog per process.

A local kernel exits soon after its client dies (ipykernel watches JPY_PARENT_PID). A
container does not, so each process that starts distro kernels has a watchdog: a
process outside the client's process tree (a session of its own) holding the read end
of a pipe whose write end only the watched process has. End of file means that process
is gone, however it went (an exit, a crash, SIGKILL); the watchdog then removes every
kernel container, warm one and swarm service whose owner label is that process, on each
engine it was told of, twice (a container whose creation was in flight is there by the
second sweep), and exits. A process that cleaned up after itself says "done" first.

The launcher forks its watchdog before anything else (``Watchdog.fork``: no thread
exists yet, and it costs no interpreter start). Any other process (a Jupyter server,
nbclient, papermill, `distrokernels run`, a console) gets one at its first kernel start
(``for_this_process``), started as ``python -m distrokernels.watchdog`` because those
processes have threads, after which a fork is unsafe.
"""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

from . import owners

_SWEEPS = 2
_SWEEP_GAP = 2.0  # seconds
_DONE = "done"
_PROCESS: Watchdog | None = None
_PROCESS_LOCK = threading.Lock()


class Watchdog:
    """The watched process's end of the pipe to its watchdog."""

    def __init__(self, pipe: IO[str]) -> None:
        self.pid = os.getpid()  # the watched process (a forked child needs its own)
        self._pipe = pipe
        self._urls: set[str] = set()
        self._lock = threading.Lock()

    @classmethod
    def fork(cls) -> Watchdog:
        """Fork the watchdog (twice, so init adopts it): for a process with no thread."""
        token = owners.current_owner()
        read_fd, write_fd = os.pipe()
        child = os.fork()
        if child == 0:  # pragma: no cover - runs in the forked processes
            try:
                os.setsid()
                if os.fork() == 0:
                    os.close(write_fd)
                    watch(read_fd, token)
            finally:
                os._exit(0)
        os.close(read_fd)
        os.waitpid(child, 0)
        return cls(os.fdopen(write_fd, "w", buffering=1))

    @classmethod
    def spawn(cls) -> Watchdog:
        """Start the watchdog as a new interpreter: safe in a process with threads."""
        process = subprocess.Popen(
            [sys.executable, "-m", "distrokernels.watchdog", owners.current_owner()],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a terminal's Ctrl-C or a killed process group spares it
            text=True,
            bufsize=1,
        )
        assert process.stdin is not None
        return cls(process.stdin)

    def watch(self, url: str) -> None:
        """Sweep this engine when the process is gone (say it before creating on it)."""
        with self._lock:
            if url in self._urls:
                return
            self._urls.add(url)
            with contextlib.suppress(OSError, ValueError):  # a watchdog gone: `gc` remains
                self._pipe.write(f"url {url}\n")

    def release(self) -> None:
        """The process cleaned up after itself: nothing left to do."""
        with self._lock, contextlib.suppress(OSError, ValueError):
            self._pipe.write(f"{_DONE}\n")
            self._pipe.close()


def install(watchdog: Watchdog) -> None:
    """Make ``watchdog`` this process's (the launcher's forked one)."""
    global _PROCESS
    _PROCESS = watchdog


def for_this_process() -> Watchdog:
    """This process's watchdog, started at the first call."""
    global _PROCESS
    with _PROCESS_LOCK:
        if _PROCESS is None or _PROCESS.pid != os.getpid():
            _PROCESS = Watchdog.spawn()
        return _PROCESS


def watch(read_fd: int, owner: str) -> None:  # pragma: no cover - the watchdog process
    """Wait for the process to go; then remove what it owned. Never returns."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # the client waits for EOF on the kernel's stdout and stderr
        if fd != read_fd:
            os.dup2(devnull, fd)
    os.closerange(3, read_fd)
    os.closerange(read_fd + 1, os.sysconf("SC_OPEN_MAX"))
    received = b""
    while chunk := os.read(read_fd, 4096):
        received += chunk
    lines = received.decode(errors="replace").splitlines()
    if _DONE not in lines:
        _sweep({line[4:] for line in lines if line.startswith("url ")}, owner)
    os._exit(0)


def _sweep(urls: set[str], owner: str) -> None:  # pragma: no cover - the watchdog process
    from . import orphans
    from .engine import Engine
    from .slurm import jobs

    for sweep in range(_SWEEPS):
        if sweep:
            time.sleep(_SWEEP_GAP)
        for url in urls:
            try:
                if url == jobs.SWEEP_URL:
                    jobs.collect(lambda token: token == owner)
                else:
                    orphans.collect(Engine.connect(url), lambda token: token == owner)
            except Exception as error:  # no one to tell but the log; `gc` is the fallback
                _log_failure(f"could not remove the kernels of {owner} on {url!r}", error)


@functools.cache
def _log() -> str:
    from .reporting import log_path

    return str(log_path("watchdog"))


def _log_failure(what: str, error: Exception) -> None:  # pragma: no cover - the watchdog
    """A line in the watchdog's log (it has no terminal): what failed, and why."""
    path = Path(_log())
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as log:
            log.write(f"{what}: {type(error).__name__}: {error}\n")


if __name__ == "__main__":  # pragma: no cover - started by Watchdog.spawn
    watch(0, sys.argv[1])
