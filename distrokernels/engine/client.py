"""Engine: one connected engine, every resource's calls on it (docker-py's API mixins)."""

from __future__ import annotations

import os
import shutil
from urllib.parse import urlparse

import docker

from . import podman
from ._base import DOCKER_SOCKET, engine_errors
from .containers import ContainersMixin
from .images import ImagesMixin
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
