"""The user's private runtime folder: connection files, IPC sockets, warm slots.

Layout, all of it on the host and only the ``io`` folders ever mounted into a container::

    ROOT/                 0700, yours: $XDG_RUNTIME_DIR/distrokernels, else a /tmp folder
    ROOT/K/               one kernel, kept across its restarts (its endpoints live here)
    ROOT/K/kernel.json    Jupyter's connection file: no container can see or change it
    ROOT/K/io/            the only folder the kernel's container mounts (at KERNEL_DIR):
                          its own copy of the connection file, its sockets
    ROOT/K/claimant       a warm kernel's: the process that claimed it (owners.py), which
                          owns it from then on, whoever created its container
    ROOT/w-XXXXXXXX/      a warm container's slot (pool.py); a claim renames it to K/io

So a kernel sees its own key and sockets and nothing of any other kernel's, and a restart
keeps Jupyter's endpoints (``K/io/k-PORT``) while the new container gets a fresh ``io``.
Everything under ``io`` is written by a container: the host opens nothing there that
follows a link (``write_new``, ``open_fifo``) and removes it without following links.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import KernelStartFailed

log = logging.getLogger(__name__)

KERNEL_DIR = "/run/distrokernels"  # a kernel's own folder, as its container sees it
KERNEL_CONNECTION_FILE = f"{KERNEL_DIR}/kernel.json"
IO = "io"  # in a kernel's host folder: the folder its container mounts
SLOT_PREFIX = "w-"  # a warm container's slot (pool.py), beside the kernels' folders
MAX_IPC_PATH = 107  # libzmq keeps IPC paths in a sockaddr_un: at most 107 bytes
IPC_SAMPLE = f"/{'0' * 8}/{IO}/k-00000"  # the longest socket path below the root
CLAIMANT = "claimant"  # in a warm kernel's host folder: the process that claimed it
_FALLBACK_NOTE = "runtime-dir"  # in the state folder: the private /tmp fallback in use


class UnsafePath(KernelStartFailed):
    """Something a container put in a shared folder where the host expected its own."""

    def __init__(self, what: str) -> None:
        super().__init__(what, "a kernel tampered with its folder: that container is retired")


def runtime_root() -> Path:
    """The user's private folder for connection files and IPC sockets (short paths).

    ``$XDG_RUNTIME_DIR/distrokernels`` when the session has one; else
    ``/tmp/distrokernels-UID``, or, when someone else took that name first, a private
    folder of a random name (recorded in the state folder so every process finds it).
    """
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    if xdg and os.access(xdg, os.W_OK):
        root = Path(xdg) / "distrokernels"
        _make_private(root)
        _check_private(root, "set XDG_RUNTIME_DIR to a folder only you can access")
        return root
    root = Path(tempfile.gettempdir()) / f"distrokernels-{os.getuid()}"
    _make_private(root)
    if is_private(root):
        return root
    return _fallback(root)


def _make_private(folder: Path) -> None:
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)


def is_private(folder: Path) -> bool:
    """A real folder (not a link), yours, that no one else can enter."""
    try:
        info = folder.lstat()
    except FileNotFoundError:
        return False
    return (
        stat.S_ISDIR(info.st_mode)
        and info.st_uid == os.getuid()
        and not stat.S_IMODE(info.st_mode) & 0o077
    )


def _check_private(folder: Path, fix: str) -> None:
    if not is_private(folder):
        info = folder.lstat()
        raise KernelStartFailed(
            f"{folder} is not a private folder of yours (owner uid {info.st_uid}, "
            f"mode {stat.S_IMODE(info.st_mode):o})",
            fix,
        )


def _fallback(squatted: Path) -> Path:
    """A /tmp folder only this user could have made: a random name, created here."""
    note = _state_folder() / _FALLBACK_NOTE
    with contextlib.suppress(OSError):
        recorded = Path(note.read_text().strip())
        if recorded.parent == squatted.parent and is_private(recorded):
            return recorded
    root = Path(tempfile.mkdtemp(prefix=f"{squatted.name}-", dir=squatted.parent))
    note.parent.mkdir(parents=True, exist_ok=True)
    note.write_text(f"{root}\n")
    owner = squatted.lstat().st_uid
    log.warning(
        "distrokernels: %s is not yours (uid %s made it); your kernels use %s instead",
        squatted,
        owner,
        root,
    )
    return root


def _state_folder() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(state) / "distrokernels"


def new_kernel_folder() -> str:
    """A fresh private folder for one kernel, its IPC paths within libzmq's limit."""
    root = runtime_root()
    folder = root / secrets.token_hex(4)
    if len(f"{root}{IPC_SAMPLE}") > MAX_IPC_PATH:
        raise KernelStartFailed(
            f"the runtime folder {root} is too long for IPC sockets",
            "set XDG_RUNTIME_DIR to a short path",
        )
    folder.mkdir(mode=0o700)
    return str(folder)


