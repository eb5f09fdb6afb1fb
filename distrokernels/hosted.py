"""One kernel for a client that launched kernel.json's argv: started, bridged, stopped.

The client wrote a connection file with the transport, address and ports it chose. A
``HostedKernel`` starts the kernel through DistroProvisioner, under a jupyter_client
KernelManager of its own, so it is the very container a provisioner-aware Jupyter would
run (image by id, your uid:gid, the client's working folder, the environment allowlist,
limits, capabilities) after the very same checks of the kernelspec; bridge.py serves the
client's endpoints, on loopback only, and relays them to the kernel.

It runs in the user's warm-kernel agent (agent.py), one per launcher connected to it, or
in the launcher's own process when there is no agent (``DISTROKERNELS_AGENT=0``, or one
that could not start). Either way: an interrupt reaches the running cell, a stop ends
the kernel (shutdown_request, then SIGTERM, then SIGKILL) and removes its container, and
a kernel that exits by itself (shutdown_request, a crash) ends the run with its exit
status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import TYPE_CHECKING, Any

from . import PROVISIONER_NAME
from .bridge import Bridge
from .errors import InvalidInput

if TYPE_CHECKING:
    from jupyter_client.manager import AsyncKernelManager

    from .config import KernelConfig

log = logging.getLogger(__name__)

_KERNEL_POLL_INTERVAL = 5.0  # seconds: the fallback when no disconnect is reported
_EXIT_AFTER_DISCONNECT = 2.0  # seconds the engine may take to report a kernel's exit
# Seconds a kernel may take to exit after a client's shutdown_request before it is stopped
# (jupyter_client's shutdown_wait_time for a local kernel).
_SHUTDOWN_GRACE = 5.0


class HostedKernel:
    """The kernel of one argv client, from its start to its exit status."""

    def __init__(self, name: str, client_info: dict[str, Any]) -> None:
        self.bridge = Bridge(client_info)
        self.manager, self.config = manager_for(name, client_info)
        self._started = False
        self._interrupts: set[asyncio.Future[None]] = set()

    async def run(self, cwd: str, env: dict[str, str], stop: asyncio.Event) -> int:
        """Listen on the client's ports at once, start the kernel, relay until it exits
        (its status) or ``stop`` is set (then stop it: 0)."""
        manager = self.manager
        status = None
        try:
            began = time.monotonic()
            self.bridge.listen()
            await manager.start_kernel(cwd=cwd, env=env)
            self.bridge.connect(manager.get_connection_info())
            self._started = True
            log.info(
                "distrokernels: %s runs in %s, ready in %.0f ms",
                manager.kernel_name,
                self.container_id,
                (time.monotonic() - began) * 1000,
            )
            status = await self._until_exit_or_stop(stop)
            how = "stopped" if status is None else f"exited with status {status}"
            log.info("distrokernels: the kernel in %s %s", self.container_id, how)
        finally:
            self._started = False
            self.bridge.close()
            # A start that failed has nothing left: the provisioner removed what it made.
            if manager.has_kernel:
                if status is None:  # a stop, or an error here: stop the kernel
                    await manager.shutdown_kernel()
                else:
                    await manager.cleanup_resources()
        return status if status is not None else 0

    @property
    def container_id(self) -> str | None:
        """The kernel's container, once it has one."""
        return getattr(self.manager.provisioner, "container_id", None)

    @property
    def death(self) -> str:
        """Why the kernel died, when the engine said (an out-of-memory kill), else ''."""
        return str(getattr(self.manager.provisioner, "death", "") or "")

    def interrupt(self) -> None:
        """Interrupt the running cell; before the kernel runs there is nothing to interrupt."""
        if self._started:
            task = asyncio.ensure_future(self.manager.interrupt_kernel())
            self._interrupts.add(task)
            task.add_done_callback(self._interrupts.discard)

    async def _until_exit_or_stop(self, stop: asyncio.Event) -> int | None:
        """The kernel's exit status once it exits; None when ``stop`` asks to stop it, or
        when the kernel is still there ``_SHUTDOWN_GRACE`` after a client's
        shutdown_request (then it is stopped, as jupyter_client stops a local kernel)."""
        stopped = asyncio.ensure_future(stop.wait())
        requested = asyncio.ensure_future(self.bridge.shutdown_requested())
        overdue = asyncio.ensure_future(_after(requested, _SHUTDOWN_GRACE))
        provisioner = self.manager.provisioner
        assert provisioner is not None
        try:
            while not stopped.done():
                disconnected = asyncio.ensure_future(self.bridge.kernel_disconnected())
                await asyncio.wait(
                    {stopped, overdue, disconnected},
                    timeout=_KERNEL_POLL_INTERVAL,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                fired = disconnected.done()
                disconnected.cancel()
                if stopped.done():
                    break
                if fired:  # the engine reports the exit a little after the sockets close
                    log.info("distrokernels: the kernel in %s hung up", self.container_id)
                    # After a client's shutdown_request the kernel is shutting down, as
                    # under jupyter_client's own shutdown: its exit is the host seeing its
                    # init gone (status 0), not the engine's report ~200 ms later.
                    self.manager.shutting_down = requested.done()
                    with contextlib.suppress(asyncio.TimeoutError):
                        exited = provisioner.wait()  # polls until it has a status
                        status = await asyncio.wait_for(exited, _EXIT_AFTER_DISCONNECT)
                        return 1 if status is None else status
                elif (status := await provisioner.poll()) is not None:
                    return status
                if overdue.done():
                    log.warning(
                        "distrokernels: the kernel in %s did not exit within %.0f s of its "
                        "shutdown_request: stopping it",
                        self.container_id,
                        _SHUTDOWN_GRACE,
                    )
                    return None
            return None
        finally:
            for future in (stopped, requested, overdue):
                future.cancel()


async def _after(event: asyncio.Future[None], seconds: float) -> None:
    """Returns ``seconds`` after ``event``."""
    await asyncio.shield(event)
    await asyncio.sleep(seconds)


def manager_for(name: str, client_info: dict[str, Any]) -> tuple[AsyncKernelManager, KernelConfig]:
    """A kernel manager for the distro kernelspec ``name``, with the client's key, and
    the kernelspec's checked settings."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.paths import jupyter_path

    from .config import validate_config

    # jupyter_client's search path. Its default imports IPython (27 ms of a cold start)
    # only to name the legacy ~/.ipython/kernels, which stays on the path.
    ipython = os.environ.get("IPYTHONDIR") or os.path.join(os.path.expanduser("~"), ".ipython")
    kernel_dirs = [*jupyter_path("kernels"), os.path.join(ipython, "kernels")]
    manager = AsyncKernelManager(
        kernel_name=name, kernel_spec_manager=KernelSpecManager(kernel_dirs=kernel_dirs)
    )
    try:
        spec = manager.kernel_spec
    except NoSuchKernel as error:
        raise InvalidInput(
            f"no kernelspec named {name!r} on the Jupyter path", "see `jupyter kernelspec list`"
        ) from error
    provisioner = spec.metadata.get("kernel_provisioner", {}) if spec else {}
    if provisioner.get("provisioner_name") != PROVISIONER_NAME:
        # Otherwise jupyter_client would run argv, which is this launcher, again.
        raise InvalidInput(
            f"kernelspec {name!r} no longer names the distrokernels provisioner",
            "reinstall it: distrokernels install IMAGE --replace",
        )
    manager.session.key = str(client_info["key"]).encode()
    manager.session.signature_scheme = client_info.get("signature_scheme", "hmac-sha256")
    return manager, validate_config(provisioner.get("config", {}))
