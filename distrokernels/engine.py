"""The one place that talks to the Docker engine.

Everything else asks this module for images, builds and kernel containers, and gets
distrokernels' own errors back instead of docker-py's HTTP exceptions.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import shutil
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import docker
import docker.errors
import requests
from docker.types import (
    ContainerSpec,
    EndpointSpec,
    Mount,
    Placement,
    Resources,
    RestartPolicy,
    SecretReference,
    ServiceMode,
    TaskTemplate,
)

from . import owners
from .errors import BuildFailed, EngineUnavailable, ImageNotFound, KernelStartFailed

LABEL = "distrokernels"
LABEL_KERNEL_ID = f"{LABEL}.kernel-id"
LABEL_KERNELSPEC = f"{LABEL}.kernelspec"
LABEL_OWNER = f"{LABEL}.owner"
LABEL_RUNTIME_DIR = f"{LABEL}.runtime-dir"
LABEL_PROBE = f"{LABEL}.probe"
LABEL_VOLUME = f"{LABEL}.volume"

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
    # TCP kernels: container ports to publish, and the host ports asked for (0: any free
    # one). A restart asks for the ports it had, so connected clients keep working.
    ports: dict[int, int] = field(default_factory=dict)
    # Files placed in the container before the kernel starts, owned by ``user``, 0400:
    # the connection file of a kernel whose engine cannot bind-mount the runtime folder.
    files: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class KernelServiceSpec:
    """A kernel as a one-replica swarm service: its container plus where it may run."""

    container: KernelContainerSpec
    constraints: list[str] = field(default_factory=list)


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


@dataclass(frozen=True)
class KernelTask:
    """Where a kernel service's one task is and how it is doing."""

    state: str  # the swarm task state: pending, running, rejected, failed, complete...
    error: str
    container_id: str
    node_id: str
    ports: dict[int, int]  # container port -> published port on the node
    exit_code: int | None = None

    @property
    def running(self) -> bool:
        return self.state in _TASK_STARTING or self.state == "running"