def new_slot(root: str) -> str:
    """A new private folder in the runtime root ``root`` for one warm container."""
    slot = os.path.join(root, SLOT_PREFIX + secrets.token_hex(4))
    os.mkdir(slot, 0o700)
    return slot


def slot_token(slot: str) -> str:
    """What makes a slot's name unique (its warm container's name ends with it)."""
    return os.path.basename(slot)[len(SLOT_PREFIX) :]


def is_kernel_folder(path: str) -> bool:
    """A kernel folder of this user's root (a restart's connection file is in one)."""
    folder = Path(path)
    return folder.parent == runtime_root() and is_private(folder)


def kernel_folder_for(connection_file: str) -> str:
    """A restart keeps its folder (Jupyter's connection file is in it); a start gets a
    new one."""
    folder = os.path.dirname(connection_file)
    if connection_file and is_kernel_folder(folder):
        return folder
    return new_kernel_folder()


def replace_io(folder: str, slot: str | None = None) -> str:
    """Give the kernel in ``folder`` a fresh ``io`` folder and return it: the previous one
    (a stopped container's) is removed, and a claimed warm ``slot`` is moved in, else a
    new empty folder is made."""
    io = os.path.join(folder, IO)
    remove_tree(io)
    if slot is None:
        os.mkdir(io, 0o700)
    else:
        os.rename(slot, io)  # the running container keeps its mount: a mount holds the inode
    return io


def remove_tree(path: str) -> None:
    """Remove a folder a container could write, never following its links."""
    if os.path.islink(path):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    assert shutil.rmtree.avoids_symlink_attacks
    shutil.rmtree(path, ignore_errors=True)


def remove_labelled(path: str) -> None:
    """The runtime folder a container's label names, with its kernel's folder when it is
    a claimed slot's link (pool.py). Only ever a folder of this user's runtime root: a
    label is anyone's to write who can create a container on the engine."""
    root = str(runtime_root())
    if not path or os.path.dirname(path) != root:
        return
    if os.path.islink(path):
        target = os.path.realpath(path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        if os.path.dirname(target) == root:  # only a sibling in the root
            remove_tree(target)
        return
    remove_tree(path)


def claimant(labelled: str) -> str:
    """The owner token of the process that claimed the warm container whose label names
    ``labelled`` (its slot, now a link to the kernel's folder); '' when none did. Read
    from the kernel's host folder, which no container mounts, never through a link."""
    root = str(runtime_root())
    if not labelled or os.path.dirname(labelled) != root or not os.path.islink(labelled):
        return ""
    folder = os.path.realpath(labelled)
    if os.path.dirname(folder) != root:
        return ""
    try:
        with _folder(folder) as dir_fd:
            fd = os.open(CLAIMANT, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return ""
    with os.fdopen(fd, "rb") as stream:
        return stream.read(256).decode(errors="replace").strip()


def write_claimant(folder: str, owner: str) -> None:
    """Record ``owner`` as the claimant of the warm kernel in ``folder`` (a restart's
    claim replaces the previous start's)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(folder, CLAIMANT))
    write_new(folder, CLAIMANT, owner.encode())


def write_new(folder: str, name: str, data: bytes) -> None:
    """Create ``folder/name`` with ``data``, mode 0600: never through a link, never over
    a file something else put there."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with _folder(folder) as dir_fd:
        fd = os.open(name, flags, 0o600, dir_fd=dir_fd)
    with os.fdopen(fd, "wb") as stream:
        stream.write(data)


def open_fifo(folder: str, name: str) -> int | None:
    """Open the FIFO ``folder/name`` for writing, without blocking; None when nobody
    reads it. Anything but a FIFO of this user there (a link, a file) is refused."""
    flags = os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
    with _folder(folder) as dir_fd:
        try:
            fd = os.open(name, flags, dir_fd=dir_fd)
        except OSError as error:
            if error.errno in (errno.ENXIO, errno.ENOENT):
                return None
            if error.errno == errno.ELOOP:
                raise UnsafePath(f"{folder}/{name} is a link") from error
            raise
    info = os.fstat(fd)
    if not stat.S_ISFIFO(info.st_mode) or info.st_uid != os.getuid():
        os.close(fd)
        raise UnsafePath(f"{folder}/{name} is not a FIFO of yours")
    return fd


def is_socket(path: str) -> bool:
    """A socket at ``path`` itself, not a link to one."""
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except OSError:
        return False


@contextlib.contextmanager
def _folder(path: str) -> Iterator[int]:
    """A folder's descriptor; the folder itself (made by the host) may not be a link."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)
