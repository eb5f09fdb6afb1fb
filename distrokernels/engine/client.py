"""Engine: one connected engine, every resource's calls on it (docker-py's API mixins)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from urllib.parse import urlparse

import docker

from .. import owners
from ..runtime import runtime_root
from . import podman
from ._base import DOCKER_SOCKET, engine_errors
from .containers import ContainersMixin, KernelContainer
from .images import ImagesMixin
from .labels import LABEL_OWNER, LABEL_RUNTIME_DIR
from .services import ServicesMixin
from .volumes import VolumesMixin


class Engine(ImagesMixin, ContainersMixin, ServicesMixin, VolumesMixin):
    """A connected Docker engine."""

    @classmethod
    @engine_errors
    def connect(cls, url: str = "", timeout: int = 120) -> Engine:
        """Connect to ``url``, else DOCKER_HOST or the default socket; or say how to start
        the engine. The user's own Podman socket gets its service started if need be."""
        if podman.is_user_url(url):
            podman.ensure_service(url)
        environment = dict(os.environ, **({"DOCKER_HOST": url} if url else {}))
        ssh = environment.get("DOCKER_HOST", "").startswith("ssh://")
        # The system's ssh (its config, agent and known hosts), TLS from DOCKER_CERT_PATH.
        client = docker.from_env(environment=environment, timeout=timeout, use_ssh_client=ssh)
        return cls(client, url)

    def collect_orphans(
        self, owner_is_gone: Callable[[str], bool] = owners.owner_is_gone
    ) -> list[KernelContainer]:
        """Remove kernel containers and services whose owning process is gone.

        ``owner_is_gone`` judges an owner token; a launcher's watchdog, which knows its
        launcher has died, passes its own judgement.
        """
        removed = self.orphans(owner_is_gone)
        for kernel in removed:
            if kernel.status == "service":  # what kernel_services lists
                self.remove_kernel_service(kernel.id)
            else:
                self.remove_container(kernel.id)
            remove_runtime_dir(kernel.labels.get(LABEL_RUNTIME_DIR, ""))
        self._collect_orphan_secrets(owner_is_gone)
        return removed

    def orphans(
        self, owner_is_gone: Callable[[str], bool] = owners.owner_is_gone
    ) -> list[KernelContainer]:
        """Kernel containers and services whose owning process is gone (what `gc`
        removes, what `doctor` reports)."""
        return [
            kernel
            for kernel in [*self.kernel_containers(), *self.kernel_services()]
            if owner_is_gone(kernel.labels.get(LABEL_OWNER, ""))
        ]


def remove_runtime_dir(path: str) -> None:
    """A kernel's runtime folder; a claimed warm container labels a link to the kernel's
    folder (pool.py): the link and its folder. Only ever a folder of this user's runtime
    root: a label is anyone's to write who can create a container on the engine."""
    if not path or os.path.dirname(path) != str(runtime_root()):
        return
    if os.path.islink(path):
        target = os.path.realpath(path)
        os.unlink(path)
        if os.path.dirname(target) == os.path.dirname(path):  # only a sibling in the root
            shutil.rmtree(target, ignore_errors=True)
        return
    shutil.rmtree(path, ignore_errors=True)


ENGINES = ("docker", "podman")


def choose_engine(requested: str, docker_host: str = "") -> str:
    """'auto': dockerd when it is named or its socket is open to this user, else the
    user's rootless Podman when it is installed, else dockerd (whose error says how to
    get access)."""
    if requested != "auto":
        return requested
    if docker_host or os.environ.get("DOCKER_HOST"):
        return "docker"
    if os.access(DOCKER_SOCKET, os.R_OK | os.W_OK):
        return "docker"
    return "podman" if shutil.which("podman") else "docker"


def engine_url(engine: str, docker_host: str = "") -> str:
    """Where a kernelspec's engine answers: its docker_host if it names one; for Podman
    otherwise the socket of the user who runs the kernel (each user has their own)."""
    if engine == "podman" and not docker_host:
        return podman.user_url()
    return docker_host


def remote_address(url: str) -> str:
    """The host of a tcp://, ssh:// or http(s):// engine URL; '' for a local socket.

    An empty URL means the environment's DOCKER_HOST, as docker-py reads it.
    """
    parsed = urlparse(url or os.environ.get("DOCKER_HOST", ""))
    if parsed.scheme in ("tcp", "ssh", "http", "https"):
        return parsed.hostname or ""
    return ""