_TASK_STARTING = {
    "new", "allocated", "pending", "assigned", "accepted", "preparing", "ready", "starting",
}  # fmt: skip


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
        environment = dict(os.environ, **({"DOCKER_HOST": url} if url else {}))
        ssh = environment.get("DOCKER_HOST", "").startswith("ssh://")
        # The system's ssh (its config, agent and known hosts), TLS from DOCKER_CERT_PATH.
        return cls(docker.from_env(environment=environment, timeout=timeout, use_ssh_client=ssh))

    # --- images ------------------------------------------------------------------

    @_engine_errors
    def find_image(self, reference: str) -> dict[str, Any] | None:
        """The image's inspect data, or None when it is not on this engine."""
        if not reference:
            return None
        try:
            image: dict[str, Any] = self.api.inspect_image(reference)
            return image
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
    def push(self, image_id: str, reference: str, progress: Callable[[str], None]) -> str:
        """Tag ``image_id`` as ``reference``, push it; returns 'repository@sha256:...'."""
        repository, tag = _split_tag(reference)
        self.api.tag(image_id, repository, tag, force=True)
        digest = ""
        try:
            for event in self.api.push(repository, tag=tag, stream=True, decode=True):
                if "error" in event:
                    raise ImageNotFound(
                        f"pushing {reference} failed: {event['error']}",
                        "check the registry's address, that it is running, and `docker login`",
                    )
                digest = (event.get("aux") or {}).get("Digest", digest)
                status = " ".join(str(event.get(key, "")) for key in ("id", "status", "progress"))
                if status.strip():
                    progress(status.strip())
        except docker.errors.APIError as error:
            raise ImageNotFound(
                f"pushing {reference} failed: {error.explanation or error}",
                "check the registry's address and `docker login`",
            ) from error
        if not digest:
            raise ImageNotFound(f"pushing {reference} reported no digest", "push it again")
        return f"{repository}@{digest}"

    @_engine_errors
    def copy_image_to(self, target: Engine, reference: str) -> None:
        """`docker save | docker load`, engine to engine: the image keeps its id."""
        try:
            target.api.load_image(self.api.get_image(reference))
        except docker.errors.ImageNotFound as error:
            raise ImageNotFound(f"{reference} is not on the source engine") from error

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
        return str(image["Id"])

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
            return str(output)
        finally:
            self.api.remove_container(container, force=True)

    @_engine_errors
    def remove_image(self, reference: str) -> bool:
        """Remove a tag (the image goes with its last tag); False when it is not there,
        or when a container still uses the image: the engine then keeps both."""
        try:
            self.api.remove_image(reference)
        except docker.errors.ImageNotFound:
            return False
        except docker.errors.APIError as error:
            if error.status_code != _CONFLICT:
                raise
            return False
        return True

    @_engine_errors
    def tag_image(self, image_id: str, reference: str) -> None:
        repository, tag = _split_tag(reference)
        self.api.tag(image_id, repository, tag, force=True)

    @_engine_errors
    def images_labelled(self, label: str) -> list[dict[str, Any]]:
        images: list[dict[str, Any]] = self.api.images(filters={"label": label})
        return images

    @_engine_errors
    def containers_using(self, image_id: str) -> int:
        """Containers, running or not, made from the image or from an image built on it."""
        return len(self.api.containers(all=True, filters={"ancestor": image_id}))

    @_engine_errors
    def layers_size(self) -> int:
        """Bytes the engine's image layers take, each layer counted once."""
        return int(self.api.df().get("LayersSize") or 0)

    @_engine_errors
    def image_sizes(self) -> list[dict[str, Any]]:
        """Every image's Id, Size and SharedSize (bytes in layers other images have too)."""
        return self.api.df().get("Images") or []

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
            port_bindings={port: published or None for port, published in spec.ports.items()}
            or None,
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
                ports=list(spec.ports) or None,
            )
        except docker.errors.ImageNotFound as error:
            raise ImageNotFound(f"image {spec.image} is not on this engine") from error
        container_id = container["Id"]
        try:
            if spec.files:
                self.api.put_archive(container_id, "/", _tarball(spec.files, spec.user))
            self.api.start(container_id)
        except docker.errors.APIError:
            self.api.remove_container(container_id, force=True)
            raise
        return str(container_id)

    @_engine_errors
    def published_ports(self, container_id: str) -> dict[int, int]:
        """Container port -> the host port the engine published it on."""
        return container_ports(self.api.inspect_container(container_id)["NetworkSettings"])

    @_engine_errors
    def ensure_volume(self, name: str, image: str, owner: str) -> None:
        """Create the named volume if missing, its root owned by ``owner`` (uid:gid)."""
        try:
            self.api.inspect_volume(name)
            return
        except docker.errors.NotFound:
            pass
        self.api.create_volume(name, labels={LABEL_VOLUME: "1"})
        container = self.api.create_container(
            image,
            command=["chown", owner, "/volume"],
            user="0",
            entrypoint=[],
            labels={LABEL_PROBE: "1"},
            host_config=self.api.create_host_config(
                binds=[f"{name}:/volume:rw"], network_mode="none"
            ),
        )
        try:
            self.api.start(container)
            self.api.wait(container, timeout=60)
        finally:
            self.api.remove_container(container, force=True)

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
            if error.status_code in (_NOT_FOUND, _CONFLICT):
                return False
            raise
        return True

    @_engine_errors
    def container_logs(self, container_id: str, tail: int = 20) -> str:
        try:
            logs: bytes = self.api.logs(container_id, tail=tail)
            return logs.decode(errors="replace")
        except docker.errors.NotFound:
            return ""

    @_engine_errors
    def remove_container(self, container_id: str) -> None:
        try:
            self.api.remove_container(container_id, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as error:
            if error.status_code != _CONFLICT:  # removal already in progress
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

    # --- kernel services (swarm) ----------------------------------------------------

    @_engine_errors
    def swarm_node_id(self) -> str:
        """This engine's swarm node id; '' when it is not in a swarm."""
        swarm = self.api.info().get("Swarm") or {}
        return swarm.get("NodeID", "") if swarm.get("LocalNodeState") == "active" else ""

    @_engine_errors
    def start_kernel_service(self, spec: KernelServiceSpec) -> str:
        """Create the one-replica, never-restarted service; returns its id.

        Files travel as swarm secrets: the swarm hands them only to the node that runs
        the task, and they never show in the service's spec or environment.
        """
        c = spec.container
        uid, _, gid = c.user.partition(":")
        secrets = []
        for path, content in c.files.items():
            with _not_a_manager_is_a_start_failure():
                secret = self.api.create_secret(
                    f"{c.name}-{Path(path).name}", content, labels=c.labels
                )
            secrets.append(
                SecretReference(
                    secret["ID"],
                    f"{c.name}-{Path(path).name}",
                    filename=path,
                    uid=uid,
                    gid=gid or uid,
                    mode=0o400,
                )
            )
        mounts = [_bind_mount(bind) for bind in c.binds]
        mounts += [Mount(target, None, type="tmpfs", tmpfs_mode=0o1777) for target in c.tmpfs]
        resources = Resources(
            cpu_limit=int(c.cpus * 1e9) if c.cpus else None,
            cpu_reservation=int(c.cpus * 1e9) if c.cpus else None,
            mem_limit=_bytes(c.memory) if c.memory else None,
            mem_reservation=_bytes(c.memory) if c.memory else None,
        )
        if c.pids_limit:
            resources.setdefault("Limits", {})["Pids"] = c.pids_limit
        container_spec = ContainerSpec(
            c.image,
            command=c.command,
            env=c.environment,
            workdir=c.working_dir,
            user=c.user,
            labels=c.labels,
            mounts=mounts,
            secrets=secrets,
            init=True,
            cap_add=c.cap_add or None,
            cap_drop=c.cap_drop or None,
            stop_grace_period=2_000_000_000,
        )
        template = TaskTemplate(
            container_spec,
            resources=resources,
            restart_policy=RestartPolicy(condition="none"),
            placement=Placement(constraints=spec.constraints or None),
        )
        endpoint = EndpointSpec(
            ports=[
                {
                    "Protocol": "tcp",
                    "TargetPort": port,
                    "PublishMode": "host",
                    **({"PublishedPort": published} if published else {}),
                }
                for port, published in c.ports.items()
            ]
        )
        with _not_a_manager_is_a_start_failure():
            service = self.api.create_service(
                template, name=c.name, labels=c.labels, endpoint_spec=endpoint
            )
        return str(service["ID"])

    @_engine_errors
    def kernel_task(self, service_id: str) -> KernelTask | None:
        """The service's task, newest first; None when the service is gone."""
        try:
            tasks = self.api.tasks(filters={"service": service_id})
        except docker.errors.NotFound:
            return None
        if not tasks:
            try:
                self.api.inspect_service(service_id)
            except docker.errors.NotFound:
                return None
            return KernelTask("new", "", "", "", {})
        task = max(tasks, key=lambda entry: entry.get("CreatedAt", ""))
        status = task.get("Status") or {}
        container = status.get("ContainerStatus") or {}
        return KernelTask(
            state=status.get("State", ""),
            error=status.get("Err", ""),
            container_id=container.get("ContainerID", ""),
            exit_code=container.get("ExitCode"),
            node_id=task.get("NodeID", ""),
            ports=task_ports(status.get("PortStatus") or {}),
        )

    @_engine_errors
    def node_address(self, node_id: str) -> str:
        """The address a swarm node advertises (what Jupyter connects to)."""
        try:
            return str(self.api.inspect_node(node_id)["Status"].get("Addr", ""))
        except docker.errors.NotFound:
            return ""

    @_engine_errors
    def service_logs(self, service_id: str, tail: int = 20) -> str:
        try:
            chunks = self.api.service_logs(
                service_id, stdout=True, stderr=True, tail=tail, follow=False
            )
            return b"".join(chunks).decode(errors="replace")
        except docker.errors.APIError:
            return ""

    @_engine_errors
    def stop_kernel_service(self, service_id: str) -> None:
        """Scale to zero: the swarm stops the task (SIGTERM, SIGKILL after the grace
        period) and reports it 'shutdown' once its container has stopped, ports freed."""
        try:
            version = self.api.inspect_service(service_id)["Version"]["Index"]
            self.api.update_service(
                service_id, version, mode=ServiceMode("replicated", 0), fetch_current_spec=True
            )
        except docker.errors.NotFound:
            pass

    @_engine_errors
    def remove_kernel_service(self, service_id: str) -> None:
        """Remove the service (the swarm stops its task), then its secrets."""
        try:
            spec = self.api.inspect_service(service_id)["Spec"]
        except docker.errors.NotFound:
            return
        with contextlib.suppress(docker.errors.NotFound):
            self.api.remove_service(service_id)
        for reference in spec["TaskTemplate"]["ContainerSpec"].get("Secrets") or []:
            with contextlib.suppress(docker.errors.NotFound):
                self.api.remove_secret(reference["SecretID"])

    @_engine_errors
    def kernel_services(self) -> list[KernelContainer]:
        """Every kernel service distrokernels created on this swarm; none off a swarm."""
        return [
            KernelContainer(
                id=entry["ID"],
                name=entry["Spec"]["Name"],
                labels=entry["Spec"].get("Labels") or {},
                status="service",
            )
            for entry in _unless_not_a_manager(
                lambda: self.api.services(filters={"label": LABEL_KERNEL_ID})
            )
        ]

    def collect_orphans(
        self, owner_is_gone: Callable[[str], bool] = owners.owner_is_gone
    ) -> list[KernelContainer]:
        """Remove kernel containers and services whose owning process is gone.

        ``owner_is_gone`` judges an owner token; a launcher's watchdog, which knows its
        launcher has died, passes its own judgement.
        """
        removed = []
        for kernels, remove in (
            (self.kernel_containers(), self.remove_container),
            (self.kernel_services(), self.remove_kernel_service),
        ):
            for kernel in kernels:
                if not owner_is_gone(kernel.labels.get(LABEL_OWNER, "")):
                    continue
                remove(kernel.id)
                runtime_dir = kernel.labels.get(LABEL_RUNTIME_DIR)
                if runtime_dir:
                    shutil.rmtree(runtime_dir, ignore_errors=True)
                removed.append(kernel)
        self._collect_orphan_secrets(owner_is_gone)
        return removed

    def _collect_orphan_secrets(self, owner_is_gone: Callable[[str], bool]) -> None:
        """Secrets of a start that died between creating them and creating its service."""
        for secret in _unless_not_a_manager(
            lambda: self.api.secrets(filters={"label": LABEL_KERNEL_ID})
        ):
            labels = secret["Spec"].get("Labels") or {}
            if owner_is_gone(labels.get(LABEL_OWNER, "")):
                with contextlib.suppress(docker.errors.APIError):  # in use: its service's gc
                    self.api.remove_secret(secret["ID"])


def remote_address(url: str) -> str:
    """The host of a tcp://, ssh:// or http(s):// engine URL; '' for a local socket.

    An empty URL means the environment's DOCKER_HOST, as docker-py reads it.
    """
    parsed = urlparse(url or os.environ.get("DOCKER_HOST", ""))
    if parsed.scheme in ("tcp", "ssh", "http", "https"):
        return parsed.hostname or ""
    return ""


def _split_tag(reference: str) -> tuple[str, str | None]:
    """'debian:bookworm' -> ('debian', 'bookworm'); a registry port is not a tag."""
    if "@" in reference:
        return reference, None
    repository, _, tag = reference.rpartition(":")
    if not repository or "/" in tag:
        return reference, "latest"
    return repository, tag


# IPv4 and IPv6 bindings of one port are allocated apart and may differ; the addresses
# Jupyter connects to are IPv4.


def container_ports(network_settings: dict[str, Any]) -> dict[int, int]:
    """Container port -> its IPv4 host port, from a container's NetworkSettings."""
    published = {}
    for key, bindings in (network_settings.get("Ports") or {}).items():
        ipv4 = [binding for binding in bindings or [] if ":" not in binding.get("HostIp", "")]
        if ipv4:
            published[int(key.split("/")[0])] = int(ipv4[0]["HostPort"])
    return published


def task_ports(port_status: dict[str, Any]) -> dict[int, int]:
    """Container port -> published port, from a task's PortStatus: it lists no address,
    only the order, IPv4 first."""
    published: dict[int, int] = {}
    for entry in port_status.get("Ports") or []:
        published.setdefault(entry["TargetPort"], entry["PublishedPort"])
    return published


_NOT_A_MANAGER = 503  # the engine's answer to swarm calls when it manages no swarm
_CONFLICT = 409  # e.g. removing the last tag of an image a container uses
_NOT_FOUND = 404


def _unless_not_a_manager(listing: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """A swarm listing, or nothing on an engine that is not a swarm manager."""
    try:
        return listing()
    except docker.errors.APIError as error:
        if error.status_code != _NOT_A_MANAGER:
            raise
        return []


@contextlib.contextmanager
def _not_a_manager_is_a_start_failure() -> Iterator[None]:
    try:
        yield
    except docker.errors.APIError as error:
        if error.status_code != _NOT_A_MANAGER:
            raise
        raise KernelStartFailed(
            "this kernel runs on Docker Swarm, but its engine is not a swarm manager",
            "run `docker swarm init` (or point DOCKER_HOST at a manager)",
        ) from error


def _tarball(files: dict[str, bytes], user: str) -> bytes:
    """A tar of ``files`` (absolute paths) owned by ``user``, read-only for it."""
    uid, _, gid = user.partition(":")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, content in files.items():
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode = len(content), 0o400
            info.uid, info.gid = int(uid or 0), int(gid or uid or 0)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _bind_mount(bind: str) -> Mount:
    source, target, mode = bind.split(":")
    kind = "bind" if source.startswith("/") else "volume"
    return Mount(target, source, type=kind, read_only=mode == "ro")


def _bytes(size: str) -> int:
    """'2g' -> 2147483648, as docker's --memory reads it."""
    units = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    text = size.strip().lower()
    if text[-1:] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)
