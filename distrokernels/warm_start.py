"""A start served by a warm container: which kind can serve it, and the hand-over.

In a Jupyter server (a long-lived MultiKernelManager), on a local engine, for a
``python -m`` kernel started in a folder under the pool root, a start claims one of the
pool's idle containers of the same kind (pool.py) instead of creating one. The claimed
container gets its slot moved in as the kernel's io folder, the kernel's command,
folder and environment through its claim FIFO, and the kernel's runtime folder left
linked at the slot's name, so `gc` finds the kernel from the container's label.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from jupyter_client.connect import KernelConnectionInfo

from . import owners, pool, transport
from .config import KernelConfig
from .engine import KernelContainerSpec
from .guards import HostGuard
from .ids import short_id
from .kernel_container import KernelStart, container_spec
from .mounts import exposes_engine
from .pool import POOL, Template, WarmContainer
from .runtime import IO, UnsafePath, runtime_root


def pool_root(config: KernelConfig, server_root: str) -> str:
    """The folder warm containers mount: the kernelspec's, the server's, or home."""
    return os.path.abspath(config.pool_root or server_root or os.path.expanduser("~"))


def template(
    config: KernelConfig,
    kernelspec: str,
    command: list[str],
    cwd: str,
    env: Mapping[str, str],
    server_root: str,
    guard: HostGuard | None,
) -> Template | None:
    """The kind of warm container that can serve this start; None when no pool applies
    (the caller checks that it runs in a server): no pool, TCP, not ``python -m``, or a
    folder outside the pool root."""
    if config.pool_size == 0 or config.uses_tcp or not pool.can_serve(command):
        return None
    root = pool_root(config, server_root)
    if not os.path.isdir(root) or exposes_engine(root):
        return None
    if os.path.commonpath([root, os.path.abspath(cwd)]) != root:
        return None
    start = KernelStart(
        kernel_id="pool",
        kernelspec=kernelspec,
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
        guard=guard,
    )
    return Template(
        kernelspec=kernelspec,
        engine_url=config.engine_url,
        spec=container_spec(config, start),
        runtime_root=str(runtime_root()),
        size=config.pool_size,
    )


def hand_over(
    warm: WarmContainer,
    engine_url: str,
    runtime_dir: str,
    info: KernelConnectionInfo,
    spec: KernelContainerSpec,
    log: logging.Logger | logging.LoggerAdapter[logging.Logger],
) -> bool:
    """Give this start to the claimed ``warm`` container; False: it is gone or was
    tampered with (then retired), and the start goes cold."""
    transport.fresh_io(runtime_dir, info, warm.slot)
    try:
        handed = pool.hand_over(
            os.path.join(runtime_dir, IO), spec.command, spec.working_dir, spec.environment
        )
        if not handed:
            log.info("distrokernels: warm container %s was gone", short_id(warm.id))
    except UnsafePath as error:
        log.warning("distrokernels: warm container %s retired: %s", short_id(warm.id), error)
        handed = False
    if not handed:
        POOL.discard(engine_url, [warm])
        return False
    os.symlink(runtime_dir, warm.slot)  # the container's label leads gc to the kernel
    return True
