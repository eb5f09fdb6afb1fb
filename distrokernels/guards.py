"""What no kernel may write, whatever folder it mounts: the host's start-up files and
every kernel's configuration.

A kernel writes where its writable mounts lead: the notebook's folder, a warm
container's pool root, ``--mount ...:rw``. When one of those holds the home folder
(a notebook at ``~/x.ipynb``, a server whose root is ``~``), the home folder's own
entries are what runs code for the user on the host (``~/.bashrc``, ``~/.profile``,
``~/.ssh``, ``~/.config/autostart``), what configures Jupyter and IPython (``~/.jupyter``,
``~/.ipython``) and where kernelspecs live (``~/.local/share/jupyter/kernels``, whose
``kernel.json`` says what a kernel may mount, add and run as).

So inside any writable mount that holds the home folder, the home folder itself is
read-only (nothing new can be created at its top: no ``~/.bash_profile`` that was not
there), and each of its entries that does not start with a dot (``~/notebooks``,
``~/data.csv``) is mounted writable again, except ``~/bin`` (on the user's PATH).
Dot-entries stay read-only. Jupyter's data, configuration and runtime folders, the
environment the host process runs from and the one the kernelspec's launcher runs from
are read-only wherever a writable mount holds them, and a writable mount inside any of
them becomes read-only. ``guard_binds`` decides this as data, from a ``HostGuard`` read once
per start; the pool's key includes it, so a new entry in the home folder gets a new
warm container.
"""

from __future__ import annotations

import os
import stat
import sys
from dataclasses import dataclass

from jupyter_core.paths import jupyter_config_path, jupyter_path, jupyter_runtime_dir

_BIND_UNSAFE = (":", ",")  # a Binds entry is SRC:DST:MODE: such names cannot be entries
_RUN_BY_THE_HOST = {"bin"}  # ~/bin is on PATH (Debian's ~/.profile): never writable


@dataclass(frozen=True)
class HostGuard:
    """The facts guard_binds needs, read from this host for this user."""

    home: str
    home_entries: tuple[str, ...]  # the home folder's writable entries (no dot-entries)
    read_only: tuple[str, ...]  # Jupyter's folders and the host environment's prefix


def current(interpreter: str = "") -> HostGuard:
    """This user's home folder and Jupyter folders, as they are now; ``interpreter``:
    the kernelspec's launcher (argv[0]), whose environment is guarded too."""
    home = os.path.realpath(os.path.expanduser("~"))
    paths = {*jupyter_path(), *jupyter_config_path(), jupyter_runtime_dir(), sys.prefix}
    if os.path.isabs(interpreter):  # ENV/bin/python: ENV
        paths.add(os.path.dirname(os.path.dirname(interpreter)))
    read_only = sorted(
        {os.path.realpath(path) for path in paths if os.path.isdir(path)} - {home, "/"}
    )
    return HostGuard(home, _writable_entries(home), tuple(read_only))


def _writable_entries(home: str) -> tuple[str, ...]:
    try:
        entries = list(os.scandir(home))
    except OSError:
        return ()
    writable = []
    for entry in entries:
        if entry.name.startswith(".") or entry.name in _RUN_BY_THE_HOST:
            continue
        if any(c in entry.name for c in _BIND_UNSAFE):
            continue
        try:
            mode = entry.stat(follow_symlinks=False).st_mode
        except OSError:
            continue
        if stat.S_ISDIR(mode) or stat.S_ISREG(mode):  # a link is not followed to its target
            writable.append(entry.name)
    return tuple(sorted(writable))


def guard_binds(binds: list[str], guard: HostGuard) -> list[str]:
    """``binds`` (SRC:DST:MODE) with what no kernel may write made read-only."""
    mounts: dict[str, tuple[str, str]] = {}  # destination -> (source, mode)
    for bind in binds:
        source, destination, mode = bind.rsplit(":", 2)
        mounts[destination] = (source, mode)
    for destination, (source, mode) in list(mounts.items()):
        if mode != "rw" or not os.path.isabs(source):  # a named volume holds no host file
            continue
        real = os.path.realpath(source)
        if _inside(real, guard.home) and real != guard.home:
            first = os.path.relpath(real, guard.home).split(os.sep)[0]
            if first.startswith(".") or first not in guard.home_entries:
                mounts[destination] = (source, "ro")  # inside a dot-entry of home
                continue
        if any(_inside(real, path) for path in guard.read_only):
            mounts[destination] = (source, "ro")
            continue
        if _inside(guard.home, real):
            home_at = _at(destination, real, guard.home)
            mounts[home_at] = (guard.home, "ro")
            for entry in guard.home_entries:
                mounts.setdefault(
                    os.path.join(home_at, entry), (os.path.join(guard.home, entry), "rw")
                )
        for path in guard.read_only:
            if _inside(path, real) and path != real:
                mounts[_at(destination, real, path)] = (path, "ro")
    return [f"{source}:{destination}:{mode}" for destination, (source, mode) in mounts.items()]


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _at(destination: str, source: str, path: str) -> str:
    """Where ``path`` (inside ``source``) appears in the container."""
    return os.path.normpath(os.path.join(destination, os.path.relpath(path, source)))
