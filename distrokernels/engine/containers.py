"""Kernel containers: create and start them as a KernelContainerSpec says, follow,
signal and remove them; and throwaway containers that run a script in an image."""

from __future__ import annotations

import io
import tarfile
import time
from dataclasses import dataclass, field
from typing import Any

import docker
import docker.errors

from ..errors import ImageNotFound
from ._base import CONFLICT, NOT_FOUND, EngineBase, engine_errors
from .labels import LABEL_KERNEL_ID, LABEL_PROBE
from .podman import podman_tmpfs

_REMOVE_ATTEMPTS = 5  # Podman's "container state improper" while a container stops
_REMOVE_RETRY = 0.2  # seconds
_MAX_LINKS = 8  # links followed when reading a file of an image
# Go's os.FileMode bits of a directory, link, pipe, socket or device, in the archive API's stat.
_NOT_REGULAR = (1 << 31) | (1 << 27) | (1 << 25) | (1 << 24) | (1 << 26) | (1 << 21)


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
    # The machine uname reports, for a 32-bit userland the host runs natively ('i686'):
    # the command runs under the image's setarch. '' leaves the host's.
    personality: str = ""


@dataclass(frozen=True)
class ContainerState:
    """What the engine reports about a container."""

    running: bool
    exit_code: int | None
    pid: int = 0  # the container's init, as the engine's host sees it; 0 when stopped
    oom_killed: bool = False  # the engine saw its memory limit kill a process of it


@dataclass(frozen=True)
class KernelContainer:
    """A kernel container or service the engine lists, with its labels."""

    id: str
    name: str
    labels: dict[str, str]
    status: str


