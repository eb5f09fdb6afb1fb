"""A start served by a warm container: which pool, which kind can serve it, the hand-over.

On a local engine, for a ``python -m`` kernel started in a folder under the pool root, a
start claims an idle container of the same kind (pool.py) instead of creating one. In a
Jupyter server (a long-lived MultiKernelManager) the pool is the server's own, and its
root is the server's root folder. Every other client (nbclient, papermill, `distrokernels
run`, a console, the argv launcher) draws from the user's warm-kernel agent (agent.py),
whose pool serves the folder the kernel starts in: such a warm kernel mounts exactly
what a cold one would. A client whose claim finds no agent starts cold and starts the
agent for its next start.

The claimed container gets its slot moved in as the kernel's io folder, the kernel's
command, folder and environment through its claim FIFO, the claiming process recorded as
its owner (runtime.claimant), and the kernel's runtime folder left linked at the slot's
name, so `gc` finds the kernel from the container's label.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import Protocol

from jupyter_client.connect import KernelConnectionInfo

from . import agent_client, owners, pool, runtime, transport
from .config import KernelConfig
from .engine import KernelContainerSpec
from .guards import HostGuard
from .ids import short_id
from .kernel_container import KernelStart, container_spec
from .mounts import exposes_engine
from .pool import POOL, Template, WarmContainer
from .runtime import IO, UnsafePath, runtime_root

_SERVED_HERE = threading.Event()  # set in the agent: its kernels use its own pool


class WarmSource(Protocol):
    """Where a start claims a warm container, and asks for the next one."""

    def claim(self, template: Template) -> WarmContainer | None: ...

    def refill(self, template: Template) -> None: ...


class AgentPool:
    """The warm-kernel agent's pool, as a client outside a server sees it."""

    def claim(self, template: Template) -> WarmContainer | None:
        """A warm container the agent hands out; None when it has none, or none runs
        (then one is started, so that it warms the next start: a client may exit before
        its refill could ask)."""
        try:
            connection = agent_client.connect()
        except agent_client.AgentUnavailable:
            agent_client.spawn()
            return None
        request = {"op": "claim", "template": template.to_json(), "context": agent_client.context()}
        try:
            answer = connection.ask(request)
        except (agent_client.AgentUnavailable, ValueError):
            return None
        finally:
            connection.close()
        warm = answer.get("warm")
        if not isinstance(warm, dict):
            return None
        slot = str(warm.get("slot", ""))
        if os.path.dirname(slot) != str(runtime_root()):  # only a slot of this user's root
            return None
        return WarmContainer(str(warm.get("id", "")), slot)

    def refill(self, template: Template) -> None:
        """Ask the agent, started if none runs, for the next one; off the start path."""

        def ask() -> None:
            try:
                connection = agent_client.connect_or_start()
                try:
                    connection.ask(
                        {
                            "op": "refill",
                            "template": template.to_json(),
                            "context": agent_client.context(),
                        }
                    )
                finally:
                    connection.close()
            except (agent_client.AgentUnavailable, ValueError) as error:
                logging.getLogger(__name__).info("distrokernels: no warm-kernel agent: %s", error)

        threading.Thread(target=ask, name="distrokernels-agent-refill", daemon=True).start()


AGENT_POOL = AgentPool()


def serve_here() -> None:
    """This process is the agent: its kernels draw from its own pool."""
    _SERVED_HERE.set()


def in_agent() -> bool:
    """Whether this process is the agent (long-lived, as a server is)."""
    return _SERVED_HERE.is_set()


def choose(
    config: KernelConfig,
    kernelspec: str,
    command: list[str],
    cwd: str,
    env: Mapping[str, str],
    server_root: str | None,
    guard: HostGuard | None,
) -> tuple[WarmSource | None, Template | None]:
    """The pool this start draws from and the kind of warm container that serves it;
    (None, None) when none does. ``server_root`` is None outside a Jupyter server: the
    pool is then the agent's (or, in the agent, its own) and its root the start's folder.
    """
    if server_root is not None:
        source: WarmSource | None = POOL
    elif in_agent():
        source = POOL
    else:
        source = AGENT_POOL if agent_client.enabled() else None
    if source is None:
        return None, None
    root = cwd if server_root is None else server_root
    found = template(config, kernelspec, command, cwd, env, root, guard)
    return (source, found) if found else (None, None)


def pool_root(config: KernelConfig, server_root: str) -> str:
    """The folder warm containers mount: the kernelspec's, the server's (outside a server:
    the start's folder), or home."""
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
    runtime.write_claimant(runtime_dir, owners.current_owner())
    os.symlink(runtime_dir, warm.slot)  # the container's label leads gc to the kernel
    return True
