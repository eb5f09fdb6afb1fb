"""A distro kernel's settings: every value of its kernelspec's config, declared once.

``KernelConfig`` declares each value as a trait with its help, default, choices and
check. Everything else is derived from it: DistroProvisioner inherits it (so
jupyter_client checks a hand-edited kernel.json as it builds the provisioner), ``install``
checks its options with ``validate_config``, the CLI's options for these values are
generated from the traits tagged ``cli`` (``cli_options``), and so is the settings table
of the docs (``settings_table``). A new setting is one declaration here.
"""

from __future__ import annotations

import getpass
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from docker.utils import parse_bytes
from traitlets import (
    Bool,
    CaselessStrEnum,
    Float,
    Int,
    List,
    TraitError,
    TraitType,
    Unicode,
    validate,
)
from traitlets.config import LoggingConfigurable

from .checks import require
from .engine import ENGINES, engine_url, remote_address
from .errors import InvalidInput
from .mounts import parse_mount
from .platforms import architecture
from .slurm.jobs import SWEEP_URL as SLURM_SWEEP_URL

DEFAULT_PIDS_LIMIT = 1024  # processes: room for a kernel, its helpers and subprocesses
MIN_PIDS_LIMIT = 16  # fewer leaves no room for a kernel and its helpers
MAX_PIDS_LIMIT = 4_194_304  # the Linux kernel's PID_MAX_LIMIT: no more can ever run
MIN_MEMORY = 6 * 2**20  # dockerd refuses less ("Minimum memory limit allowed is 6MB")
MAX_MEMORY = 2**63 - 1  # the engine keeps bytes in an int64
MAX_POOL_SIZE = 64  # warm containers per kernelspec: each holds tens of MB
_CAPABILITY = re.compile(r"[A-Z_]{2,32}")
_CONSTRAINT = re.compile(r"(node|engine)\.[A-Za-z0-9_.-]+ *(==|!=) *[^\s]+")
_VOLUME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")  # Docker's volume names
_SLURM_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_SLURM_TIME = re.compile(r"(\d+-)?\d+(:\d+){0,2}|\d+-\d+|UNLIMITED|INFINITE")
_SLURM_GRES = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_:,.=-]{0,127}")
_FEATURE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.&|*\[\]:-]{0,127}")
_MEMORY = re.compile(r"[0-9]+(\.[0-9]+)?[bkmg]?", re.IGNORECASE)


def validate_config(config: Mapping[str, Any]) -> KernelConfig:
    """A kernelspec config checked as every kernel start checks it: the traits' own checks."""
    try:
        return KernelConfig(**config)
    except TraitError as error:
        raise InvalidInput(str(error), "fix that value in kernel.json, or reinstall") from error


