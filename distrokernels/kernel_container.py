"""What a kernel's container is: a pure function of the kernelspec and one start.

DistroProvisioner gathers the facts of one start (KernelStart: the command, the
environment Jupyter passes, the working folder, the user, the runtime folder, the owner)
and ``container_spec`` decides everything about the container from them and the
kernelspec's checked config (config.KernelConfig). It touches neither the engine nor the
file system, so it is unit-tested as data.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping
from dataclasses import dataclass

from . import connection
from .config import KernelConfig
from .engine import (
    LABEL_KERNEL_ID,
    LABEL_KERNELSPEC,
    LABEL_OWNER,
    LABEL_POOL,
    LABEL_RUNTIME_DIR,
    KernelContainerSpec,
)
from .guards import HostGuard, guard_binds
from .runtime import IO, KERNEL_DIR

HOME = "/home/kernel"
REMOTE_WORKDIR = "/work"


@dataclass(frozen=True)
class KernelStart:
    """The facts of one kernel start."""

    kernel_id: str
    kernelspec: str
    command: list[str]
    environment: Mapping[str, str]  # what Jupyter passes: filtered before the kernel sees it
    cwd: str  # the notebook's folder on this machine
    uid: int
    gid: int
    owner: str  # owners.current_owner() of the process that starts the kernel
    runtime_dir: str
    kernelspec_env: list[str]  # names the kernelspec's own ``env`` sets
    tcp_connection_file: bytes | None = None  # the kernel's side, when reached over TCP
    name_suffix: str = ""
    warm: bool = False  # a warm container (pool.py): its slot is mounted by for_slot
    guard: HostGuard | None = None  # what no kernel may write (guards.py); None: nothing


def container_spec(config: KernelConfig, start: KernelStart) -> KernelContainerSpec:
    """Everything about the container, decided here and nowhere else."""
    binds = list(config.mounts)
    files, ports = {}, {}
    cwd = start.cwd
    if config.on_remote_engine:  # that machine has no such folder: a volume is the folder
        binds.insert(0, f"{config.work_volume_name}:{REMOTE_WORKDIR}:rw")
        cwd = REMOTE_WORKDIR
    else:
        binds.insert(0, f"{cwd}:{cwd}:rw")
    if start.guard is not None:
        binds = guard_binds(binds, start.guard)
    if start.tcp_connection_file is not None:
        files = {connection.DELIVERED_FILE: start.tcp_connection_file}
        ports = {port: 0 for port in connection.KERNEL_PORTS.values()}
    elif start.runtime_dir:  # its own io folder only: no other kernel's key or sockets
        binds.insert(0, f"{os.path.join(start.runtime_dir, IO)}:{KERNEL_DIR}:rw")
    return KernelContainerSpec(
        image=config.image_reference,
        command=start.command,
        user=f"{start.uid}:{start.gid}",
        working_dir=cwd,
        environment=kernel_environment(
            start.environment, start.kernelspec_env, config.env_allowlist
        ),
        binds=binds,
        labels={
            LABEL_KERNEL_ID: start.kernel_id,
            LABEL_KERNELSPEC: start.kernelspec,
            LABEL_OWNER: start.owner,
            LABEL_RUNTIME_DIR: start.runtime_dir,
            **({LABEL_POOL: "warm"} if start.warm else {}),
        },
        network_mode=config.network_mode,
        tmpfs={HOME: f"rw,exec,mode=0700,uid={start.uid},gid={start.gid}"},
        memory=config.memory,
        cpus=config.cpus,
        pids_limit=config.pids_limit,
        cap_drop=["ALL"],
        cap_add=list(config.cap_add),
        security_opt=["no-new-privileges"] if config.no_new_privileges else [],
        name=f"distrokernels-{start.kernel_id[:8]}-{start.name_suffix}".rstrip("-"),
        ports=ports,
        files=files,
        personality=config.personality,
    )


def kernel_environment(
    env: Mapping[str, str], kernelspec_keys: list[str], allowlist: list[str]
) -> dict[str, str]:
    """The environment the kernel sees: never the whole host environment.

    Only the kernelspec's own ``env`` entries, JPY_SESSION_NAME and names matching the
    allowlist pass. JPY_PARENT_PID never does: ipykernel would watch a pid that does
    not exist in the container and exit at once.
    """
    passed = {
        key: value
        for key, value in env.items()
        if key in kernelspec_keys
        or key == "JPY_SESSION_NAME"
        or any(fnmatch.fnmatchcase(key, pattern) for pattern in allowlist)
    }
    passed.pop("JPY_PARENT_PID", None)
    passed["HOME"] = HOME
    # docker-init (tini) then forwards signals to the kernel's whole process group,
    # as the local provisioner does with killpg.
    passed["TINI_KILL_PROCESS_GROUP"] = "1"
    return passed
