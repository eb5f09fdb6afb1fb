"""DistroProvisioner: each kernel runs in its own container, and feels local.

The provisioner is jupyter_client's Popen-like life cycle of one kernel, and only that;
each part of a start is a module of its own:

- config.py: the kernelspec's settings (KernelConfig, which this class inherits), so
  jupyter_client checks a hand-edited kernel.json as it builds the provisioner;
- transport.py: IPC in the kernel's private runtime folder (no port opened), or TCP
  with CurveZMQ on a swarm or a remote engine; the connection files, readiness;
- kernel_container.py: what the container is, decided as data from the config and the
  start's facts (the user, the folder, an allow-listed environment, the guarded mounts);
- warm_start.py and pool.py: in a Jupyter server, a start claims a warm container of the
  same kind and falls back to a cold start; either way the kernel gets the same key,
  folder and environment;
- kernel_engine.py, backends.py: the engine calls, off the event loop, on a container
  or a swarm service; readiness.py waits for the start and says why one failed.

The container runs under an init process, so signals (interrupt, terminate) behave as
they do locally.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import threading
from collections.abc import Awaitable, Callable
from typing import Any, cast

from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.manager import KernelManager
from jupyter_client.multikernelmanager import MultiKernelManager
from jupyter_client.provisioning.provisioner_base import KernelProvisionerBase

from . import connection, guards, owners, runtime, transport, warm_start, watchdog
from .backends import ContainerBackend, KernelBackend
from .config import KernelConfig, validate_config
from .engine import Engine, KernelContainerSpec
from .engine.podman import LIMIT_CONTROLLERS
from .engines import collect_orphans_in_background, remove_in_background
from .errors import EngineUnavailable, ImageNotFound, KernelStartFailed
from .ids import short_id
from .kernel_container import KernelStart, container_spec
from .kernel_engine import KernelEngine
from .mounts import exposes_engine
from .pool import POOL, Template, WarmContainer
from .readiness import Start, why_stopped
from .runtime import KERNEL_CONNECTION_FILE

__all__ = ["DistroProvisioner", "validate_config"]

_POLL_INTERVAL = 0.005  # a stat() of five paths: cheap enough to look often
# Seconds one poll watches the init during a shutdown: jupyter_client sleeps 0.1 s after
# each poll that finds the kernel running, so a short watch would miss exits in that gap.
_EXIT_WATCH = 1.0
_WAIT_INTERVAL = 0.05
_WARNED_LIMITS: set[tuple[str, str]] = set()  # (engine, kernelspec) told of ignored limits


def _ignored_limits(engine: Engine, config: KernelConfig, kernelspec: str) -> str:
    """Rootless Podman runs a kernel without the limits it cannot apply: what it ignores,
    said once per engine, kernelspec and process ('' otherwise)."""
    limits = {name: getattr(config, name) for name in LIMIT_CONTROLLERS}
    warning = engine.podman.limits_warning(limits) if engine.podman else ""
    if not warning or (config.engine_url, kernelspec) in _WARNED_LIMITS:
        return ""
    _WARNED_LIMITS.add((config.engine_url, kernelspec))
    return warning


class DistroProvisioner(KernelConfig, KernelProvisionerBase):  # type: ignore[metaclass]
    """Runs the kernel in a container of a distrokernels image."""

    runtime_dir: str | None = None
    death: str = ""  # why the kernel died, when the engine says (an out-of-memory kill)
    _engine: KernelEngine | None = None
    _source: warm_start.WarmSource | None = None  # the pool this start draws from, if any
    _template: Template | None = None  # this kernel's kind of warm container, if any
    _warm: WarmContainer | None = None  # claimed in pre_launch, started in launch_kernel
    _slot_link: str | None = None  # the claimed warm slot's name, linked to the kernel's folder
    _removals: tuple[threading.Thread, ...] = ()  # a restart's removals, outside a server
    host_guard: guards.HostGuard | None = None  # this start's: what no kernel may write

    @property
    def km(self) -> KernelManager:
        """The kernel manager this provisioner works for: jupyter_client makes it the parent."""
        assert self.parent is not None, "a provisioner runs under a KernelManager"
        return cast(KernelManager, self.parent)

    @property
    def engine_calls(self) -> KernelEngine:
        """This kernel's engine and backend, kept across its restarts."""
        if self._engine is None:
            self._engine = KernelEngine(self)
        return self._engine

    @property
    def container_id(self) -> str | None:
        """The kernel's container (or, on a swarm, its service)."""
        return self.engine_calls.id

    @property
    def in_server(self) -> bool:
        """Started by a long-lived MultiKernelManager (a Jupyter server), not by a process
        that runs one kernel (the launcher, `distrokernels run`, nbclient)."""
        return isinstance(self.km.parent, MultiKernelManager)

    @property
    def has_process(self) -> bool:
        """Whether a container was started (jupyter_client's ``has_kernel``)."""
        return self.container_id is not None

    # --- launch ---------------------------------------------------------------------

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        """Decide this start before anything runs: the runtime folder (kept on restart),
        the transport and its connection file, a warm container claimed if one serves,
        and the in-container command; returns jupyter_client's launch arguments."""
        km = self.km
        policy = str(
            kwargs.pop("transport_encryption", None)
            or getattr(km, "transport_encryption", "disabled")
        ).lower()
        extra_arguments = kwargs.pop("extra_arguments", [])
        env = kwargs.get("env", os.environ)
        self.death = ""
        # What no kernel may write, read once per start (the warm template's and the cold
        # container's binds both need it); a remote engine's mounts are that host's.
        self.host_guard = (
            None if self.on_remote_engine else guards.current(self._launcher_interpreter)
        )
        self._source, self._template = warm_start.choose(
            self,
            km.kernel_name,
            self.container_command(extra_arguments),
            kwargs.get("cwd") or os.getcwd(),
            env,
            getattr(km.parent, "root_dir", "") if self.in_server else None,
            self.host_guard,
        )
        self._warm = self._source.claim(self._template) if self._source and self._template else None
        self.runtime_dir = self.runtime_dir or runtime.kernel_folder_for(km.connection_file)
        ipykernel = self.kernel_spec.metadata.get("distrokernels", {}).get("ipykernel", "")
        encrypt = transport.encrypts(ipykernel, self.uses_tcp, self.plaintext_tcp, policy)
        transport.set_up(km, self.runtime_dir, encrypt, self.uses_tcp)
        if self.backend == "slurm":  # its own connection file, which it rewrites with its ports
            cmd = self.container_command(extra_arguments, connection.DELIVERED_FILE)
        elif self.uses_tcp:
            cmd = connection.wrap_command(
                self.container_command(extra_arguments, km.connection_file), km.connection_file
            )
        else:
            session = kwargs.get("env", {}).get("JPY_SESSION_NAME", "")
            self.connection_info = transport.write_ipc_files(km, session)
            cmd = self.container_command(extra_arguments, KERNEL_CONNECTION_FILE)
        # Gone with this process, however it goes (a killed server, a console that exits
        # without shutting its kernel down): this process's watchdog removes its kernels.
        watchdog.for_this_process().watch(self.sweep_url)
        collect_orphans_in_background(self.sweep_url, self.log)
        return await super().pre_launch(cmd=cmd, **kwargs)

    def container_command(
        self, extra_arguments: list[str], connection_file: str = KERNEL_CONNECTION_FILE
    ) -> list[str]:
        """The in-container command, whatever kernel.json's argv (the host launcher) says."""
        template = list(self.container_argv or self.kernel_spec.argv) + list(extra_arguments)
        return [arg.replace("{connection_file}", connection_file) for arg in template]

    @property
    def _launcher_interpreter(self) -> str:
        """kernel.json's argv[0]: the host Python that clients without provisioners run."""
        return self.kernel_spec.argv[0] if self.kernel_spec and self.kernel_spec.argv else ""

    def container_spec(self, cmd: list[str], env: dict[str, str], cwd: str) -> KernelContainerSpec:
        """This start's container: the folder checked here, the rest decided by
        kernel_container.container_spec from this config and the start's facts."""
        return container_spec(self, _start_facts(self, cmd, env, cwd))

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        """Start the container (or hand the start to the claimed warm one) and return
        once the kernel is ready, with Jupyter's side of the connection."""
        with POOL.start_in_flight():
            await self._launch(cmd, kwargs.get("env", {}), kwargs.get("cwd") or os.getcwd())
        if self._source is not None and self._template is not None:
            self._source.refill(self._template)
        return self.connection_info

    async def _launch(self, cmd: list[str], env: dict[str, str], cwd: str) -> None:
        try:
            spec = self.container_spec(cmd, env, cwd)
        except BaseException:
            self._drop_claim()
            raise
        if self._warm is not None and await self._start_warm(spec):
            await self._ready(transport.sockets_exist(self.km), _POLL_INTERVAL)
            return
        if not self.uses_tcp:
            assert self.runtime_dir is not None
            transport.fresh_io(self.runtime_dir, self.connection_info)
        try:
            await self._start_cold(spec)
        except BaseException as error:
            self._remove_runtime_dir()
            if not isinstance(error, ImageNotFound):
                raise
            raise KernelStartFailed(
                f"the image of this kernel is gone "
                f"({short_id(self.image_reference)}, {self.image})",
                self.reinstall_hint,
            ) from error
        if self.uses_tcp:
            readiness = transport.TcpReadiness(self.km, self.engine_calls)
            await self._ready(readiness, interval=0.05)
            self.connection_info = readiness.info
        else:
            await self._ready(transport.sockets_exist(self.km), _POLL_INTERVAL)

    async def _start_cold(self, spec: KernelContainerSpec) -> None:
        if self.on_remote_engine:
            volume, owner = self.work_volume_name, spec.user
            await self.engine_calls.call(
                lambda engine: engine.ensure_volume(volume, spec.image, owner)
            )

        def start(backend: KernelBackend) -> None:
            backend.start(spec)
            if not isinstance(backend, ContainerBackend):
                return
            warning = _ignored_limits(backend.engine, self, self.km.kernel_name)
            if warning:
                self.log.warning("distrokernels: %s: %s", self.km.kernel_name, warning)

        await self.engine_calls.on_backend(start)

    async def _ready(self, ready: Callable[[], Awaitable[bool]], interval: float) -> None:
        """Wait for the start; a failed one leaves no runtime folder."""
        start = Start(self.engine_calls, self.km.kernel_name, self.reinstall_hint, self.memory)
        try:
            await start.wait(ready, interval, self.launch_timeout, self.queue_timeout, self.log)
        except KernelStartFailed:
            self._remove_runtime_dir()
            raise
        except BaseException:  # a client that gave up (cancelled): nothing may hold a node
            with contextlib.suppress(Exception):
                await self.engine_calls.on_backend(lambda backend: backend.remove())
            self._remove_runtime_dir()
            raise

    async def _start_warm(self, spec: KernelContainerSpec) -> bool:
        """Hand this start to the claimed warm container; False: it is gone, start cold."""
        warm, self._warm = self._warm, None
        assert warm is not None and self.runtime_dir is not None
        handed = warm_start.hand_over(
            warm, self.engine_url, self.runtime_dir, self.connection_info, spec, self.log
        )
        if handed:
            await self.engine_calls.adopt(warm.id)
            self._slot_link = warm.slot
            self.log.info(
                "distrokernels: %s started warm (%s)", self.km.kernel_name, short_id(warm.id)
            )
        return handed

    def _drop_claim(self) -> None:
        """A start that failed before its claim was handed over: the container goes."""
        if self._warm is not None:
            POOL.discard(self.engine_url, [self._warm])
            self._warm = None

    # --- life cycle -----------------------------------------------------------------

    async def poll(self) -> int | None:
        """None while the kernel runs, else its exit status (1: its container is gone).
        While jupyter_client shuts the kernel down, the exit is watched between polls."""
        if self.container_id is None:
            return 0
        shutting_down = self.km.shutting_down
        if shutting_down:
            await self.engine_calls.watch_exit(_EXIT_WATCH)
        try:
            state = await self.engine_calls.state(shutting_down)
        except EngineUnavailable:
            return 1  # the engine went away: its containers did too
        if state is None:
            return 1
        if state.running:
            return None
        if state.reason and not shutting_down and not self.death:
            what, hint = why_stopped(state, self.memory)
            self.death = f"the kernel {self.km.kernel_name!r} {what}"
            self.log.error("distrokernels: %s: %s", self.death, hint)
            if state.final:
                _no_automatic_restart(self.km)
        if state.exit_code is None:  # shutting down: gone before its engine said how
            return 0 if shutting_down else 1
        return state.exit_code

    async def wait(self) -> int | None:
        """Wait for the kernel to exit; its exit status."""
        while (status := await self.poll()) is None:
            await asyncio.sleep(_WAIT_INTERVAL)
        return status

    async def send_signal(self, signum: int) -> None:
        """Signal the kernel's process group in its container (SIGINT interrupts a cell);
        where no engine here can reach the process, an interrupt goes as a message."""
        if self.container_id is None:
            return
        if not await self.engine_calls.on_backend(lambda backend: backend.signal(signum)):
            transport.send_interrupt_request(self.km)

    async def kill(self, restart: bool = False) -> None:
        """SIGKILL the kernel (jupyter_client's last resort on shutdown)."""
        await self.send_signal(signal.SIGKILL)

    async def terminate(self, restart: bool = False) -> None:
        """SIGTERM the kernel."""
        await self.send_signal(signal.SIGTERM)

    async def cleanup(self, restart: bool = False) -> None:
        """Remove the container; keep the runtime folder only for a restart."""
        lives_on = self.in_server or warm_start.in_agent()
        container = self.engine_calls.local_container
        if container is not None and (restart or lives_on):
            # The kernel has stopped: a process that lives on (a server, the agent, one
            # that restarts the kernel) removes its container off the user's path; it
            # waits for the removal at exit, and its watchdog removes it if it is killed.
            container_id = container.detach()
            if container_id is not None:
                removal = remove_in_background(self.engine_url, container_id, self.log)
                if not lives_on:  # its final shutdown waits for it
                    self._removals = (*self._removals, removal)
        elif self.container_id is not None:
            # EngineUnavailable: nothing to remove, the engine's restart took the container.
            with contextlib.suppress(EngineUnavailable):
                await self.engine_calls.on_backend(lambda backend: backend.remove(restart))
        if not restart and not lives_on:  # one kernel's process: none of its containers stays
            removals, self._removals = self._removals, ()
            for removal in removals:
                await asyncio.to_thread(removal.join)
        if self._slot_link is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._slot_link)
            self._slot_link = None
        if not restart:
            self._remove_runtime_dir()

    def _remove_runtime_dir(self) -> None:
        if self.runtime_dir:
            runtime.remove_tree(self.runtime_dir)
            self.runtime_dir = None

    # --- persistence ------------------------------------------------------------------

    async def get_provisioner_info(self) -> dict[str, Any]:
        """What a server saves to reconnect to the kernel: its container and folder."""
        info = await super().get_provisioner_info()
        info.update(container_id=self.container_id, runtime_dir=self.runtime_dir)
        return info

    async def load_provisioner_info(self, provisioner_info: dict[str, Any]) -> None:
        """Reconnect to a kernel from what ``get_provisioner_info`` saved."""
        await super().load_provisioner_info(provisioner_info)
        await self.engine_calls.adopt(provisioner_info.get("container_id"))
        self.runtime_dir = provisioner_info.get("runtime_dir")


