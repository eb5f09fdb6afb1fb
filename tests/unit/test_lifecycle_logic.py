"""Life-cycle decisions against a fake engine: retries, placement failures, exit codes.

The fake stands in only for what these decisions read; that kernels really start,
stop and report their state is proven against the real engine in tests/integration.
"""

import asyncio
import os
import signal
import subprocess

import pytest
from jupyter_client.manager import KernelManager

from distrokernels import backends, engines, provisioner
from distrokernels.backends import ContainerBackend, KernelState, SwarmBackend
from distrokernels.engine import ContainerState, KernelContainerSpec, KernelTask
from distrokernels.errors import EngineUnavailable

SPEC = KernelContainerSpec(
    image="img", command=["k"], user="1:1", working_dir="/w", environment={}, binds=[], labels={}
)


class FakeEngine:
    """Swarm tasks and container states from scripts; records what was asked."""

    def __init__(self, tasks=(), states=()) -> None:
        self.tasks = list(tasks)
        self.states = list(states)
        self.started = 0
        self.removed: list[str] = []
        self.signals: list[tuple[str, int]] = []

    def start_kernel_service(self, spec):
        self.started += 1
        return f"service-{self.started}"

    def remove_kernel_service(self, service_id):
        self.removed.append(service_id)

    def kernel_task(self, service_id):
        return self.tasks.pop(0) if len(self.tasks) > 1 else self.tasks[0]

    def node_address(self, node_id):
        return "10.9.9.9" if node_id == "worker" else ""

    def swarm_node_id(self):
        return "manager"

    def signal_container(self, container_id, signum):
        self.signals.append((container_id, signum))

    def stop_kernel_service(self, service_id):
        self.signals.append((service_id, 0))

    def start_kernel_container(self, spec):
        return "container-1"

    def container_state(self, container_id):
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        if isinstance(state, Exception):
            raise state
        return state


def task(state: str, error: str = "", node: str = "manager") -> KernelTask:
    return KernelTask(state, error, "ctr", node, {})


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr(backends.time, "sleep", lambda seconds: None)


def test_a_task_that_failed_for_a_passing_reason_gets_a_new_service():
    engine = FakeEngine([task("failed", "starting container failed: port busy"), task("running")])
    backend = SwarmBackend(engine, [])
    backend.start(SPEC)
    assert backend.state() == KernelState(True, None)  # retried, not reported dead
    assert engine.removed == ["service-1"] and backend.id == "service-2"
    assert backend.state() == KernelState(True, None)


def test_retries_end_and_the_failure_is_reported():
    engine = FakeEngine([task("failed", "starting container failed: no")])
    backend = SwarmBackend(engine, [])
    backend.start(SPEC)
    states = [backend.state() for _ in range(backends._RETRIES + 1)]
    assert all(state.running for state in states[:-1])
    assert states[-1] == KernelState(False, None, "task failed: starting container failed: no")
    assert engine.started == backends._RETRIES + 1


def test_a_task_no_node_can_take_fails_with_the_constraints_to_check():
    engine = FakeEngine([task("pending", "no suitable node (scheduling constraints ...)")])
    backend = SwarmBackend(engine, ["node.labels.gpu==1"])
    backend.start(SPEC)
    state = backend.state()
    assert not state.running and state.reason.startswith("cannot be placed: no suitable node")
    assert "['node.labels.gpu==1']" in state.hint


def test_a_missing_image_names_the_node_and_how_to_put_it_there():
    engine = FakeEngine([task("rejected", "No such image: sha256:abc", node="worker")])
    backend = SwarmBackend(engine, [])
    backend.start(SPEC)
    state = backend.state()
    assert "has no image on node 10.9.9.9" in state.reason
    assert "--push" in state.hint and "distrokernels copy" in state.hint


def test_an_interrupt_for_a_kernel_on_another_node_goes_as_a_message():
    engine = FakeEngine([task("running", node="worker")])
    backend = SwarmBackend(engine, [])
    backend.start(SPEC)
    assert backend.signal(signal.SIGINT) is False  # the provisioner sends interrupt_request
    assert backend.signal(signal.SIGTERM) is True  # scaled to zero instead
    assert engine.signals == [("service-1", 0)]


@pytest.mark.parametrize(
    ("state", "status"),
    [
        (ContainerState(running=True, exit_code=None), None),
        (ContainerState(running=False, exit_code=3), 3),
        (ContainerState(running=False, exit_code=0), 0),
        (None, 1),  # the container is gone
        (EngineUnavailable("engine down"), 1),  # its containers went with it
    ],
)
def test_poll_maps_the_container_state_to_an_exit_status(state, status):
    url = "fake://poll"
    engines._ENGINES[url] = FakeEngine(states=[state])
    try:
        kernel = provisioner.DistroProvisioner(docker_host=url, parent=KernelManager())
        backend = ContainerBackend(engines._ENGINES[url])
        backend.id = "container-1"
        kernel.engine_calls.backend = backend
        assert asyncio.run(kernel.poll()) == status
    finally:
        del engines._ENGINES[url]


def test_a_running_kernels_state_is_read_from_proc_once_its_init_is_known():
    """Jupyter polls ten times a second while shutting down: /proc, not the engine."""
    engine = FakeEngine(states=[ContainerState(running=True, exit_code=None, pid=os.getpid())])
    backend = ContainerBackend(engine)
    backend.id = "container-1"
    assert backend.state() == KernelState(True, None)
    engine.states = [RuntimeError("the engine must not be asked while the init runs")]
    assert backend.state() == KernelState(True, None)


def _backend_whose_init_exited() -> tuple[FakeEngine, ContainerBackend, ContainerState]:
    """A backend that saw its init run and then exit; the engine's lagging state."""
    child = subprocess.Popen(["sleep", "30"])
    engine = FakeEngine(states=[ContainerState(running=True, exit_code=None, pid=child.pid)])
    backend = ContainerBackend(engine)
    backend.id = "container-1"
    assert backend.state() == KernelState(True, None)
    child.kill()
    child.wait()
    return engine, backend, ContainerState(running=True, exit_code=None, pid=child.pid)


def test_an_exited_init_waits_for_the_engines_exit_code_unless_shutting_down():
    """Shutting down, Jupyter only asks whether the kernel still runs."""
    engine, backend, lagging = _backend_whose_init_exited()
    engine.states = [lagging, lagging, ContainerState(running=False, exit_code=137)]
    assert backend.state() == KernelState(False, 137)  # asked again until it knew
    engine.states = [lagging]
    assert backend.state(shutting_down=True) == KernelState(False, None)


def test_an_exited_init_is_an_exit_even_when_the_engine_never_reports_it():
    """Rootless Podman under load can keep saying "running" long after the init is gone:
    the kernel's client must not wait on it for ever."""
    engine, backend, lagging = _backend_whose_init_exited()
    engine.states = [lagging]  # for ever
    assert backend.state() == KernelState(False, None)


def test_an_init_first_seen_after_its_exit_is_not_taken_for_a_running_one():
    """A kernel that crashes before anything asked about it: the engine still says
    "running" with the init's pid, whose /proc entry is gone. That pid must not become
    the init to watch (its missing start time would read as running for ever); the
    engine's exit code comes with its next answer."""
    child = subprocess.Popen(["true"])
    child.wait()
    lagging = ContainerState(running=True, exit_code=None, pid=child.pid)
    engine = FakeEngine(states=[lagging, ContainerState(running=False, exit_code=3)])
    backend = ContainerBackend(engine)
    backend.id = "container-1"
    assert backend.state() == KernelState(True, None)  # the engine's word, for now
    assert backend.state() == KernelState(False, 3)
