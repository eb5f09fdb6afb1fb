"""The one place that talks to the Docker engine.

Everything else asks this module for images, builds and kernel containers, and gets
distrokernels' own errors back instead of docker-py's HTTP exceptions.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
import requests

from . import owners
from .errors import BuildFailed, EngineUnavailable, ImageNotFound

LABEL = "distrokernels"
LABEL_KERNEL_ID = f"{LABEL}.kernel-id"
LABEL_KERNELSPEC = f"{LABEL}.kernelspec"
LABEL_OWNER = f"{LABEL}.owner"
LABEL_RUNTIME_DIR = f"{LABEL}.runtime-dir"
LABEL_PROBE = f"{LABEL}.probe"

_F = TypeVar("_F", bound=Callable[..., Any])

_START_HINT = (
    "start it (sudo systemctl start docker, or sudo dockerd &) or point DOCKER_HOST at a "
    "running engine"
)


def _engine_errors(method: _F) -> _F:
    """Turn 'cannot reach the engine' from any docker-py call into EngineUnavailable."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            try:
                return method(*args, **kwargs)
            except requests.exceptions.ConnectionError:
                # A pooled connection to an engine that restarted fails once; a fresh
                # connection then succeeds, or fails the same way if the engine is down.
                return method(*args, **kwargs)
        except requests.exceptions.ConnectionError as error:
            raise _unavailable(error) from error
        except docker.errors.DockerException as error:
            if "Error while fetching server API version" not in str(error):
                raise
            raise _unavailable(error) from error

    return wrapper  # type: ignore[return-value]


def _unavailable(error: Exception) -> EngineUnavailable:
    text = str(error)
    if "Permission denied" in text or "PermissionError" in text:
        return EngineUnavailable(
            "permission denied on the Docker engine's socket",
            "add your user to the 'docker' group (sudo usermod -aG docker $USER) and log in again",
        )
    return EngineUnavailable("the Docker engine is not reachable", _START_HINT)


@dataclass(frozen=True)
class KernelContainerSpec:
    """Everything needed to create one kernel's container."""

    image: str
    command: list[str]
    user: str
    working_dir: str
    environment: dict[str, str]
    binds: list[str]  # "host-path:container-path:rw|ro"
    labels: dict[str, str]
    network_mode: str = "bridge"
    tmpfs: dict[str, str] = field(default_factory=dict)
    memory: str | None = None
    cpus: float | None = None
    pids_limit: int | None = None
    cap_drop: list[str] = field(default_factory=list)
    cap_add: list[str] = field(default_factory=list)
    security_opt: list[str] = field(default_factory=list)
    name: str | None = None


@dataclass(frozen=True)
class ContainerState:
    running: bool
    exit_code: int | None


@dataclass(frozen=True)
class KernelContainer:
    id: str
    name: str
    labels: dict[str, str]
    status: str


