"""Where a kernel's container runs: a container on one engine, or a swarm service
(slurm/backend.py: a Slurm job).

The provisioner decides everything about the container (a KernelContainerSpec) and
hands it to a backend, which starts it, reports on it, signals and removes it, all
through the one Engine. A backend lives as long as its kernel, restarts included, so
a restarted kernel comes back on the same node and ports and connected clients keep
working. A Kubernetes backend would be one more class here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

from . import owners
from .engine import Engine, KernelContainerSpec, KernelServiceSpec, KernelTask

_RETRIES = 20  # half a second apart
_EXIT_REPORT_WAIT = 1.0  # seconds the engine may take to report an exit the host saw
_EXIT_REPORT_POLL = 0.01
OUT_OF_MEMORY = "ran out of memory"


@dataclass(frozen=True)
class KernelState:
    """A kernel's state as its backend sees it."""

    running: bool
    exit_code: int | None
    reason: str = ""  # why it stopped or cannot start, when the engine says
    hint: str = ""  # what the user can do about it
    waiting: str = ""  # why it has not started yet, when that is normal (a queued job)
    final: bool = False  # a death no automatic restart would mend (a job's time limit)


@dataclass(frozen=True)
class Endpoint:
    """Where Jupyter reaches a TCP kernel: an address and the published ports."""

    address: str
    ports: dict[int, int]  # container port -> published port


class KernelBackend(ABC):
    """Where one kernel's container runs: started, watched, signalled and removed there."""

    def __init__(self) -> None:
        self.id: str | None = None  # the container's or the service's id
        self.published: dict[int, int] = {}  # kept for the restart

    def _keep_ports(self, spec: KernelContainerSpec) -> KernelContainerSpec:
        if not spec.ports or not self.published:
            return spec
        ports = {port: self.published.get(port, 0) for port in spec.ports}
        return dataclasses.replace(spec, ports=ports)

    @abstractmethod
    def start(self, spec: KernelContainerSpec) -> None:
        """Start the kernel's container (or service) from ``spec``."""

    @abstractmethod
    def state(self, shutting_down: bool = False) -> KernelState | None:
        """None when the kernel's container is gone. ``shutting_down``: Jupyter waits for
        the kernel to exit and asks only whether it runs, ten times a second; a backend
        may report the exit before its engine knows the exit code."""

    @abstractmethod
    def endpoint(self) -> Endpoint | None:
        """None until the engine has placed the kernel and published its ports."""

    @abstractmethod
    def signal(self, signum: int) -> bool:
        """Signal the kernel's init; False when its process cannot be reached."""

    @abstractmethod
    def logs(self, tail: int) -> str:
        """The last ``tail`` lines of the kernel's output."""

    @abstractmethod
    def remove(self, keep_allocation: bool = False) -> None:
        """Remove the kernel's container (or service), if there is one. A restart keeps
        what the next start reuses (``keep_allocation``: a Slurm job's allocation)."""


class ContainerBackend(KernelBackend):
    """A container on one engine: the local one, or a remote one reached at ``address``.

    On the local engine, once the container's init is known, "is it running?" is a look
    at /proc instead of a question to the engine (Jupyter asks ten times a second while
    a kernel shuts down, and the engine's answer costs a round trip and lags the exit),
    and a signal goes straight to the init's host pid, as the engine's kill would.
    """

    def __init__(self, engine: Engine, address: str = "") -> None:
        super().__init__()
        self.engine = engine
        self.address = address
        self._init: tuple[int, str] | None = None  # (host pid, start time) of its init

    @property
    def id(self) -> str | None:
        """The kernel's container; None before its start."""
        return self._id

    @id.setter
    def id(self, container_id: str | None) -> None:
        self._id, self._init = container_id, None

    def start(self, spec: KernelContainerSpec) -> None:
        """Create and start the container, on the ports a restart keeps."""
        self.id = self.engine.start_kernel_container(self._keep_ports(spec))

    def init_runs(self) -> bool | None:
        """Whether the container's init runs, from /proc; None until it is known."""
        if self._init is None:
            return None
        started = owners.process_start_time(self._init[0])
        return bool(started) and started == self._init[1]

    def _learn_init(self, pid: int) -> None:
        """Watch the init the engine reports from now on; not while its /proc entry is
        gone (an init that has exited already, or a pid this host cannot see), which
        would read as "still running" for ever: then the engine answers each time."""
        if started := owners.process_start_time(pid):
            self._init = (pid, started)

    def state(self, shutting_down: bool = False) -> KernelState | None:
        """Running (read from the init's /proc entry once known), or how it stopped."""
        assert self.id is not None
        init_exited = False
        if self._init is not None:
            if self.init_runs():
                return KernelState(True, None)
            if shutting_down:
                return KernelState(False, None)
            init_exited = True  # the engine reports it a moment later, with its exit code
        deadline = time.monotonic() + _EXIT_REPORT_WAIT
        while True:
            state = self.engine.container_state(self.id)
            if state is None:
                return None
            if init_exited and state.running and time.monotonic() > deadline:
                # The host saw its init exit (pid and start time): that is the exit. An
                # engine can lag far behind it (rootless Podman under load) or never
                # catch up; waiting for it would keep a dead kernel's client waiting.
                return KernelState(False, None)
            if not init_exited or not state.running:
                if state.running and state.pid and not self.address and self._init is None:
                    self._learn_init(state.pid)
                oom = not state.running and state.oom_killed
                return KernelState(state.running, state.exit_code, OUT_OF_MEMORY if oom else "")
            time.sleep(_EXIT_REPORT_POLL)

    def endpoint(self) -> Endpoint | None:
        """The engine's address and the container's published ports."""
        assert self.id is not None
        self.published = self.engine.published_ports(self.id)
        return Endpoint(self.address, self.published)

    def signal(self, signum: int) -> bool:
        """To the init's host pid when it is ours to signal (what the engine's kill does,
        without its round trip); else through the engine (root in the container).

        An interrupt goes to the kernel's process group, as jupyter_client's local
        interrupt does (a `!sleep` in the cell stops too): dockerd's init would forward
        it so (TINI_KILL_PROCESS_GROUP), Podman's (catatonit) only to the kernel.
        """
        assert self.id is not None
        if self._init is None and not self.address:
            self.state()  # learns the init's host pid: one inspect, instead of a kill call
        if self._init is not None and self.init_runs():
            with contextlib.suppress(PermissionError, ProcessLookupError):
                kernel = owners.first_child(self._init[0]) if signum == signal.SIGINT else 0
                if kernel:
                    os.killpg(kernel, signum)  # the kernel leads its process group
                else:
                    os.kill(self._init[0], signum)
                return True
        self.engine.signal_container(self.id, signum)
        return True

    def detach(self) -> str | None:
        """Forget the container (stopped) and return its id, for removal elsewhere."""
        container_id, self.id = self.id, None
        return container_id

    def logs(self, tail: int) -> str:
        """The last ``tail`` lines of the container's output."""
        return self.engine.container_logs(self.id, tail) if self.id else ""

    def remove(self, keep_allocation: bool = False) -> None:
        """Remove the container (stopping it first)."""
        if self.id is not None:
            self.engine.remove_container(self.id)
            self.id = None


