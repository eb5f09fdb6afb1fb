"""DistroProvisioner: each kernel runs in its own container, and feels local.

On the local engine the kernel talks to Jupyter over IPC sockets in a private 0700
folder that is bind-mounted at the same path, so no port is opened on any interface.
On a swarm or a remote engine it talks TCP, encrypted with CurveZMQ (connection.py).
The container runs as the user, in the notebook's folder, with only an allow-listed
environment, under an init process so signals (interrupt, terminate) behave as they
do locally. What the container is, is decided as data in kernel_container.py; where it
runs is the backend's business (backends.py); the engine connections it shares with the
process's other kernels, and the orphan sweep, are engines.py's. The kernelspec's config
is checked by the traits below, so a hand-edited kernel.json meets the CLI's checks.
In a Jupyter server, a start first asks pool.py for a warm container of the same kind,
and falls back to a cold start; either way the kernel gets the same key, folder and
environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import math
import os
import re
import secrets
import signal
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar, cast

import zmq
from docker.utils import parse_bytes
from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.manager import KernelManager
from jupyter_client.multikernelmanager import MultiKernelManager
from jupyter_client.provisioning.provisioner_base import KernelProvisionerBase
from traitlets import Bool, CaselessStrEnum, Float, Int, List, TraitError, Unicode, validate

from . import connection, guards, owners, pool, runtime
from .backends import OUT_OF_MEMORY, ContainerBackend, KernelBackend, KernelState, SwarmBackend
from .engine import ENGINES, Engine, KernelContainerSpec, engine_url, remote_address
from .engine.podman import LIMIT_CONTROLLERS
from .engines import collect_orphans_in_background, remove_in_background, shared_engine
from .errors import EngineUnavailable, ImageNotFound, InvalidInput, KernelStartFailed
from .kernel_container import (
    DEFAULT_PIDS_LIMIT,
    KernelStart,
    container_spec,
    exposes_engine,
    parse_mount,
)
from .pool import POOL, Template, WarmContainer
from .runtime import KERNEL_CONNECTION_FILE, UnsafePath, runtime_root

_T = TypeVar("_T")

_POLL_INTERVAL = 0.005  # a stat() of five paths: cheap enough to look often
_FIRST_HEARTBEAT_WAIT = 0.2  # seconds; grows while a TCP kernel does not answer
_ENGINE_CHECK_INTERVAL = 0.2  # seconds between asking the engine whether a start failed
_EXIT_WATCH = 0.08  # seconds of jupyter_client's 0.1 between polls during a shutdown
_EXIT_WATCH_INTERVAL = 0.005
MIN_PIDS_LIMIT = 16  # fewer leaves no room for a kernel and its helpers
MAX_PIDS_LIMIT = 4_194_304  # the Linux kernel's PID_MAX_LIMIT: no more can ever run
MIN_MEMORY = 6 * 2**20  # dockerd refuses less ("Minimum memory limit allowed is 6MB")
MAX_MEMORY = 2**63 - 1  # the engine keeps bytes in an int64
MAX_POOL_SIZE = 64  # warm containers per kernelspec: each holds tens of MB
_WARNED_LIMITS: set[tuple[str, str]] = set()  # (engine, kernelspec) told of ignored limits
_CAPABILITY = re.compile(r"[A-Z_]{2,32}")
_CONSTRAINT = re.compile(r"(node|engine)\.[A-Za-z0-9_.-]+ *(==|!=) *[^\s]+")
_VOLUME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")  # Docker's volume names
_MEMORY = re.compile(r"[0-9]+(\.[0-9]+)?[bkmg]?", re.IGNORECASE)


def validate_config(config: Mapping[str, Any]) -> None:
    """Refuse a kernelspec config as every kernel start would: the traits' own checks."""
    try:
        DistroProvisioner(**config)
    except TraitError as error:
        raise InvalidInput(str(error), "fix that value in kernel.json, or reinstall") from error