class ContainersMixin(EngineBase):
    """Kernel containers, and throwaway containers that run a script."""

    @engine_errors
    def start_kernel_container(self, spec: KernelContainerSpec) -> str:
        """Create and start the container; returns its id."""
        keep_id = self.keeps_ids and spec.user.partition(":")[0] not in ("0", "")
        tmpfs = spec.tmpfs
        if self.podman:
            tmpfs = {path: podman_tmpfs(options) for path, options in tmpfs.items()}
        host_config = self.api.create_host_config(
            binds=spec.binds,
            init=True,
            network_mode=spec.network_mode,
            tmpfs=tmpfs or None,
            mem_limit=spec.memory,
            nano_cpus=int(spec.cpus * 1e9) if spec.cpus else None,
            pids_limit=spec.pids_limit,
            cap_drop=spec.cap_drop or None,
            cap_add=spec.cap_add or None,
            security_opt=spec.security_opt or None,
            port_bindings={port: published or None for port, published in spec.ports.items()}
            or None,
        )
        if keep_id:  # the user's uid is itself inside (docker-py refuses this userns_mode)
            host_config["UsernsMode"] = "keep-id"
        try:
            container = self.api.create_container(
                spec.image,
                command=["setarch", spec.personality, *spec.command]
                if spec.personality
                else spec.command,
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

    @engine_errors
    def published_ports(self, container_id: str) -> dict[int, int]:
        """Container port -> the host port the engine published it on."""
        return container_ports(self.api.inspect_container(container_id)["NetworkSettings"])

    @engine_errors
    def container_state(self, container_id: str) -> ContainerState | None:
        """Running or not, and the exit code; None when the container is gone."""
        try:
            state = self.api.inspect_container(container_id)["State"]
        except docker.errors.NotFound:
            return None
        running = state.get("Running", False) or state.get("Status") in ("created", "restarting")
        return ContainerState(
            running=running,
            exit_code=None if running else state["ExitCode"],
            pid=int(state.get("Pid") or 0),
            oom_killed=bool(state.get("OOMKilled")),
        )

    @engine_errors
    def signal_container(self, container_id: str, signum: int) -> bool:
        """Send a signal to the container's init; False if it is not running."""
        try:
            self.api.kill(container_id, signal=int(signum))
        except docker.errors.APIError as error:
            if error.status_code in (NOT_FOUND, CONFLICT):
                return False
            # Podman answers 500 ("container state improper") for a stopped container.
            state = self.container_state(container_id)
            if state is None or not state.running:
                return False
            raise
        return True

    @engine_errors
    def container_memory(self, container_id: str) -> int | None:
        """Bytes the container uses, as `docker stats` counts them (page cache that can
        be dropped excluded); None when it is gone or the engine cannot tell."""
        try:
            stats = self.api.stats(container_id, stream=False, one_shot=True)
        except docker.errors.NotFound:
            return None
        memory = stats.get("memory_stats") or {}
        if "usage" not in memory or (self.podman and "memory" not in self.podman.controllers):
            # Without its own memory cgroup a rootless container reports the whole host's.
            return None
        details = memory.get("stats") or {}
        inactive = details.get("total_inactive_file", details.get("inactive_file", 0))
        return int(memory["usage"]) - int(inactive)

    @engine_errors
    def container_logs(self, container_id: str, tail: int = 20) -> str:
        """The last ``tail`` lines of a container's output ('' when it is gone)."""
        try:
            logs: bytes = self.api.logs(container_id, tail=tail)
            return logs.decode(errors="replace")
        except docker.errors.NotFound:
            return ""

    @engine_errors
    def remove_container(self, container_id: str) -> None:
        """Remove a container, running or not; a missing one is no error. Podman refuses
        (500, "container state improper") one that is stopping at that moment: asked
        again, it removes it."""
        for attempt in range(_REMOVE_ATTEMPTS):
            try:
                self.api.remove_container(container_id, force=True)
                return
            except docker.errors.NotFound:
                return
            except docker.errors.APIError as error:
                if error.status_code == CONFLICT:  # removal already in progress
                    return
                stopping = "container state improper" in str(error.explanation or "")
                if not stopping or attempt == _REMOVE_ATTEMPTS - 1:
                    raise
                time.sleep(_REMOVE_RETRY)

    @engine_errors
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

    @engine_errors
    def container_images(self) -> set[str]:
        """The image ids of every container, running or not."""
        return {str(entry["ImageID"]) for entry in self.api.containers(all=True)}

    @engine_errors
    def containers_using(self, image_id: str) -> int:
        """Containers, running or not, made from the image or from an image built on it."""
        return len(self.api.containers(all=True, filters={"ancestor": image_id}))

    @engine_errors
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

    @engine_errors
    def read_image_files(
        self, image: str, paths: list[str], limit: int
    ) -> dict[str, tuple[str, bytes]]:
        """Read regular files of an image without running anything in it.

        Returns each found path -> (the path its links resolve to, its bytes). The engine
        resolves links inside the image's own tree, as its archive API does; a missing
        path, one that is not a regular file and one over ``limit`` bytes are left out.
        """
        container = self.api.create_container(
            image,
            command=["/distrokernels-never-runs"],
            entrypoint=[],
            network_disabled=True,
            labels={LABEL_PROBE: "1"},
        )
        try:
            found = {}
            for path in paths:
                read = self._image_file(container, path, limit)
                if read is not None:
                    found[path] = read
            return found
        finally:
            self.api.remove_container(container, force=True)

    def _image_file(self, container: Any, path: str, limit: int) -> tuple[str, bytes] | None:
        for _ in range(_MAX_LINKS):
            try:
                stream, stat = self.api.get_archive(container, path)
            except docker.errors.NotFound:
                return None
            target = stat.get("linkTarget") or ""
            if target and target != path:  # a link: its resolved path, in the image
                stream.close()
                path = target
                continue
            if int(stat.get("mode", 0)) & _NOT_REGULAR or int(stat.get("size", 0)) > limit:
                stream.close()
                return None
            with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
                member = next((m for m in archive.getmembers() if m.isreg()), None)
                handle = archive.extractfile(member) if member is not None else None
                return (path, handle.read(limit)) if handle is not None else None
        return None


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
