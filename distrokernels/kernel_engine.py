"""One kernel's engine calls, each run off the event loop.

The provisioner's methods are coroutines on Jupyter's event loop; every engine call
blocks (an HTTP request to the engine's socket). ``KernelEngine`` runs each in a thread,
on the process's shared connection to the kernel's engine (engines.py), through the
kernel's backend (a container, or a swarm service), which it creates once per kernel so
a restart comes back on the same node and ports. A Slurm kernel's calls are Slurm's
commands, with no engine on this host (slurm/backend.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from .backends import ContainerBackend, KernelBackend, KernelState, SwarmBackend
from .config import KernelConfig
from .engine import Engine, remote_address
from .engines import shared_engine

_T = TypeVar("_T")
_EXIT_WATCH_INTERVAL = 0.005


class KernelEngine:
    """The engine and backend of one kernel (its restarts included)."""

    def __init__(self, config: KernelConfig) -> None:
        self._config = config
        self.backend: KernelBackend | None = None

    @property
    def id(self) -> str | None:
        """The kernel's container (or, on a swarm, its service); None before a start."""
        return self.backend.id if self.backend else None

    @property
    def local_container(self) -> ContainerBackend | None:
        """The backend, when it is a container on an engine of this machine or another."""
        return self.backend if isinstance(self.backend, ContainerBackend) else None

    async def call(self, operation: Callable[[Engine], _T]) -> _T:
        """Run ``operation`` on the kernel's engine, off the event loop (connecting too)."""
        url = self._config.engine_url
        return await asyncio.to_thread(lambda: operation(shared_engine(url)))

    async def on_backend(self, operation: Callable[[KernelBackend], _T]) -> _T:
        """Run ``operation`` on the kernel's backend, created at its first use."""
        if self._config.backend == "slurm":  # Slurm's commands: no engine on this host
            if self.backend is None:
                from .slurm.backend import SlurmBackend, job_request  # its kernels only

                self.backend = SlurmBackend(job_request(self._config))
            backend = self.backend
            return await asyncio.to_thread(lambda: operation(backend))

        def run(engine: Engine) -> _T:
            if self.backend is None:
                config = self._config
                self.backend = (
                    SwarmBackend(engine, list(config.constraints))
                    if config.backend == "swarm"
                    else ContainerBackend(engine, remote_address(config.docker_host))
                )
            return operation(self.backend)

        return await self.call(run)

    async def adopt(self, container_id: str | None) -> None:
        """Make ``container_id`` the kernel's (a claimed warm container, a reconnection)."""

        def adopt(backend: KernelBackend) -> None:
            backend.id = container_id

        await self.on_backend(adopt)

    async def state(self, shutting_down: bool = False) -> KernelState | None:
        """The kernel's state as the backend sees it; None: it is gone."""
        return await self.on_backend(lambda backend: backend.state(shutting_down))

    async def watch_exit(self, seconds: float) -> None:
        """Watch a local container's init for up to ``seconds`` (a /proc read on the loop),
        so an exit during a shutdown is seen when it happens, not at Jupyter's next poll."""
        container = self.local_container
        if container is None or not container.init_runs():
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while loop.time() < deadline and container.init_runs():
            await asyncio.sleep(_EXIT_WATCH_INTERVAL)

    async def logs_then_remove(self, tail: int) -> str:
        """The container's last ``tail`` lines of output, then the container removed."""

        def logs_then_remove(backend: KernelBackend) -> str:
            logs = backend.logs(tail)
            backend.remove()
            return logs

        return await self.on_backend(logs_then_remove)