class DistroProvisioner(KernelProvisionerBase):
    """Runs the kernel in a container of a distrokernels image."""

    image = Unicode(help="The kernel image (tag).").tag(config=True)
    image_id = Unicode("", help="The exact image id the kernelspec was built with.").tag(
        config=True
    )
    source = Unicode("", help="The base image the kernel was built from.").tag(config=True)
    network_mode = CaselessStrEnum(
        ["bridge", "none", "host"], default_value="bridge", help="The container's network."
    ).tag(config=True)
    mounts = List(Unicode(), help="Extra mounts, HOST[:CONTAINER][:ro|rw].").tag(config=True)
    memory = Unicode(None, allow_none=True, help="Memory limit, e.g. '2g'.").tag(config=True)
    cpus = Float(None, allow_none=True, help="CPU limit, e.g. 1.5.").tag(config=True)
    pids_limit = Int(DEFAULT_PIDS_LIMIT, help="Most processes the kernel may run at once.").tag(
        config=True
    )
    launch_timeout = Float(60.0, help="Seconds the kernel may take to open its sockets.").tag(
        config=True
    )
    env_allowlist = List(
        Unicode(),
        default_value=["LANG", "LANGUAGE", "LC_*", "TZ", "TERM"],
        help="Host variables (glob patterns) that pass into the kernel.",
    ).tag(config=True)
    run_as_root = Bool(
        False,
        help="Removed: a kernel always runs as the user who starts it (kept so that an old "
        "kernel.json that sets it gets a one-line error).",
    ).tag(config=True)
    cap_add = List(Unicode(), help="Capabilities to add back (all are dropped).").tag(config=True)
    no_new_privileges = Bool(True, help="Forbid setuid and file capabilities.").tag(config=True)

    engine = CaselessStrEnum(
        list(ENGINES),
        default_value="docker",
        help="dockerd, or the user's rootless Podman (its socket in XDG_RUNTIME_DIR, its "
        "service started when it does not answer).",
    ).tag(config=True)
    docker_host = Unicode(
        "", help="The engine to run on (a DOCKER_HOST URL); default: the environment's."
    ).tag(config=True)
    backend = CaselessStrEnum(
        ["docker", "swarm"],
        default_value="docker",
        help="A container on the engine, or a one-replica service on its swarm.",
    ).tag(config=True)
    constraints = List(Unicode(), help="Swarm placement constraints, e.g. node.labels.gpu==1.").tag(
        config=True
    )
    plaintext_tcp = Bool(
        False, help="Allow unencrypted TCP for a kernel whose ipykernel cannot use CurveZMQ."
    ).tag(config=True)
    pushed_image = Unicode(
        "", help="The image in a registry (repository@digest) that swarm nodes pull."
    ).tag(config=True)
    work_volume = Unicode(
        "",
        help="On a remote engine: the named volume that is the working folder, at /work "
        "(default: distrokernels-work-<user>).",
    ).tag(config=True)
    pool_size = Int(
        1,
        help="Warm containers kept per kernelspec in a Jupyter server, so that its next "
        "start or restart takes a tenth of a second (0: always start cold).",
    ).tag(config=True)
    pool_root = Unicode(
        "",
        help="The folder warm containers mount, under which kernels may start warm "
        "(default: the Jupyter server's root_dir, else your home folder).",
    ).tag(config=True)
    container_argv = List(
        Unicode(),
        help="The kernel's command inside the container ({connection_file} is replaced). "
        "kernel.json's argv is the host launcher, for clients that ignore provisioners; "
        "empty: argv itself (kernelspecs written before the launcher existed).",
    ).tag(config=True)

    # --- the checks every kernelspec gets, whether written by `install` or by hand ------

    @validate("pool_size")
    def _check_pool_size(self, proposal: Any) -> int:
        size: int = proposal["value"]
        if not 0 <= size <= MAX_POOL_SIZE:
            raise InvalidInput(
                f"pool_size {size} is not between 0 and {MAX_POOL_SIZE}", "pass e.g. --pool 1"
            )
        return size

    @validate("run_as_root")
    def _check_run_as_root(self, proposal: Any) -> bool:
        if proposal["value"]:
            raise InvalidInput(
                "run_as_root is no longer supported: a kernel runs as you, so that its "
                "files are yours and it cannot write what you cannot",
                "delete run_as_root from kernel.json, or reinstall the kernel",
            )
        return False

    @validate("cpus")
    def _check_cpus(self, proposal: Any) -> float | None:
        cpus: float | None = proposal["value"]
        if cpus is None:
            return cpus
        host = os.cpu_count() or 1
        if not math.isfinite(cpus) or cpus <= 0:
            raise InvalidInput(f"cpus {cpus} must be a positive number", "pass e.g. --cpus 1.5")
        if cpus > host and not remote_address(self.docker_host):
            raise InvalidInput(
                f"cpus {cpus:g} is more than this host's {host} CPUs", f"pass at most --cpus {host}"
            )
        return cpus

    @validate("memory")
    def _check_memory(self, proposal: Any) -> str | None:
        memory: str | None = proposal["value"]
        if memory is None:
            return memory
        if not _MEMORY.fullmatch(memory):
            raise InvalidInput(
                f"memory {memory[:40]!r} is not a size", "pass e.g. --memory 2g or 512m"
            )
        size = parse_bytes(memory.lower())
        if not MIN_MEMORY <= size <= MAX_MEMORY:
            too = "below the engine's minimum of 6m" if size < MIN_MEMORY else "too large"
            raise InvalidInput(f"memory {memory} is {too}", "pass e.g. --memory 2g or 512m")
        return memory

    @validate("pids_limit")
    def _check_pids_limit(self, proposal: Any) -> int:
        pids_limit: int = proposal["value"]
        if pids_limit < MIN_PIDS_LIMIT:
            raise InvalidInput(
                f"pids_limit {pids_limit} (below {MIN_PIDS_LIMIT}) leaves no room for a kernel",
                "raise --pids-limit",
            )
        if pids_limit > MAX_PIDS_LIMIT:
            raise InvalidInput(
                f"pids_limit {pids_limit} is more than Linux can ever run ({MAX_PIDS_LIMIT})",
                "pass e.g. --pids-limit 4096",
            )
        return pids_limit

    @validate("launch_timeout")
    def _check_launch_timeout(self, proposal: Any) -> float:
        timeout: float = proposal["value"]
        if not math.isfinite(timeout) or timeout <= 0:
            raise InvalidInput(f"launch_timeout {timeout} must be a positive number", "e.g. 60")
        return timeout

    @validate("work_volume")
    def _check_work_volume(self, proposal: Any) -> str:
        name: str = proposal["value"]
        if name and not _VOLUME.fullmatch(name):
            raise InvalidInput(
                f"work_volume {name[:40]!r} is not a volume name",
                "use letters, digits, '_', '.' and '-', e.g. distrokernels-work-ada",
            )
        return name

    @validate("cap_add")
    def _check_cap_add(self, proposal: Any) -> list[str]:
        capabilities: list[str] = proposal["value"]
        for capability in capabilities:
            if not _CAPABILITY.fullmatch(capability):
                raise InvalidInput(f"{capability[:40]!r} is not a capability", "e.g. CHOWN")
        return capabilities

    @validate("mounts")
    def _check_mounts(self, proposal: Any) -> list[str]:
        local = not remote_address(self.docker_host)
        return [parse_mount(mount, local) for mount in proposal["value"]]

    @validate("constraints")
    def _check_constraints(self, proposal: Any) -> list[str]:
        constraints: list[str] = proposal["value"]
        if constraints and self.backend != "swarm":
            raise InvalidInput("constraints place swarm services", "add --backend swarm")
        for constraint in constraints:
            if not _CONSTRAINT.fullmatch(constraint):
                raise InvalidInput(
                    f"{constraint[:80]!r} is not a placement constraint",
                    "write it as Docker does, e.g. node.labels.gpu==1 or node.role!=manager",
                )
        return constraints

    @validate("engine", "backend")
    def _check_engine_backend(self, proposal: Any) -> str:
        value: str = proposal["value"]
        engine, backend = (
            (value, self.backend) if proposal["trait"].name == "engine" else (self.engine, value)
        )
        if engine == "podman" and backend == "swarm":
            raise InvalidInput(
                "Podman has no swarm: a swarm kernel runs on dockerd's swarm mode",
                "drop --backend swarm, or install with --engine docker",
            )
        return value

    @validate("network_mode")
    def _check_network_mode(self, proposal: Any) -> str:
        network_mode: str = proposal["value"]
        if network_mode != "bridge" and self.uses_tcp:
            raise InvalidInput(
                f"a kernel reached over TCP cannot use network mode {network_mode!r}",
                "install it with --network bridge",
            )
        return network_mode

    runtime_dir: str | None = None
    death: str = ""  # why the kernel died, when the engine says (an out-of-memory kill)
    _backend: KernelBackend | None = None
    _template: Template | None = None  # this kernel's kind of warm container, if any
    _warm: WarmContainer | None = None  # claimed in pre_launch, started in launch_kernel
    _slot_link: str | None = None  # the claimed warm slot's name, linked to the kernel's folder
    _guard: guards.HostGuard | None = None  # this start's: what no kernel may write

    @property
    def km(self) -> KernelManager:
        """The kernel manager this provisioner works for: jupyter_client makes it the parent."""
        assert self.parent is not None, "a provisioner runs under a KernelManager"
        return cast(KernelManager, self.parent)

    async def _on_engine(self, operation: Callable[[Engine], _T]) -> _T:
        """Run ``operation`` on this kernel's engine, off the event loop (connecting too)."""
        return await asyncio.to_thread(lambda: operation(shared_engine(self.engine_url)))

    async def _on_backend(self, operation: Callable[[KernelBackend], _T]) -> _T:
        """Run ``operation`` on this kernel's backend, created once per kernel."""

        def run(engine: Engine) -> _T:
            if self._backend is None:
                self._backend = (
                    SwarmBackend(engine, list(self.constraints))
                    if self.backend == "swarm"
                    else ContainerBackend(engine, remote_address(self.docker_host))
                )
            return operation(self._backend)

        return await self._on_engine(run)

    @property
    def container_id(self) -> str | None:
        """The kernel's container (or, on a swarm, its service)."""
        return self._backend.id if self._backend else None

    @property
    def in_server(self) -> bool:
        """Started by a long-lived MultiKernelManager (a Jupyter server), not by a process
        that runs one kernel (the launcher, `distrokernels run`, nbclient)."""
        return isinstance(self.km.parent, MultiKernelManager)

    @property
    def engine_url(self) -> str:
        return engine_url(self.engine, self.docker_host)

    @property
    def uses_tcp(self) -> bool:
        """A swarm node or a remote engine cannot share the runtime folder's sockets."""
        return self.backend == "swarm" or bool(remote_address(self.docker_host))

    @property
    def on_remote_engine(self) -> bool:
        return self.backend == "docker" and bool(remote_address(self.docker_host))

    @property
    def has_process(self) -> bool:
        return self.container_id is not None

    # --- launch ---------------------------------------------------------------------

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        km = self.km
        policy = str(
            kwargs.pop("transport_encryption", None)
            or getattr(km, "transport_encryption", "disabled")
        ).lower()
        extra_arguments = kwargs.pop("extra_arguments", [])
        self.death = ""
        # What no kernel may write, read once per start (the warm template's and the cold
        # container's binds both need it); a remote engine's mounts are that host's.
        self._guard = None if self.on_remote_engine else guards.current(self._launcher_interpreter)
        self._template = self._pool_template(
            kwargs.get("cwd") or os.getcwd(), kwargs.get("env", os.environ), extra_arguments
        )
        self._warm = POOL.claim(self._template) if self._template else None
        self.runtime_dir = self.runtime_dir or self._runtime_dir_for(km.connection_file)
        km.connection_file = os.path.join(self.runtime_dir, "kernel.json")
        if self._encrypts(policy) and km.curve_publickey is None:
            km.curve_publickey, km.curve_secretkey = zmq.curve_keypair()
        if self.uses_tcp:
            # Jupyter's address and ports are known once the engine has placed the kernel;
            # a restart keeps the ones it had.
            km.transport = "tcp"
            cmd = connection.wrap_command(
                self.container_command(extra_arguments, km.connection_file), km.connection_file
            )
        else:
            # Jupyter's side of the sockets; the kernel binds them in its own folder
            # (runtime.KERNEL_DIR), which is this path's io folder on the host.
            km.transport, km.ip = "ipc", os.path.join(self.runtime_dir, runtime.IO, "k")
            km.write_connection_file(
                jupyter_session=kwargs.get("env", {}).get("JPY_SESSION_NAME", "")
            )
            self.connection_info = km.get_connection_info()
            cmd = self.container_command(extra_arguments, KERNEL_CONNECTION_FILE)
        collect_orphans_in_background(self.engine_url, self.log)
        return await super().pre_launch(cmd=cmd, **kwargs)

    def _pool_template(
        self, cwd: str, env: Mapping[str, str], extra_arguments: list[str]
    ) -> Template | None:
        """The warm container that can serve this start, when a pool applies: in a
        Jupyter server (a long-lived MultiKernelManager), on a local engine, for a
        ``python -m`` kernel, in a folder under the pool root."""
        if self.pool_size == 0 or self.uses_tcp or not self.in_server:
            return None
        command = self.container_command(extra_arguments)  # for its python and "-m"
        if not pool.can_serve(command):
            return None
        root = os.path.abspath(
            self.pool_root or getattr(self.km.parent, "root_dir", "") or os.path.expanduser("~")
        )
        if not os.path.isdir(root) or exposes_engine(root):
            return None
        if os.path.commonpath([root, os.path.abspath(cwd)]) != root:
            return None
        start = KernelStart(
            kernel_id="pool",
            kernelspec=self.km.kernel_name,
            command=command[:1],
            # The server's locale, TZ, TERM: the same for each of its starts, and read by
            # Python at its start. Per-start variables come with the claim.
            environment={key: value for key, value in env.items() if key != "JPY_SESSION_NAME"},
            cwd=root,
            uid=os.getuid(),
            gid=os.getgid(),
            owner=owners.current_owner(),
            runtime_dir="",
            kernelspec_env=[],
            warm=True,
            guard=self._guard,
        )
        return Template(
            kernelspec=self.km.kernel_name,
            engine_url=self.engine_url,
            spec=container_spec(self, start),
            runtime_root=str(runtime_root()),
            size=self.pool_size,
        )

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

    def _encrypts(self, policy: str) -> bool:
        """TCP: always when the kernel can (else opt in to plaintext). IPC in the private
        folder: when Jupyter's transport_encryption asks for it."""
        ipykernel = self.kernel_spec.metadata.get("distrokernels", {}).get("ipykernel", "")
        if self.uses_tcp:
            return connection.choose_encryption(ipykernel, self.plaintext_tcp, policy)
        if policy == "disabled":
            return False
        return connection.choose_encryption(ipykernel, allow_plaintext=True, policy=policy)

    def _runtime_dir_for(self, connection_file: str) -> str:
        """A restart keeps its folder (the connection file is in it); a start gets a new one."""
        folder = os.path.dirname(connection_file)
        if connection_file and runtime.is_kernel_folder(folder):
            return folder
        return runtime.new_kernel_folder()

    def _fresh_io(self, slot: str | None = None) -> None:
        """The folder this start's container mounts, new (a claimed warm ``slot`` moved in,
        or an empty one), with the kernel's own copy of the connection file."""
        if self.uses_tcp:
            return  # the engine delivers the file; no folder is shared
        assert self.runtime_dir is not None
        io = runtime.replace_io(self.runtime_dir, slot)
        kernel_side = connection.ipc_kernel_side(self.connection_info, runtime.KERNEL_DIR)
        runtime.write_new(io, "kernel.json", kernel_side)

    def container_spec(
        self, cmd: list[str], env: Mapping[str, str], cwd: str
    ) -> KernelContainerSpec:
        """This start's container: the folder checked here, the rest decided by
        kernel_container.container_spec from this config and the start's facts."""
        if not os.path.isdir(cwd):
            raise KernelStartFailed(f"the working folder {cwd} does not exist", "create it")
        if exposes_engine(cwd):
            raise KernelStartFailed(
                f"the working folder {cwd} holds a container engine's socket",
                "open the notebook from a folder of your own",
            )
        assert self.runtime_dir is not None
        start = KernelStart(
            kernel_id=self.kernel_id,
            kernelspec=self.km.kernel_name,
            command=cmd,
            environment=env,
            cwd=cwd,
            uid=os.getuid(),
            gid=os.getgid(),
            owner=owners.current_owner(),
            runtime_dir=self.runtime_dir,
            kernelspec_env=list(self.kernel_spec.env) if self.kernel_spec else [],
            tcp_connection_file=(
                connection.kernel_side(self.km.get_connection_info()) if self.uses_tcp else None
            ),
            name_suffix=secrets.token_hex(2),
            guard=self._guard,
        )
        return container_spec(self, start)

    @property
    def image_reference(self) -> str:
        """A swarm runs the pushed digest, else the image id: a node never pulls a tag."""
        if self.backend == "swarm":
            return self.pushed_image or self.image_id or self.image
        return self.image_id or self.image

    @property
    def work_volume_name(self) -> str:
        return self.work_volume or f"distrokernels-work-{getpass.getuser()}"

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        with POOL.start_in_flight():
            await self._launch(cmd, kwargs.get("env", {}), kwargs.get("cwd") or os.getcwd())
        if self._template is not None:
            POOL.refill(self._template)
        return self.connection_info

    async def _launch(self, cmd: list[str], env: Mapping[str, str], cwd: str) -> None:
        try:
            spec = self.container_spec(cmd, env, cwd)
        except BaseException:
            self._drop_claim()
            raise
        if self._warm is not None and await self._start_warm(spec):
            await self._wait_until(self._sockets_exist, interval=_POLL_INTERVAL)
            return
        self._fresh_io()
        try:
            if self.on_remote_engine:
                owner = spec.user
                await self._on_engine(
                    lambda engine: engine.ensure_volume(self.work_volume_name, spec.image, owner)
                )

            def start(backend: KernelBackend) -> None:
                backend.start(spec)
                self._warn_about_ignored_limits(backend.engine)

            await self._on_backend(start)
        except BaseException as error:
            self._remove_runtime_dir()
            if not isinstance(error, ImageNotFound):
                raise
            raise KernelStartFailed(
                f"the image of this kernel is gone ({self.image_reference[:19]}, {self.image})",
                self._reinstall_hint,
            ) from error
        if self.uses_tcp:
            await self._wait_until(self._answers_over_tcp(), interval=0.05)
        else:
            await self._wait_until(self._sockets_exist, interval=_POLL_INTERVAL)

    def _warn_about_ignored_limits(self, engine: Engine) -> None:
        """Rootless Podman runs a kernel without the limits it cannot apply: say so, once
        per kernelspec and process."""
        config = {name: getattr(self, name) for name in LIMIT_CONTROLLERS}
        warning = engine.podman.limits_warning(config) if engine.podman else ""
        if warning and (self.engine_url, self.km.kernel_name) not in _WARNED_LIMITS:
            _WARNED_LIMITS.add((self.engine_url, self.km.kernel_name))
            self.log.warning("distrokernels: %s: %s", self.km.kernel_name, warning)

    async def _start_warm(self, spec: KernelContainerSpec) -> bool:
        """Hand this start to the claimed warm container; False: it is gone, start cold."""
        warm, self._warm = self._warm, None
        assert warm is not None and self.runtime_dir is not None
        self._fresh_io(warm.slot)
        io = os.path.join(self.runtime_dir, runtime.IO)
        try:
            handed = pool.hand_over(io, spec.command, spec.working_dir, spec.environment)
            if not handed:
                self.log.info("distrokernels: warm container %s was gone", warm.id[:12])
        except UnsafePath as error:
            self.log.warning("distrokernels: warm container %s retired: %s", warm.id[:12], error)
            handed = False
        if not handed:
            POOL.discard(self.engine_url, [warm])
            return False

        def adopt(backend: KernelBackend) -> None:
            backend.id = warm.id

        await self._on_backend(adopt)
        os.symlink(self.runtime_dir, warm.slot)  # the container's label leads gc to the kernel
        self._slot_link = warm.slot
        self.log.info("distrokernels: %s started warm (%s)", self.km.kernel_name, warm.id[:12])
        return True

    def _drop_claim(self) -> None:
        """A start that failed before its claim was handed over: the container goes."""
        if self._warm is not None:
            POOL.discard(self.engine_url, [self._warm])
            self._warm = None

    @property
    def _reinstall_hint(self) -> str:
        return f"run `distrokernels install {self.source or '<base image>'} --replace`"

    async def _sockets_exist(self) -> bool:
        """The five IPC sockets are bound (sockets themselves: a link is not followed)."""
        km = self.km
        ports = [km.shell_port, km.iopub_port, km.stdin_port, km.hb_port, km.control_port]
        return all(runtime.is_socket(f"{km.ip}-{port}") for port in ports)

    def _answers_over_tcp(self) -> Callable[[], Awaitable[bool]]:
        """Placed, ports published, and the kernel answers a heartbeat."""
        self.connection_info = {}  # Jupyter's side: known once the kernel is placed
        wait = _FIRST_HEARTBEAT_WAIT

        async def ready() -> bool:
            nonlocal wait
            if not self.connection_info:
                endpoint = await self._on_backend(lambda backend: backend.endpoint())
                if endpoint is None:
                    return False
                self.connection_info = connection.client_side(
                    self.km.get_connection_info(), endpoint.address, endpoint.ports
                )
            if await connection.heartbeat_answers(self.connection_info, wait):
                return True
            # A busy node needs longer for TCP and the Curve handshake: wait longer each
            # try, or no try would ever finish.
            wait = min(wait * 1.5, 3.0)
            return False

        return ready

    async def _wait_until(self, ready: Callable[[], Awaitable[bool]], interval: float) -> None:
        """Return once ``ready``; fail within 0.2 s if the kernel exits or cannot be
        placed. A kernel ready sooner (a warm one: 50 ms) costs no engine call."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.launch_timeout
        next_check = loop.time() + _ENGINE_CHECK_INTERVAL
        while not await ready():
            if loop.time() >= next_check:  # ask the engine, every 0.2 s, how it is doing
                state = await self._on_backend(lambda backend: backend.state())
                if state is None or not state.running:
                    await self._fail_start(*self._why_stopped(state))
                next_check = loop.time() + _ENGINE_CHECK_INTERVAL
            if loop.time() > deadline:
                await self._fail_start(f"was not ready in {self.launch_timeout:.0f} s")
            await asyncio.sleep(interval)

    async def _fail_start(self, what: str, hint: str = "") -> None:
        def logs_then_remove(backend: KernelBackend) -> str:
            logs = backend.logs(12)
            backend.remove()
            return logs

        logs = await self._on_backend(logs_then_remove)
        self._remove_runtime_dir()
        last = " | ".join(line for line in logs.strip().splitlines()[-6:] if line.strip())
        raise KernelStartFailed(
            f"the kernel container of {self.km.kernel_name!r} {what}"
            + (f": {last}" if last else ""),
            hint or f"if the image is broken, {self._reinstall_hint}",
        )

    def _why_stopped(self, state: KernelState | None) -> tuple[str, str]:
        """(what happened, what to do: '' for the reinstall hint)."""
        if state is not None and state.reason == OUT_OF_MEMORY:
            return (
                f"{OUT_OF_MEMORY} (limit {self.memory or 'none: the host ran out'})",
                "free memory in the notebook, or reinstall it with a larger --memory",
            )
        if state is not None and state.reason:
            return state.reason, state.hint
        return f"exited with code {state and state.exit_code}", ""

    # --- life cycle -----------------------------------------------------------------

    async def poll(self) -> int | None:
        if self.container_id is None:
            return 0
        shutting_down = self.km.shutting_down
        if shutting_down:
            await self._watch_exit()
        try:
            state = await self._on_backend(lambda backend: backend.state(shutting_down))
        except EngineUnavailable:
            return 1  # the engine went away: its containers did too
        if state is None:
            return 1
        if state.running:
            return None
        if state.reason and not shutting_down and not self.death:
            what, hint = self._why_stopped(state)
            self.death = f"the kernel {self.km.kernel_name!r} {what}"
            self.log.error("distrokernels: %s: %s", self.death, hint)
        if state.exit_code is None:  # shutting down: gone before its engine said how
            return 0 if shutting_down else 1
        return state.exit_code

    async def _watch_exit(self) -> None:
        """Watch a local container's init for most of Jupyter's 0.1 s between polls while
        it shuts the kernel down (a /proc read on the loop), so the exit is seen when it
        happens rather than at the next poll."""
        backend = self._backend
        if not isinstance(backend, ContainerBackend) or not backend.init_runs():
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _EXIT_WATCH
        while loop.time() < deadline and backend.init_runs():
            await asyncio.sleep(_EXIT_WATCH_INTERVAL)

    async def wait(self) -> int | None:
        while (status := await self.poll()) is None:
            await asyncio.sleep(0.05)
        return status

    async def send_signal(self, signum: int) -> None:
        if self.container_id is None:
            return
        if not await self._on_backend(lambda backend: backend.signal(signum)):
            self._interrupt_by_message()

    def _interrupt_by_message(self) -> None:
        """An interrupt for a kernel whose process no engine here can reach (ipykernel 6.2+)."""
        km = self.km
        km._connect_control_socket()
        km.session.send(km._control_socket, km.session.msg("interrupt_request", content={}))

    async def kill(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGKILL)

    async def terminate(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGTERM)

    async def cleanup(self, restart: bool = False) -> None:
        """Remove the container; keep the runtime folder only for a restart."""
        if isinstance(self._backend, ContainerBackend) and self.in_server:
            # The kernel has stopped: a server removes its container off the user's path.
            container_id = self._backend.detach()
            if container_id is not None:
                remove_in_background(self.engine_url, container_id, self.log)
        elif self.container_id is not None:
            # EngineUnavailable: nothing to remove, the engine's restart took the container.
            with contextlib.suppress(EngineUnavailable):
                await self._on_backend(lambda backend: backend.remove())
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
        info = await super().get_provisioner_info()
        info.update(container_id=self.container_id, runtime_dir=self.runtime_dir)
        return info

    async def load_provisioner_info(self, provisioner_info: dict[str, Any]) -> None:
        await super().load_provisioner_info(provisioner_info)
        container_id = provisioner_info.get("container_id")

        def adopt(backend: KernelBackend) -> None:
            backend.id = container_id

        await self._on_backend(adopt)
        self.runtime_dir = provisioner_info.get("runtime_dir")
