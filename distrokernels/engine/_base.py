"""What every engine resource shares: the docker-py client, and its errors as ours."""

from __future__ import annotations

import functools
import os
import stat
from collections.abc import Callable
from typing import Any, TypeVar

import docker
import docker.errors
import requests

from ..errors import EngineUnavailable
from .podman import LIBPOD_INFO, PodmanHost, ensure_service, is_user_url

# HTTP statuses the engine answers with, where they mean something to us.
NOT_FOUND = 404
CONFLICT = 409  # e.g. removing the last tag of an image a container uses
NOT_A_MANAGER = 503  # swarm calls on an engine that manages no swarm
DOCKER_SOCKET = "/var/run/docker.sock"  # dockerd's, where docker-py looks by default
DEFAULT_URL = f"unix://{DOCKER_SOCKET}"
DOCKERD_SOCKETS = {DOCKER_SOCKET, "/run/docker.sock"}


class EngineBase:
    """The connection the resource mixins share (docker-py's low-level API client)."""

    def __init__(self, client: docker.DockerClient, url: str = "") -> None:
        self.client = client
        self.api = client.api
        self.url = url  # as connected to: '' for DOCKER_HOST or the default socket

    @functools.cached_property
    def podman(self) -> PodmanHost | None:
        """What a Podman engine reports about itself; None for dockerd."""
        components = self.api.version().get("Components") or []
        if not any(component.get("Name") == "Podman Engine" for component in components):
            return None
        # docker-py has no call for Podman's own API: its base URL plus libpod's path.
        response = self.api._get(self.api.base_url + LIBPOD_INFO)
        response.raise_for_status()
        return PodmanHost.from_info(response.json())

    @property
    def keeps_ids(self) -> bool:
        """Rootless Podman: containers need keep-id to run as the user's own uid."""
        return self.podman is not None and self.podman.rootless


_F = TypeVar("_F", bound=Callable[..., Any])

_START_HINT = (
    "start it (sudo systemctl start docker, or sudo dockerd &) or point DOCKER_HOST at a "
    "running engine"
)


def engine_errors(method: _F) -> _F:
    """Turn 'cannot reach the engine' from any docker-py call into EngineUnavailable."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            try:
                return method(*args, **kwargs)
            except requests.exceptions.ConnectionError:
                # A pooled connection to an engine that restarted fails once; a fresh
                # connection then succeeds, or fails the same way if the engine is down.
                # The user's own Podman service is started again (it holds no kernel:
                # they run on without it).
                engine = args[0] if args and isinstance(args[0], EngineBase) else None
                if engine is not None and is_user_url(engine.url):
                    ensure_service(engine.url)
                return method(*args, **kwargs)
        except requests.exceptions.ConnectionError as error:
            raise _unavailable(error, _url(args)) from error
        except docker.errors.DockerException as error:
            if "Error while fetching server API version" not in str(error):
                raise
            raise _unavailable(error, _url(args)) from error

    return wrapper  # type: ignore[return-value]


def _url(args: tuple[Any, ...]) -> str:
    """The engine URL a call was for: its connection's, or Engine.connect's argument,
    else the environment's."""
    if args and isinstance(args[0], EngineBase):
        url = args[0].url
    else:
        url = args[1] if len(args) > 1 and isinstance(args[1], str) else ""
    return url or os.environ.get("DOCKER_HOST", "") or DEFAULT_URL


def _unavailable(error: Exception, url: str) -> EngineUnavailable:
    text = str(error)
    path = url.removeprefix("unix://") if url.startswith("unix://") else ""
    if path and os.path.exists(path) and not stat.S_ISSOCK(os.stat(path).st_mode):
        return EngineUnavailable(
            f"{path} is not an engine's socket", "point --docker-host or DOCKER_HOST at one"
        )
    if "Permission denied" in text or "PermissionError" in text:
        if path and os.path.realpath(path) not in DOCKERD_SOCKETS:
            return EngineUnavailable(
                f"permission denied on {path}", "use an engine socket that is yours to use"
            )
        return EngineUnavailable(
            "permission denied on the Docker engine's socket",
            "add your user to the 'docker' group (sudo usermod -aG docker $USER) and log in again",
        )
    return EngineUnavailable("the Docker engine is not reachable", _START_HINT)