class SlurmJobConfig(LoggingConfigurable):
    """What a Slurm kernel's job asks for, and where its private files live (the
    settings of ``--backend slurm``; KernelConfig has them all)."""

    partition = Unicode("", help="Slurm: the partition the kernel's job runs in.").tag(
        config=True, cli="--partition", metavar="NAME"
    )
    time_limit = Unicode(
        "", help="Slurm: the job's time limit, as sbatch takes it (4:00:00, 1-12:00:00)."
    ).tag(config=True, cli="--time", metavar="TIME")
    account = Unicode("", help="Slurm: the account the job is charged to.").tag(
        config=True, cli="--account", metavar="NAME"
    )
    gres = Unicode("", help="Slurm: generic resources for the job, e.g. gpu:1.").tag(
        config=True, cli="--gres", metavar="GRES"
    )
    runtime = CaselessStrEnum(
        ["podman", "charliecloud"],
        default_value="podman",
        help="Slurm: the compute node's unprivileged runtime (rootless Podman, or "
        "Charliecloud's ch-run).",
    ).tag(config=True, cli="--runtime")
    slurm_folder = Unicode(
        "",
        help="Slurm: your private folder on the file system the nodes share: the staged "
        "images and each kernel's key and connection file (default: "
        "~/.local/share/distrokernels/slurm).",
    ).tag(config=True, cli="--slurm-folder", metavar="FOLDER")
    queue_timeout = Float(
        3600.0,
        help="Slurm: seconds a start waits for its job to leave the queue (launch_timeout "
        "counts from then).",
    ).tag(config=True)
    # --- checks ---------------------------------------------------------------------

    @validate("partition", "account")
    def _check_slurm_name(self, proposal: Any) -> str:
        value: str = proposal["value"]
        if value:
            name = proposal["trait"].name
            require(_SLURM_NAME, value, "a Slurm name", f"e.g. --{name} gpu", name)
        return value

    @validate("time_limit")
    def _check_time_limit(self, proposal: Any) -> str:
        value: str = proposal["value"]
        if value:
            require(_SLURM_TIME, value, "a Slurm time limit", "e.g. --time 4:00:00", "time_limit")
        return value

    @validate("gres")
    def _check_gres(self, proposal: Any) -> str:
        value: str = proposal["value"]
        if value:
            require(_SLURM_GRES, value, "a Slurm GRES request", "e.g. --gres gpu:1", "gres")
        return value

    @validate("work_volume")
    def _check_work_volume(self, proposal: Any) -> str:
        name: str = proposal["value"]
        if name:
            require(
                _VOLUME,
                name,
                "a volume name",
                "use letters, digits, '_', '.' and '-', e.g. distrokernels-work-ada",
                "work_volume",
            )
        return name

    @property
    def slurm_folder_path(self) -> str:
        """Slurm: the private shared folder, absolute."""
        default = os.path.join("~", ".local", "share", "distrokernels", "slurm")
        return os.path.abspath(os.path.expanduser(self.slurm_folder or default))