class Engine:
    """A connected Docker engine."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client
        self.api = client.api

    @classmethod
    @_engine_errors
    def connect(cls, url: str = "", timeout: int = 120) -> Engine:
        """Connect to ``url``, else DOCKER_HOST or the default socket; or say how to start
        the engine."""
        if url:
            return cls(docker.DockerClient(base_url=url, timeout=timeout))
        return cls(docker.from_env(timeout=timeout))

    # --- images ------------------------------------------------------------------

    @_engine_errors
    def find_image(self, reference: str) -> dict[str, Any] | None:
        """The image's inspect data, or None when it is not on this engine."""
        if not reference:
            return None
        try:
            return self.api.inspect_image(reference)
        except docker.errors.ImageNotFound:
            return None
        except docker.errors.APIError as error:
            if error.status_code in (400, 404):
                return None
            raise

    @_engine_errors
    def pull(self, reference: str, progress: Callable[[str], None]) -> dict[str, Any]:
        """Pull ``reference``, reporting each layer's progress."""
        repository, tag = _split_tag(reference)
        try:
            for event in self.api.pull(repository, tag=tag, stream=True, decode=True):
                if "error" in event:
                    raise ImageNotFound(
                        f"could not pull {reference}: {event['error']}",
                        "check the name, your network, or `docker login` for private images",
                    )
                status = event.get("status", "")
                layer = event.get("id", "")
                detail = event.get("progress", "")
                progress(" ".join(part for part in (layer, status, detail) if part))
        except docker.errors.APIError as error:
            raise ImageNotFound(
                f"{reference} is not on this machine and could not be pulled: "
                f"{error.explanation or error}",
                "check the image name, your network, or `docker login` for private images",
            ) from error
        image = self.find_image(reference)
        if image is None:
            raise ImageNotFound(f"pulling {reference} gave no image", "check the image name")
        return image

    @_engine_errors
    def import_rootfs(self, tarball: Path, reference: str, changes: list[str]) -> str:
        """Import a root file system tarball as an image; returns its id."""
        repository, tag = _split_tag(reference)
        result = self.api.import_image_from_file(
            str(tarball), repository=repository, tag=tag, changes=changes
        )
        image = self.find_image(reference)
        if image is None:
            raise ImageNotFound(f"importing {tarball} did not create {reference}: {result}")
        return image["Id"]

    @_engine_errors
    def build(
        self,
        context: Path,
        tag: str | None,
        progress: Callable[[str], None],
        network_mode: str | None = None,
    ) -> str:
        """Build the Dockerfile in ``context``; returns the image id.

        Intermediate containers are removed even when a step fails (forcerm), so a
        failed or interrupted build leaves nothing running behind. A rebuild that moves
        ``tag`` deletes the image it moved away from, unless something still uses it.
        """
        previous = self.find_image(tag) if tag else None
        tail: list[str] = []
        step_images: set[str] = set()
        image_id = ""
        stream = self.api.build(
            path=str(context),
            tag=tag,
            rm=True,
            forcerm=True,
            network_mode=network_mode,
            pull=False,
            decode=True,
        )
        try:
            for event in stream:
                if "error" in event:
                    tail.append(event["error"].strip())
                    raise BuildFailed(
                        f"building {tag or 'a stage'} failed: "
                        f"{' | '.join(line for line in tail[-12:] if line)}",
                        "fix the cause above (network to the distro's package archive?) "
                        "and run the install again",
                    )
                if "aux" in event and "ID" in event["aux"]:
                    image_id = event["aux"]["ID"]
                for line in event.get("stream", "").splitlines():
                    if line.strip().startswith("---> ") and " " not in line.strip()[5:]:
                        step_images.add(line.strip()[5:])
                    if line.strip():
                        tail = [*tail[-40:], line]
                        progress(line)
        finally:
            stream.close()
        if not image_id:
            raise BuildFailed(f"building {tag or 'a stage'} reported no image", "run it again")
        if previous and previous["Id"] != image_id:
            step_images.add(previous["Id"])
        self._remove_stage_leftovers(image_id, step_images)
        return image_id

    def _remove_stage_leftovers(self, image_id: str, step_images: set[str]) -> None:
        """Delete images of earlier build stages that the result does not stand on.

        A multi-stage build keeps each stage's last image; the venv stage's one holds
        the wheel files and would sit on disk as a dangling image.
        """
        ancestors = {entry["Id"] for entry in self.api.history(image_id)}
        for short_id in step_images:
            try:
                full_id = self.api.inspect_image(short_id)["Id"]
                if full_id != image_id and full_id not in ancestors:
                    self.api.remove_image(full_id)
            except docker.errors.APIError:
                pass  # in use as another build's cache or parent: keep it

    @_engine_errors
    def run_script(self, image: str, script: str, timeout: float = 120) -> str:
        """Run a /bin/sh script in a throwaway, network-less container; returns its stdout."""
        container = self.api.create_container(
            image,
            command=["-c", script],
            entrypoint=["/bin/sh"],
            user="0",
            network_disabled=True,
            labels={LABEL_PROBE: "1"},
            host_config=self.api.create_host_config(network_mode="none"),
        )
        try:
            self.api.start(container)
            result = self.api.wait(container, timeout=timeout)
            output = self.api.logs(container, stdout=True, stderr=False).decode(errors="replace")
            if result.get("StatusCode", 1) != 0:
                errors = self.api.logs(container, stdout=False, stderr=True).decode(
                    errors="replace"
                )
                raise ImageNotFound(
                    f"{image} cannot run /bin/sh ({errors.strip()[-200:]})",
                    "distrokernels needs an image with a shell; use a distro base image",
                )
            return output
        finally:
            self.api.remove_container(container, force=True)

    @_engine_errors
    def remove_image(self, reference: str) -> bool:
        try:
            self.api.remove_image(reference)
        except docker.errors.ImageNotFound:
            return False
        return True

    @_engine_errors
    def images_labelled(self, label: str) -> list[dict[str, Any]]:
        return self.api.images(filters={"label": label})

    # --- kernel containers --------------------------------------------------------

    @_engine_errors
    def start_kernel_container(self, spec: KernelContainerSpec) -> str:
        """Create and start the container; returns its id."""
        host_config = self.api.create_host_config(
            binds=spec.binds,
            init=True,
            network_mode=spec.network_mode,
            tmpfs=spec.tmpfs or None,
            mem_limit=spec.memory,
            nano_cpus=int(spec.cpus * 1e9) if spec.cpus else None,
            pids_limit=spec.pids_limit,
            cap_drop=spec.cap_drop or None,
            cap_add=spec.cap_add or None,
            security_opt=spec.security_opt or None,
        )
        try:
            container = self.api.create_container(
                spec.image,
                command=spec.command,
                user=spec.user,
                working_dir=spec.working_dir,
                environment=spec.environment,
                labels=spec.labels,
                host_config=host_config,
                name=spec.name,
                entrypoint=[],
            )
        except docker.errors.ImageNotFound as error:
            raise ImageNotFound(f"image {spec.image} is not on this engine") from error
        container_id = container["Id"]
        try:
            self.api.start(container_id)
        except docker.errors.APIError:
            self.api.remove_container(container_id, force=True)
            raise
        return container_id

    @_engine_errors
    def container_state(self, container_id: str) -> ContainerState | None:
        """Running or not, and the exit code; None when the container is gone."""
        try:
            state = self.api.inspect_container(container_id)["State"]
        except docker.errors.NotFound:
            return None
        running = state.get("Running", False) or state.get("Status") in ("created", "restarting")
        return ContainerState(running=running, exit_code=None if running else state["ExitCode"])

    @_engine_errors
    def signal_container(self, container_id: str, signum: int) -> bool:
        """Send a signal to the container's init; False if it is not running."""
        try:
            self.api.kill(container_id, signal=int(signum))
        except docker.errors.APIError as error:
            if error.status_code in (404, 409):
                return False
            raise
        return True

    @_engine_errors
    def container_logs(self, container_id: str, tail: int = 20) -> str:
        try:
            return self.api.logs(container_id, tail=tail).decode(errors="replace")
        except docker.errors.NotFound:
            return ""

    @_engine_errors
    def remove_container(self, container_id: str) -> None:
        try:
            self.api.remove_container(container_id, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as error:
            if error.status_code != 409:  # removal already in progress
                raise

    @_engine_errors
    def kernel_containers(self) -> list[KernelContainer]:
        """Every container distrokernels started, running or not."""
        return [
            KernelContainer(
                id=entry["Id"],
                name=(entry.get("Names") or ["?"])[0].lstrip("/"),
                labels=entry.get("Labels") or {},
                status=entry.get("State", ""),
            )
            for entry in self.api.containers(all=True, filters={"label": LABEL_KERNEL_ID})
        ]

    def collect_orphans(self) -> list[KernelContainer]:
        """Remove kernel containers whose owning process is gone; returns what was removed."""
        removed = []
        for container in self.kernel_containers():
            if owners.owner_is_alive(container.labels.get(LABEL_OWNER, "")):
                continue
            self.remove_container(container.id)
            runtime_dir = container.labels.get(LABEL_RUNTIME_DIR)
            if runtime_dir:
                shutil.rmtree(runtime_dir, ignore_errors=True)
            removed.append(container)
        return removed


def _split_tag(reference: str) -> tuple[str, str | None]:
    """'debian:bookworm' -> ('debian', 'bookworm'); a registry port is not a tag."""
    if "@" in reference:
        return reference, None
    repository, _, tag = reference.rpartition(":")
    if not repository or "/" in tag:
        return reference, "latest"
    return repository, tag
