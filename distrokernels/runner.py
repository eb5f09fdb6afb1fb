"""Run a notebook headless in its kernel, and record where it ran.

The provenance written into the notebook's metadata says which userland produced the
outputs: kernelspec, distro, Python, image id, lock digest and the host kernel it
shared. A notebook whose distro kernel is missing says how to get it back, from the
provenance an earlier run left in it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, DeadKernelError

from . import images, installer, kernelspecs, pins
from .distros import OsRelease
from .errors import InvalidInput, KernelspecNotFound, LockMismatch, NotebookFailed
from .platforms import architecture
from .reporting import note
from .wheels import WheelSource


def notebook_kernel(notebook: Any) -> str:
    return str(notebook.metadata.get("kernelspec", {}).get("name", ""))


def provenance(name: str) -> dict[str, str]:
    """Where a kernel runs: its distro kernel's image and lock, or the host itself."""
    host = {"kernelspec": name, "host_kernel_release": os.uname().release}
    try:
        info = kernelspecs.find(name).info
    except KernelspecNotFound:  # a local kernel: the host's own userland
        release = OsRelease.parse(Path("/etc/os-release").read_text())
        platform = architecture(os.uname().machine).platform
        local = {"distro": release.pretty_name, "platform": platform, "image": "", "image_id": ""}
        return {**host, **local}
    return {
        **host,
        "distro": info.get("distro", ""),
        "python": info.get("python", ""),
        "ipykernel": info.get("ipykernel", ""),
        "platform": info.get("platform", ""),
        "image": info.get("image", ""),
        "image_id": info.get("image_id", ""),
        "base": info.get("base", ""),
        "lock_digest": info.get("lock_digest", ""),
        "lock_content_digest": pins.installed_digest(name) or "",
    }


def _ensure_pinned_kernel(
    pin: pins.Pin, path: Path, install: bool, allow_drift: bool, progress: Callable[[str], None]
) -> None:
    """The kernel a pinned notebook names is there and is what its pin says."""
    digest = pins.installed_digest(pin.kernelspec)
    if digest is None:
        if not install:
            missing = pins.check_drift(pin, path.name, digest)
            raise KernelspecNotFound(missing, f"run `distrokernels sync {path}`, or pass --install")
        status = pins.sync([path], WheelSource(), allow_drift=allow_drift, progress=progress)
        if status[0].status.startswith("failed"):
            raise LockMismatch(status[0].status.removeprefix("failed: "), "")
        digest = pins.installed_digest(pin.kernelspec)
    drift = pins.check_drift(pin, path.name, digest)
    if drift and not allow_drift:
        raise LockMismatch(
            drift,
            f"`distrokernels sync {path}` installs the pinned kernel; --allow-drift runs "
            "in the installed one",
        )
    if drift:
        note(progress, f"drift accepted: {drift}")


def _ensure_kernel(
    name: str, notebook: Any, install: bool, progress: Callable[[str], None]
) -> None:
    try:
        KernelSpecManager().get_kernel_spec(name)
        return
    except NoSuchKernel:
        pass
    base = notebook.metadata.get("distrokernels", {}).get("base", "")
    if not base:
        raise KernelspecNotFound(
            f"the notebook's kernel {name!r} is not installed",
            "install it (distrokernels install IMAGE --name NAME) or pass --kernel",
        )
    command = f"distrokernels install {base} --name {name}"
    if not install:
        raise KernelspecNotFound(
            f"the notebook's kernel {name!r} is not installed",
            f"run `{command}`, or pass --install",
        )
    progress(f"installing the notebook's kernel: {command}")
    installer.install_kernel(base, images.BuildOptions(), progress, name=name)


class _Client(NotebookClient):
    """nbclient's client, keeping its kernel manager: a dead kernel's cause is asked of
    its provisioner (an out-of-memory kill)."""

    manager: KernelManager | None = None

    def create_kernel_manager(self) -> KernelManager:
        self.manager = super().create_kernel_manager()
        return self.manager


def run_notebook(
    path: Path,
    kernel_name: str | None = None,
    output: Path | None = None,
    timeout: int = 600,
    install: bool = False,
    progress: Callable[[str], None] = lambda line: None,
    allow_drift: bool = False,
) -> Path:
    """Execute every cell; write the executed notebook to ``output`` (default: in place).

    A pinned notebook runs in its pinned kernel as the pin says it is (``allow_drift``:
    or as installed), unless ``kernel_name`` names one; ``install`` installs a missing
    kernel, from the pin when there is one.
    """
    if not path.is_file():
        raise InvalidInput(f"no notebook at {path}", "check the path")
    notebook = nbformat.read(path, as_version=4)
    name = kernel_name or notebook_kernel(notebook)
    if not name:
        raise InvalidInput(
            f"{path} names no kernel", "pass --kernel NAME (see `distrokernels list`)"
        )
    pin = pins.read_pin(notebook, path.name)
    if pin is not None and kernel_name is None:  # a kernel asked for by name is used as is
        _ensure_pinned_kernel(pin, path, install, allow_drift, progress)
    else:
        _ensure_kernel(name, notebook, install, progress)
    client = _Client(
        notebook,
        kernel_name=name,
        timeout=timeout,
        resources={"metadata": {"path": str(path.parent.resolve())}},
    )
    target = output or path
    try:
        client.execute()
    except CellExecutionError as error:
        nbformat.write(notebook, target)
        summary = f"{error.ename}: {error.evalue}" if error.ename else str(error).splitlines()[0]
        raise NotebookFailed(
            f"a cell of {path} failed in {name}: {summary}",
            f"the executed notebook, with the traceback, is in {target}",
        ) from error
    except DeadKernelError as error:
        nbformat.write(notebook, target)
        death = getattr(client.manager.provisioner, "death", "") if client.manager else ""
        raise NotebookFailed(
            f"{path}: {death or f'the kernel {name!r} died'}",
            f"the notebook, executed up to that cell, is in {target}",
        ) from error
    _record_kernel(notebook, name, keep_pin=pin is not None)
    nbformat.write(notebook, target)
    return target


def _record_kernel(notebook: Any, name: str, keep_pin: bool) -> None:
    """The kernel a run used, in the notebook: its kernelspec and its provenance."""
    spec = KernelSpecManager().get_kernel_spec(name)
    notebook.metadata["kernelspec"] = {
        "name": name,
        "display_name": spec.display_name,
        "language": spec.language,
    }
    pinned = {"pin": notebook.metadata["distrokernels"]["pin"]} if keep_pin else {}
    notebook.metadata["distrokernels"] = {**provenance(name), **pinned}
