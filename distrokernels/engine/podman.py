"""Rootless Podman: the user's own engine, with no daemon running as root.

Podman serves a Docker-compatible API on a socket of the user's
(``$XDG_RUNTIME_DIR/podman/podman.sock``), so the rest of the engine package talks to
it through docker-py as to dockerd. What differs is decided here, from the engine's own
report (``libpod/info``), never from a guess:

- **Finding it.** ``--engine podman`` names that socket. When nothing answers on it,
  ``ensure_service`` starts ``podman system service --time=0`` for the user, in its own
  session (no systemd needed; ``--time=0`` keeps it from exiting when idle), and says so.
- **User namespaces.** A rootless container's uid 1000 is a subordinate uid on the host,
  which cannot enter the user's 0700 runtime folder and would own the notebook's files.
  Podman's ``keep-id`` mode maps the user's uid to itself; docker-py refuses any
  ``userns_mode`` but ``host``, so the containers module sets ``UsernsMode`` in the host
  config it builds. Podman's tmpfs takes ``U`` (owned by the container's user) where
  dockerd takes ``uid=,gid=``.
- **Limits.** Rootless Podman can only apply the cgroup controllers delegated to the
  user: none on cgroup v1, usually ``memory pids`` (and ``cpu`` when configured) on v2.
  It ignores the rest without an error, so ``ignored_limits`` names them for a warning.
- **Names.** Podman qualifies short names (``docker.io/distrokernels/...``, a loaded
  image ``localhost/...``); ``short_name`` gives back the name Docker would show.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import EngineUnavailable

log = logging.getLogger(__name__)

ADMIN_INSTALL = (
    "sudo apt-get install podman uidmap slirp4netns fuse-overlayfs catatonit containers-storage"
)
SERVICE_START_TIMEOUT = 30.0  # seconds for a fresh service to answer on its socket
_SERVICE_POLL = 0.05
SERVICE_LOG = "distrokernels-service.log"  # beside the socket: why a start failed
SERVICE_LOCK = "distrokernels-service.lock"
LIBPOD_INFO = "/v4.0.0/libpod/info"  # the API version every Podman 4 serves
_QUALIFIERS = ("docker.io/library/", "docker.io/", "localhost/")
# What a kernelspec limit needs delegated to the user (cgroup v2 controller names).
LIMIT_CONTROLLERS = {"memory": "memory", "cpus": "cpu", "pids_limit": "pids"}


def user_socket() -> str:
    """The user's rootless Podman API socket (what `podman system service` serves)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    return os.path.join(runtime, "podman", "podman.sock")


def user_url() -> str:
    """The URL of this user's rootless Podman socket."""
    return f"unix://{user_socket()}"


def is_user_url(url: str) -> bool:
    """Whether ``url`` is this user's own Podman socket."""
    return url == user_url()


