"""Who owns a kernel container, and whether that owner is still alive.

A kernel container outlives the Jupyter server that started it when the server is
SIGKILLed. The owner token (host, pid, process start time) lets ``gc`` tell an orphan
from a container of another live server, even after the pid has been reused.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

_EXITED = {"Z", "X"}  # zombie (exited, not yet reaped by its parent), dead


def process_start_time(pid: int) -> str:
    """The start time of ``pid`` in clock ticks since boot, or '' when it has exited."""
    fields = _stat(pid)
    if not fields or fields[0] in _EXITED:  # a killed launcher its client has not reaped
        return ""
    return fields[19]


def _stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat from the state on (state, ppid, ...); [] if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    # The command name (field 2) may hold spaces and parentheses: split after its ')'.
    return stat.rsplit(")", 1)[1].split()


def current_owner() -> str:
    """The token of this process: 'host:pid:start'."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{process_start_time(pid)}"


def owner_is_alive(token: str) -> bool:
    """False only when the owner ran on this host and is certainly gone.

    A token from another host, or one that cannot be read, counts as alive: removing
    another machine's kernels would be worse than leaving an orphan.
    """
    host, _, rest = token.partition(":")
    pid_text, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return True
    return process_start_time(int(pid_text)) == start


def owner_is_gone(token: str) -> bool:
    return not owner_is_alive(token)


def first_child(pid: int) -> int:
    """The child of process ``pid`` (a container's init has one: its kernel; the lowest
    pid if there are several); 0 if none.

    From /proc/PID/task/PID/children, or, on a kernel built without it, a scan of /proc
    (a few ms: only interrupts ask).
    """
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        parent = str(pid)
        children = [
            entry.name
            for entry in os.scandir("/proc")
            if entry.name.isdigit() and _stat(int(entry.name))[1:2] == [parent]
        ]
    except OSError:
        return 0
    return min(map(int, children), default=0)