class KernelConfig(SlurmJobConfig):
    """The config of one distro kernelspec (``metadata.kernel_provisioner.config``)."""

    image = Unicode(help="The kernel image (tag).").tag(config=True)
    image_id = Unicode("", help="The exact image id the kernelspec was built with.").tag(
        config=True
    )
    source = Unicode("", help="The base image the kernel was built from.").tag(config=True)
    architecture = Unicode(
        "",
        help="The userland's platform when it is not the host's, e.g. linux/arm64 (set by "
        "install --platform; its kernels run under the host's binfmt handler).",
    ).tag(config=True)
    personality = CaselessStrEnum(
        ["", "i686"],
        default_value="",
        help="The machine a 32-bit userland the host runs natively reports (set by install: "
        "its kernels start under setarch, so platform.machine() says i686, not x86_64).",
    ).tag(config=True)
    network_mode = CaselessStrEnum(
        ["bridge", "none", "host"], default_value="bridge", help="The container's network."
    ).tag(config=True, cli="--network")
    mounts = List(
        Unicode(), help="Extra mounts, HOST[:CONTAINER][:ro|rw] (read-only unless rw)."
    ).tag(config=True, cli="--mount", metavar="MOUNT")
    memory = Unicode(None, allow_none=True, help="Memory limit, e.g. 2g or 512m.").tag(
        config=True, cli="--memory", metavar="SIZE"
    )
    cpus = Float(None, allow_none=True, help="CPU limit, e.g. 1.5.").tag(
        config=True, cli="--cpus", metavar="N"
    )
    pids_limit = Int(DEFAULT_PIDS_LIMIT, help="Most processes the kernel may run at once.").tag(
        config=True, cli="--pids-limit", metavar="N"
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
    cap_add = List(Unicode(), help="Capabilities to add back (all are dropped), e.g. CHOWN.").tag(
        config=True, cli="--cap-add", metavar="CAPABILITY"
    )
    no_new_privileges = Bool(True, help="Forbid setuid and file capabilities.").tag(
        config=True,
        cli="--allow-new-privileges",
        cli_help="Allow setuid programs to gain privileges (no_new_privileges false).",
    )
    engine = CaselessStrEnum(
        list(ENGINES),
        default_value="docker",
        help="dockerd, or the user's rootless Podman (its socket in XDG_RUNTIME_DIR, its "
        "service started when it does not answer).",
    ).tag(config=True)
    docker_host = Unicode(
        "", help="The engine to build and run on (a DOCKER_HOST URL); default: the environment's."
    ).tag(config=True, cli="--docker-host", metavar="URL")
    backend = CaselessStrEnum(
        ["docker", "swarm", "slurm"],
        default_value="docker",
        help="A container on the engine, a one-replica service on its swarm, or a Slurm "
        "job running the kernel in the compute node's unprivileged runtime.",
    ).tag(config=True, cli="--backend")
    constraints = List(
        Unicode(),
        help="Placement: swarm constraints (node.labels.gpu==1), or Slurm node features "
        "(skylake; several are ANDed).",
    ).tag(config=True, cli="--constraint", metavar="CONSTRAINT")
    plaintext_tcp = Bool(
        False, help="Allow unencrypted TCP for a kernel whose ipykernel cannot use CurveZMQ."
    ).tag(config=True, cli="--plaintext-tcp")
    pushed_image = Unicode(
        "", help="The image in a registry (repository@digest) that swarm nodes pull."
    ).tag(config=True)
    work_volume = Unicode(
        "",
        help="On a remote engine: the named volume that is the working folder, at /work "
        "(default: distrokernels-work-<user>).",
    ).tag(config=True, cli="--work-volume", metavar="VOLUME")
    pool_size = Int(
        1,
        help="Warm containers kept per kernelspec in a Jupyter server, so that its next "
        "start or restart takes a tenth of a second (0: always start cold).",
    ).tag(config=True, cli="--pool", metavar="N")
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
        if cpus > host and not remote_address(self.docker_host) and self.backend != "slurm":
            raise InvalidInput(
                f"cpus {cpus:g} is more than this host's {host} CPUs", f"pass at most --cpus {host}"
            )
        return cpus

    @validate("memory")
    def _check_memory(self, proposal: Any) -> str | None:
        memory: str | None = proposal["value"]
        if memory is None:
            return memory
        require(_MEMORY, memory, "a size", "pass e.g. --memory 2g or 512m", "memory")
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

    @validate("launch_timeout", "queue_timeout")
    def _check_timeouts(self, proposal: Any) -> float:
        timeout: float = proposal["value"]
        name = proposal["trait"].name
        if not math.isfinite(timeout) or timeout <= 0:
            raise InvalidInput(f"{name} {timeout} must be a positive number", "e.g. 60")
        return timeout

    @validate("cap_add")
    def _check_cap_add(self, proposal: Any) -> list[str]:
        capabilities: list[str] = proposal["value"]
        for capability in capabilities:
            require(_CAPABILITY, capability, "a capability", "e.g. CHOWN")
        return capabilities

    @validate("mounts")
    def _check_mounts(self, proposal: Any) -> list[str]:
        local = not remote_address(self.docker_host)
        return [parse_mount(mount, local) for mount in proposal["value"]]

    @validate("constraints")
    def _check_constraints(self, proposal: Any) -> list[str]:
        constraints: list[str] = proposal["value"]
        if constraints and self.backend == "docker":
            raise InvalidInput(
                "constraints place swarm services and Slurm jobs",
                "add --backend swarm or --backend slurm",
            )
        for constraint in constraints:
            if self.backend == "slurm":
                require(_FEATURE, constraint, "a Slurm node feature", "e.g. --constraint skylake")
                continue
            require(
                _CONSTRAINT,
                constraint,
                "a placement constraint",
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

    @validate("architecture")
    def _check_architecture(self, proposal: Any) -> str:
        value: str = proposal["value"]
        return architecture(value).platform if value else ""

    @validate("network_mode")
    def _check_network_mode(self, proposal: Any) -> str:
        network_mode: str = proposal["value"]
        if network_mode != "bridge" and self.uses_tcp:
            raise InvalidInput(
                f"a kernel reached over TCP cannot use network mode {network_mode!r}",
                "install it with --network bridge",
            )
        return network_mode

    # --- what follows from the values --------------------------------------------------

    @property
    def engine_url(self) -> str:
        """The URL of the engine this kernel runs on ('' for the environment's)."""
        return engine_url(self.engine, self.docker_host)

    @property
    def sweep_url(self) -> str:
        """What a watchdog and the orphan sweep look at for this kernel: its engine, or
        the user's Slurm jobs."""
        return SLURM_SWEEP_URL if self.backend == "slurm" else self.engine_url

    @property
    def uses_tcp(self) -> bool:
        """A swarm node, a Slurm node or a remote engine cannot share the runtime folder's
        sockets."""
        return self.backend in ("swarm", "slurm") or bool(remote_address(self.docker_host))

    @property
    def on_remote_engine(self) -> bool:
        """A container on another machine's engine (its folders are that machine's)."""
        return self.backend == "docker" and bool(remote_address(self.docker_host))

    @property
    def image_reference(self) -> str:
        """A swarm runs the pushed digest, else the image id: a node never pulls a tag."""
        if self.backend == "swarm":
            return self.pushed_image or self.image_id or self.image
        return self.image_id or self.image

    @property
    def work_volume_name(self) -> str:
        """On a remote engine, the volume that is the kernel's working folder."""
        return self.work_volume or f"distrokernels-work-{getpass.getuser()}"

    @property
    def reinstall_hint(self) -> str:
        """The command that rebuilds this kernel."""
        return f"run `distrokernels install {self.source or '<base image>'} --replace`"


# --- derived from the declarations: the CLI's options and the docs' table ---------------


@dataclass(frozen=True)
class CliOption:
    """One command-line option generated from a trait tagged ``cli``."""

    trait: str
    flag: str
    kwargs: dict[str, Any] = field(default_factory=dict)


def _default_text(trait: TraitType[Any, Any]) -> str:
    default = trait.default()
    if default is None or default == "" or default == []:
        return ""
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, list):
        return " ".join(str(item) for item in default)
    return str(default)


def cli_options(config_class: type[KernelConfig] = KernelConfig) -> list[CliOption]:
    """The argparse options for the settings a user gives at install: flag, help (the
    trait's, with its default), choices, type and repetition, all from the trait."""
    options = []
    for name, trait in sorted(config_class.class_traits(cli=lambda flag: bool(flag)).items()):
        help_text = trait.metadata.get("cli_help") or trait.help
        kwargs: dict[str, Any] = {"dest": name, "default": None}
        if isinstance(trait, Bool):
            kwargs.update(action="store_const", const=not trait.default())
        else:
            if isinstance(trait, List):
                kwargs["action"] = "append"
            elif isinstance(trait, CaselessStrEnum):
                kwargs["choices"] = list(trait.values or [])
            elif isinstance(trait, Float):
                kwargs["type"] = float
            elif isinstance(trait, Int):
                kwargs["type"] = int
            if "metavar" in trait.metadata:
                kwargs["metavar"] = trait.metadata["metavar"]
            if default := _default_text(trait):
                help_text = f"{help_text.rstrip('.')} (default: {default})."
        kwargs["help"] = help_text.replace("%", "%%")
        options.append(CliOption(name, trait.metadata["cli"], kwargs))
    return options


def config_from_options(
    values: Mapping[str, Any], config_class: type[KernelConfig] = KernelConfig
) -> dict[str, Any]:
    """The config the options given on the command line set (what was not given is
    left to the trait's default), from argparse's values keyed by trait name."""
    return {
        option.trait: values[option.trait]
        for option in cli_options(config_class)
        if values.get(option.trait) is not None
    }


def settings_table(config_class: type[KernelConfig] = KernelConfig) -> str:
    """The docs' table of every setting: kernel.json key, option, default, meaning."""
    rows = ["| setting | option | default | what it is |", "|---|---|---|---|"]
    for name, trait in sorted(config_class.class_traits(config=True).items()):
        flag = trait.metadata.get("cli", "")
        default = _default_text(trait)
        help_text = " ".join(trait.help.split()).replace("|", "\\|")
        rows.append(
            f"| `{name}` | {f'`{flag}`' if flag else ''} | {f'`{default}`' if default else ''} "
            f"| {help_text} |"
        )
    return "\n".join(rows) + "\n"
