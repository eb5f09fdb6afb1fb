"""The host folders a kernel may mount: each mount checked, and the checks that say
whether a folder would hand a kernel the container engine or the host's system folders.
"""

from __future__ import annotations

import os
from pathlib import Path

from .engine import DOCKERD_SOCKETS, podman
from .errors import InvalidInput
from .runtime import KERNEL_DIR

# The host's own folders: a kernel may read them if mounted, never write them, unless the
# environment of the process that starts kernels (a server's, not a kernelspec) allows it.
SYSTEM_PATHS = ("/", "/boot", "/dev", "/etc", "/lib", "/proc", "/run", "/sys", "/usr", "/var")
ALLOW_SYSTEM_MOUNTS = "DISTROKERNELS_ALLOW_SYSTEM_MOUNTS"


def parse_mount(text: str, local: bool = True) -> str:
    """'HOST[:CONTAINER][:ro|rw]' -> 'HOST:CONTAINER:MODE', checked; read-only by default."""
    parts = text.split(":")
    mode = "ro"
    if parts[-1] in ("ro", "rw"):
        mode = parts.pop()
    if len(parts) not in (1, 2) or not all(parts):
        raise InvalidInput(f"mount {text!r} is not HOST[:CONTAINER][:ro|rw]", "fix the mount")
    host, container = parts[0], parts[-1]
    if not (os.path.isabs(host) and os.path.isabs(container)):
        raise InvalidInput(f"mount {text!r} needs absolute paths", "use /absolute/paths")
    if ".." in Path(host).parts or ".." in Path(container).parts:
        raise InvalidInput(f"mount {text!r} contains '..'", "use paths without '..'")
    if exposes_engine(host):
        raise InvalidInput(
            f"mount {text!r} would hand the kernel the container engine (dockerd's is root "
            "on the host; Podman's lets it escape its limits)",
            "never mount the engine's socket, or a folder holding it, into a kernel",
        )
    if local and not os.path.exists(host):
        raise InvalidInput(f"mount source {host} does not exist", "create it or fix the path")
    if container == KERNEL_DIR or container.startswith(KERNEL_DIR + "/"):
        raise InvalidInput(f"mount {text!r}: {KERNEL_DIR} is the kernel's own", "mount elsewhere")
    if mode == "rw" and local and system_path(host) and os.environ.get(ALLOW_SYSTEM_MOUNTS) != "1":
        raise InvalidInput(
            f"mount {text!r} would let the kernel write the host's {system_path(host)}",
            f"mount it read-only, or set {ALLOW_SYSTEM_MOUNTS}=1 where Jupyter runs",
        )
    return f"{host}:{container}:{mode}"


def system_path(host: str) -> str:
    """The system folder ``host`` is or lies in ('' if none): '/', '/etc', ..."""
    real = os.path.realpath(host)
    for top in SYSTEM_PATHS:
        if real == top or (top != "/" and real.startswith(top + "/")):
            return top
    return ""


def exposes_engine(path: str) -> bool:
    """Whether mounting ``path`` would put an engine's socket (dockerd's, or the user's
    Podman) inside the container."""
    real = os.path.realpath(path)
    if os.path.basename(real) in ("docker.sock", "podman.sock"):
        return True
    prefix = real.rstrip("/") + "/"
    return any(
        socket == real or os.path.realpath(socket).startswith(prefix)
        for socket in (*DOCKERD_SOCKETS, podman.user_socket())
    )