def _start_facts(
    provisioner: DistroProvisioner, cmd: list[str], env: dict[str, str], cwd: str
) -> KernelStart:
    """The facts of this start, the working folder checked (it must be one, and no
    engine's socket may be in it)."""
    if not os.path.isdir(cwd):
        raise KernelStartFailed(f"the working folder {cwd} does not exist", "create it")
    if exposes_engine(cwd):
        raise KernelStartFailed(
            f"the working folder {cwd} holds a container engine's socket",
            "open the notebook from a folder of your own",
        )
    assert provisioner.runtime_dir is not None
    km = provisioner.km
    return KernelStart(
        kernel_id=provisioner.kernel_id,
        kernelspec=km.kernel_name,
        command=cmd,
        environment=env,
        cwd=cwd,
        uid=os.getuid(),
        gid=os.getgid(),
        owner=owners.current_owner(),
        runtime_dir=provisioner.runtime_dir,
        kernelspec_env=list(provisioner.kernel_spec.env) if provisioner.kernel_spec else [],
        tcp_connection_file=(
            connection.kernel_side(km.get_connection_info()) if provisioner.uses_tcp else None
        ),
        name_suffix=secrets.token_hex(2),
        guard=provisioner.host_guard,
    )


def _no_automatic_restart(km: KernelManager) -> None:
    """A death no restart would mend by itself (a Slurm job's time limit): the restarter
    reports the kernel dead at once instead of resubmitting the job. jupyter_client has
    no public handle on a manager's restarter."""
    restarter = getattr(km, "_restarter", None)
    if restarter is not None:
        restarter.restart_limit = 0