class SwarmBackend(KernelBackend):
    """A one-replica service that the swarm never restarts by itself."""

    def __init__(self, engine: Engine, constraints: list[str]) -> None:
        super().__init__()
        self.engine = engine
        self.constraints = list(constraints)
        self.node_id = ""  # where the last task ran: a restart goes back there
        self._own_node = ""  # the node of the engine we talk to: signals reach only it
        self._spec: KernelServiceSpec | None = None
        self._retries = 0

    def start(self, spec: KernelContainerSpec) -> None:
        """Create the service, on the node and ports a restart keeps."""
        constraints = list(self.constraints)
        if self.node_id:
            constraints.append(f"node.id=={self.node_id}")
        self._spec = KernelServiceSpec(self._keep_ports(spec), constraints)
        self._retries = 0
        self.id = self.engine.start_kernel_service(self._spec)

    def _worth_another_try(self, task: KernelTask) -> bool:
        """The node could not start the container, for a reason that passes.

        A restart asks for its old ports, which the node may not have freed yet; and
        Engine 20.10 sometimes fails to mount a secret when many tasks start at once.
        Both fail the task with "starting container failed", and a new task works.
        """
        return (
            task.state in ("failed", "rejected")
            and "starting container failed" in task.error
            and self._spec is not None
            and self._retries < _RETRIES
        )

    def state(self, shutting_down: bool = False) -> KernelState | None:
        """The service task's state; why it cannot be placed, when the swarm says."""
        assert self.id is not None
        task = self.engine.kernel_task(self.id)
        if task is None:
            return None
        if self._worth_another_try(task):
            assert self._spec is not None
            self._retries += 1
            self.engine.remove_kernel_service(self.id)
            time.sleep(0.5)
            self.id = self.engine.start_kernel_service(self._spec)
            return KernelState(True, None)
        if task.state == "pending" and task.error:
            # The scheduler found no node ("no suitable node ..."): it would wait forever.
            return KernelState(
                False,
                None,
                f"cannot be placed: {task.error}",
                f"check its constraints {self.constraints} against `docker node ls` and the "
                "nodes' labels, or reinstall it without --constraint",
            )
        if task.running:
            return KernelState(True, None)
        if "No such image" in task.error:
            return KernelState(
                False,
                None,
                f"has no image on node {self.engine.node_address(task.node_id) or task.node_id}"
                f": {task.error}",
                "put the image on every node: `distrokernels install ... --push "
                "REGISTRY/REPOSITORY`, or copy it there: `distrokernels copy NAME --to "
                "tcp://NODE:PORT`",
            )
        reason = f"task {task.state}: {task.error}" if task.error else ""
        return KernelState(False, task.exit_code, reason)

    def endpoint(self) -> Endpoint | None:
        """The task's node address and published ports, once it runs."""
        assert self.id is not None
        task = self.engine.kernel_task(self.id)
        if task is None or task.state != "running" or not task.ports:
            return None
        self.node_id = task.node_id
        self.published = task.ports
        return Endpoint(self.engine.node_address(task.node_id), task.ports)

    def signal(self, signum: int) -> bool:
        """Through the task's container when it runs on this engine's node.

        Another node's engine is not reachable from here: an interrupt then goes as a
        message, and terminating means scaling the service to zero (the swarm stops the
        task, SIGKILL after a 2 s grace period, and reports when it has stopped).
        """
        assert self.id is not None
        task = self.engine.kernel_task(self.id)
        if task is None or not task.container_id:
            return True
        self._own_node = self._own_node or self.engine.swarm_node_id()
        if task.node_id == self._own_node:
            self.engine.signal_container(task.container_id, signum)
            return True
        if signum == signal.SIGINT:
            return False
        self.engine.stop_kernel_service(self.id)
        return True

    def logs(self, tail: int) -> str:
        """The last ``tail`` lines of the service's output."""
        return self.engine.service_logs(self.id, tail) if self.id else ""

    def remove(self, keep_allocation: bool = False) -> None:
        """Remove the service (and with it its task and secrets)."""
        if self.id is not None:
            self.engine.remove_kernel_service(self.id)
            self.id = None