def ensure_service(url: str) -> None:
    """Start the user's Podman API service unless it answers on ``url``'s socket."""
    path = url.removeprefix("unix://")
    if _answers(path):
        return
    podman = shutil.which("podman")
    if podman is None:
        raise EngineUnavailable("Podman is not installed", f"ask an admin to run: {ADMIN_INSTALL}")
    folder = os.path.dirname(path)
    if not os.path.isdir(os.path.dirname(folder)):
        raise EngineUnavailable(
            f"your runtime folder {os.path.dirname(folder)} does not exist",
            "log in through a session that creates it, or export XDG_RUNTIME_DIR=<a 0700 "
            "folder of yours>",
        )
    os.makedirs(folder, exist_ok=True)
    # One starter at a time (a Jupyter server and a CLI may both find it down).
    with open(os.path.join(folder, SERVICE_LOCK), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _answers(path):
            _start_service(podman, url, folder)


def _start_service(podman: str, url: str, folder: str) -> None:
    path = url.removeprefix("unix://")
    if os.path.exists(path):  # a service killed without cleanup: nothing listens on it
        os.unlink(path)
    command = [podman, "system", "service", "--time=0", url]
    log_path = os.path.join(folder, SERVICE_LOG)
    with open(log_path, "ab") as output:
        logged = output.tell()
        # setsid -f: the service is nobody's child here (no zombie when it dies) and
        # outlives this process, as a user's service does.
        subprocess.run(
            ["setsid", "-f", *command], stdin=subprocess.DEVNULL, stdout=output, stderr=output
        )
    deadline = time.monotonic() + SERVICE_START_TIMEOUT
    while not _answers(path):
        failed = "Error:" in _tail(log_path, since=logged)
        if failed or time.monotonic() > deadline:
            raise EngineUnavailable(
                f"Podman's API service did not start: {_tail(log_path, since=logged)}",
                f"run `{' '.join(command)} &` yourself and read its error; rootless Podman "
                "needs your user in /etc/subuid and /etc/subgid",
            )
        time.sleep(_SERVICE_POLL)
    log.warning("distrokernels: started Podman's API service for you: %s", " ".join(command))


def _answers(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


def _tail(path: str, since: int = 0, lines: int = 3) -> str:
    """The last lines the log got after byte ``since``."""
    try:
        with open(path, "rb") as file:
            file.seek(since)
            text = file.read().decode(errors="replace")
    except OSError:
        return "no output"
    return " | ".join(line.strip() for line in text.splitlines()[-lines:]) or "no output"


@dataclass(frozen=True)
class PodmanHost:
    """What the Podman engine reports about itself, as far as kernels care."""

    rootless: bool
    cgroup_version: str  # "v1" or "v2"
    controllers: tuple[str, ...]  # the cgroup controllers delegated to the user
    graph_driver: str  # "overlay"; "vfs" copies the whole image for every container

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> PodmanHost:
        """The facts of Podman's ``info`` this package acts on."""
        host, store = info.get("host") or {}, info.get("store") or {}
        return cls(
            rootless=bool((host.get("security") or {}).get("rootless")),
            cgroup_version=str(host.get("cgroupVersion", "")),
            controllers=tuple(host.get("cgroupControllers") or ()),
            graph_driver=str(store.get("graphDriverName", "")),
        )

    def ignored_limits(self, config: Mapping[str, Any]) -> list[str]:
        """The limits a kernelspec config (trait name -> value; None or absent: unset)
        asks for that this engine would ignore: rootless, the controller not delegated."""
        if not self.rootless:
            return []
        return [
            f"{name}={config[name]}"
            for name, controller in LIMIT_CONTROLLERS.items()
            if config.get(name) is not None and controller not in self.controllers
        ]

    def limits_warning(self, config: Mapping[str, Any]) -> str:
        """One line for the user, '' when every limit applies."""
        ignored = self.ignored_limits(config)
        if not ignored:
            return ""
        delegated = " ".join(self.controllers) or "none"
        return (
            f"rootless Podman on cgroup {self.cgroup_version} cannot apply {', '.join(ignored)} "
            f"(cgroup controllers delegated to you: {delegated}); the kernel runs without "
            "them. cgroup v2 with systemd's delegation (Delegate=memory pids cpu) applies them"
        )

    @property
    def storage_warning(self) -> str:
        """Why builds and starts will be slow on this storage driver ('' if they will not)."""
        if self.graph_driver != "vfs":
            return ""
        return (
            "Podman stores images with the vfs driver: every kernel container copies the "
            'whole image; install containers-storage (or set driver = "overlay" in '
            "~/.config/containers/storage.conf) and run `podman system reset`"
        )


def short_name(reference: str) -> str:
    """'docker.io/distrokernels/debian-12:x' -> 'distrokernels/debian-12:x'."""
    for qualifier in _QUALIFIERS:
        if reference.startswith(qualifier):
            return reference[len(qualifier) :]
    return reference


def podman_tmpfs(options: str) -> str:
    """dockerd's tmpfs options 'rw,mode=0700,uid=U,gid=G' as Podman's 'rw,mode=0700,U':
    Podman refuses uid= and gid=, and U makes the container's user the owner."""
    kept = [option for option in options.split(",") if not option.startswith(("uid=", "gid="))]
    return ",".join([*kept, "U"])
