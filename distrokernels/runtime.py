"""The user's private runtime folder: connection files, IPC sockets, warm slots.

Short (libzmq keeps IPC paths to 107 bytes) and 0700, so no other user can reach a
kernel's sockets or read its key.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import KernelStartFailed


def runtime_root() -> Path:
    """The user's private folder for connection files and IPC sockets (short paths)."""
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    if xdg and os.access(xdg, os.W_OK):
        root = Path(xdg) / "distrokernels"
    else:
        root = Path("/tmp") / f"distrokernels-{os.getuid()}"
    root.mkdir(mode=0o700, exist_ok=True)
    info = root.stat()
    if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
        raise KernelStartFailed(
            f"{root} is not a private folder of yours (owner uid {info.st_uid}, "
            f"mode {stat.S_IMODE(info.st_mode):o})",
            "remove it, or set XDG_RUNTIME_DIR to a folder only you can access",
        )
    return root
