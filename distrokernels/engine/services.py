"""Swarm: kernels as one-replica services, their tasks, nodes and secrets."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
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
from docker.utils import parse_bytes

from ..errors import KernelStartFailed
from ._base import NOT_A_MANAGER, EngineBase, engine_errors
from .containers import KernelContainer, KernelContainerSpec
from .labels import LABEL_KERNEL_ID


@dataclass(frozen=True)
class KernelServiceSpec:
    """A kernel as a one-replica swarm service: its container plus where it may run."""

    container: KernelContainerSpec
    constraints: list[str] = field(default_factory=list)


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
        """Whether the task is starting or running."""
        return self.state in _TASK_STARTING or self.state == "running"


_TASK_STARTING = {
    "new", "allocated", "pending", "assigned", "accepted", "preparing", "ready", "starting",
}  # fmt: skip


class ServicesMixin(EngineBase):
    """A swarm: kernel services, their tasks and nodes, and their secrets."""

    @engine_errors
    def swarm_node_id(self) -> str:
        """This engine's swarm node id; '' when it is not in a swarm."""
        swarm = self.api.info().get("Swarm") or {}
        return swarm.get("NodeID", "") if swarm.get("LocalNodeState") == "active" else ""

    @engine_errors
    def start_kernel_service(self, spec: KernelServiceSpec) -> str:
        """Create the one-replica, never-restarted service; returns its id.

        Files travel as swarm secrets: the swarm hands them only to the node that runs
        the task, and they never show in the service's spec or environment.
        """
        c = spec.container
        container_spec = ContainerSpec(
            c.image,
            command=c.command,
            env=c.environment,
            workdir=c.working_dir,
            user=c.user,
            labels=c.labels,
            mounts=_mounts(c),
            secrets=self._file_secrets(c),
            init=True,
            cap_add=c.cap_add or None,
            cap_drop=c.cap_drop or None,
            stop_grace_period=2_000_000_000,
        )
        template = TaskTemplate(
            container_spec,
            resources=service_resources(c),
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

    def _file_secrets(self, c: KernelContainerSpec) -> list[SecretReference]:
        """The container's files, each as a secret readable only by the kernel's user."""
        uid, _, gid = c.user.partition(":")
        secrets = []
        for path, content in c.files.items():
            name = f"{c.name}-{Path(path).name}"
            with _not_a_manager_is_a_start_failure():
                secret = self.api.create_secret(name, content, labels=c.labels)
            secrets.append(
                SecretReference(
                    secret["ID"], name, filename=path, uid=uid, gid=gid or uid, mode=0o400
                )
            )
        return secrets

    @engine_errors
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

    @engine_errors
    def node_address(self, node_id: str) -> str:
        """The address a swarm node advertises (what Jupyter connects to)."""
        try:
            return str(self.api.inspect_node(node_id)["Status"].get("Addr", ""))
        except docker.errors.NotFound:
            return ""

    @engine_errors
    def service_logs(self, service_id: str, tail: int = 20) -> str:
        """The last ``tail`` lines of a service's output ('' when it is gone)."""
        try:
            chunks = self.api.service_logs(
                service_id, stdout=True, stderr=True, tail=tail, follow=False
            )
            return b"".join(chunks).decode(errors="replace")
        except docker.errors.APIError:
            return ""

    @engine_errors
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

    @engine_errors
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

    @engine_errors
    def kernel_services(self) -> list[KernelContainer]:
        """Every kernel service distrokernels created on this swarm; none off a swarm."""
        return [
            KernelContainer(
                id=entry["ID"],
                name=entry["Spec"]["Name"],
                labels=entry["Spec"].get("Labels") or {},
                status="service",
            )
            for entry in self._swarm_listing(
                lambda: self.api.services(filters={"label": LABEL_KERNEL_ID})
            )
        ]

    def _swarm_listing(self, listing: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
        """A swarm listing; nothing on an engine that manages no swarm (Podman has no
        swarm API at all)."""
        if self.podman:
            return []
        try:
            return listing()
        except docker.errors.APIError as error:
            if error.status_code != NOT_A_MANAGER:
                raise
            return []

    def kernel_secrets(self) -> dict[str, dict[str, str]]:
        """The kernels' swarm secrets (connection files): id -> labels."""
        secrets = self._swarm_listing(lambda: self.api.secrets(filters={"label": LABEL_KERNEL_ID}))
        return {secret["ID"]: secret["Spec"].get("Labels") or {} for secret in secrets}

    def remove_secret(self, secret_id: str) -> None:
        """Remove a secret; one still in use stays (its service's removal takes it)."""
        with contextlib.suppress(docker.errors.APIError):
            self.api.remove_secret(secret_id)


def task_ports(port_status: dict[str, Any]) -> dict[int, int]:
    """Container port -> published port, from a task's PortStatus: it lists no address,
    only the order, IPv4 first."""
    published: dict[int, int] = {}
    for entry in port_status.get("Ports") or []:
        published.setdefault(entry["TargetPort"], entry["PublishedPort"])
    return published


@contextlib.contextmanager
def _not_a_manager_is_a_start_failure() -> Iterator[None]:
    try:
        yield
    except docker.errors.APIError as error:
        if error.status_code != NOT_A_MANAGER:
            raise
        raise KernelStartFailed(
            "this kernel runs on Docker Swarm, but its engine is not a swarm manager",
            "run `docker swarm init` (or point DOCKER_HOST at a manager)",
        ) from error


def _bind_mount(bind: str) -> Mount:
    source, target, mode = bind.split(":")
    kind = "bind" if source.startswith("/") else "volume"
    return Mount(target, source, type=kind, read_only=mode == "ro")


def _mounts(c: KernelContainerSpec) -> list[Mount]:
    """The container's binds and tmpfs folders as a service's mounts."""
    mounts = [_bind_mount(bind) for bind in c.binds]
    return mounts + [Mount(target, None, type="tmpfs", tmpfs_mode=0o1777) for target in c.tmpfs]


def service_resources(c: KernelContainerSpec) -> Resources:
    """The container's limits, reserved as well so the swarm places it where they fit."""
    nano_cpus = int(c.cpus * 1e9) if c.cpus else None
    memory = parse_bytes(c.memory.lower()) if c.memory else None
    resources = Resources(
        cpu_limit=nano_cpus, cpu_reservation=nano_cpus, mem_limit=memory, mem_reservation=memory
    )
    if c.pids_limit:
        resources.setdefault("Limits", {})["Pids"] = c.pids_limit
    return resources
