"""Notebooks that carry their userland: a kernel's lock pinned in the notebook itself.

``pin`` writes ``metadata.distrokernels.pin`` (the lock of the notebook's distro kernel,
its content digest, the kernelspec name and display name, and the command that brings
it back) and sets ``metadata.kernelspec`` to match, through nbformat, leaving cells and
outputs alone. ``sync`` reads the pins of a folder's notebooks and installs each kernel
they name from its lock, once per kernelspec; an installed kernel with the same lock
content is already there. ``run`` refuses a pinned notebook whose installed kernel has
drifted from its pin, unless told to accept it.

A pin compares *content* (``Lock.content_digest``): the wheels by sha256, the distro
package versions, the Python, the base's name; not the base image's id, which a Debian
base bootstrapped on another machine never shares. A pin is data from someone else:
every value is checked (``Lock.from_data``) before anything is installed.

``run`` writes its provenance into ``metadata.distrokernels`` too; the pin is a key of
its own there, which ``run`` keeps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import nbformat

from . import images, installer, kernelspecs, locks
from .errors import DistroKernelsError, InvalidInput, KernelspecNotFound
from .ids import short_id
from .reporting import note
from .wheels import WheelSource

PIN_VERSION = 1
_PIN_AGAIN = "ask for a notebook pinned again with `distrokernels pin NOTEBOOK`"
_SKIPPED_FOLDERS = {".ipynb_checkpoints", ".git", "node_modules"}


@dataclass(frozen=True)
class Pin:
    """A notebook's pinned kernel: which kernelspec, made of exactly what."""

    kernelspec: str
    display_name: str
    lock: locks.Lock

    @property
    def digest(self) -> str:
        return self.lock.content_digest

    def to_metadata(self, notebook: Path) -> dict[str, Any]:
        return {
            "version": PIN_VERSION,
            "kernelspec": self.kernelspec,
            "display_name": self.display_name,
            "lock_digest": self.digest,
            "install": f"distrokernels sync {notebook.name}",
            "lock": self.lock.data,
        }

    @classmethod
    def from_metadata(cls, metadata: Any, source: str) -> Pin:
        """A pin read from a notebook, every value checked (InvalidInput otherwise)."""
        if not isinstance(metadata, dict) or metadata.get("version") != PIN_VERSION:
            raise InvalidInput(
                f"{source}: its pin is not a distrokernels pin (version {PIN_VERSION})",
                _PIN_AGAIN,
            )
        name, display = metadata.get("kernelspec"), metadata.get("display_name")
        if not isinstance(name, str) or not isinstance(display, str):
            raise InvalidInput(f"{source}: its pin names no kernelspec", _PIN_AGAIN)
        try:
            kernelspecs.validate_name(name)
            kernelspecs.validate_display_name(display)
        except InvalidInput as error:
            raise InvalidInput(f"{source}: in its pin, {error.what}", _PIN_AGAIN) from error
        pin = cls(name, display, locks.Lock.from_data(metadata.get("lock"), f"{source}'s lock"))
        if metadata.get("lock_digest") != pin.digest:
            raise InvalidInput(
                f"{source}: its pin's lock_digest does not match its lock (edited by hand?)",
                _PIN_AGAIN,
            )
        return pin


def read_pin(notebook: Any, source: str) -> Pin | None:
    """The notebook's pin; None when it has none."""
    metadata = notebook.metadata.get("distrokernels", {})
    if not isinstance(metadata, dict) or "pin" not in metadata:
        return None
    return Pin.from_metadata(metadata["pin"], source)


def read_notebook(path: Path) -> Any:
    """The notebook (nbformat 4), or one line saying why it cannot be read."""
    try:
        return nbformat.read(path, as_version=4)
    except (OSError, ValueError) as error:  # nbformat's NotJSONError is a ValueError
        message = str(error).splitlines()[0][:120] if str(error) else type(error).__name__
        raise InvalidInput(f"cannot read {path} as a notebook: {message}", "check it") from error


def notebooks_in(paths: Iterable[Path]) -> list[Path]:
    """The notebooks named, and those under the folders named (checkpoints skipped)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(
                notebook
                for notebook in path.rglob("*.ipynb")
                if not _SKIPPED_FOLDERS & set(notebook.relative_to(path).parts)
            )
        elif path.suffix == ".ipynb" and path.is_file():
            found.append(path)
        else:
            raise InvalidInput(f"{path} is neither a notebook nor a folder", "check the path")
    return found


def pin_notebook(path: Path, kernel: str | None = None) -> Pin:
    """Pin ``path`` to the lock of ``kernel`` (default: the notebook's own kernel)."""
    notebook = read_notebook(path)
    name = kernel or str(notebook.metadata.get("kernelspec", {}).get("name", ""))
    if not name:
        raise InvalidInput(f"{path} names no kernel", "pass --kernel NAME")
    try:
        installed = kernelspecs.find(name)
    except KernelspecNotFound as error:
        raise InvalidInput(
            f"{path}'s kernel {name!r} is not a distro kernel installed here",
            "pin distro kernels only (see `distrokernels list`), or pass --kernel NAME",
        ) from error
    lock = locks.Lock.from_text(installed.lock_text(), f"the lock of {name}")
    pin = Pin(name, str(installed.spec.get("display_name", name)), lock)
    notebook.metadata["kernelspec"] = {
        "name": name,
        "display_name": pin.display_name,
        "language": installed.spec.get("language", "python"),
    }
    distrokernels = dict(notebook.metadata.get("distrokernels", {}))
    distrokernels["pin"] = pin.to_metadata(path)
    notebook.metadata["distrokernels"] = distrokernels
    nbformat.validate(notebook)
    nbformat.write(notebook, path)
    return pin


def installed_digest(name: str) -> str | None:
    """The lock content digest of the installed kernel ``name``; None if not installed."""
    try:
        kernel = kernelspecs.find(name)
    except KernelspecNotFound:
        return None
    if not (Path(kernel.resource_dir) / kernelspecs.LOCK_FILE).is_file():
        return ""  # installed before locks existed: matches no pin
    return locks.Lock.from_text(kernel.lock_text(), f"the lock of {name}").content_digest


def check_drift(pin: Pin, source: str, digest: str | None) -> str:
    """'' when the installed kernel (its ``installed_digest``) is what the pin says;
    else why not, in one line."""
    if digest is None:
        return f"{source}'s kernel {pin.kernelspec!r} is not installed"
    if digest != pin.digest:
        moved = _what_moved(pin)
        return (
            f"{source} is pinned to {pin.kernelspec} with lock {short_id(pin.digest)}, but the "
            f"installed {pin.kernelspec} has lock {short_id(digest)}"
            + (f": {', '.join(moved)}" if moved else "")
        )
    return ""


def _what_moved(pin: Pin) -> list[str]:
    """Package by package, how the installed kernel differs from the pin's lock."""
    try:
        installed = locks.Lock.from_text(kernelspecs.find(pin.kernelspec).lock_text())
    except DistroKernelsError:
        return []
    return locks.differences(pin.lock, installed, same_base_id=False)


def pinned_by(folder: Path, skipped: Callable[[str], None]) -> dict[str, str]:
    """Per kernelspec the notebooks under ``folder`` pin: how many, and whether the
    installed kernel is what they pin (`list --notebooks`: drift seen before class).
    A notebook whose pin cannot be read is ``skipped`` (told why), not fatal."""
    pinned: dict[str, list[str]] = {}
    for path in notebooks_in([folder]):
        try:
            pin = read_pin(read_notebook(path), str(path))
        except InvalidInput as error:
            skipped(f"skipped {path}: {error.what}")
            continue
        if pin is not None:
            pinned.setdefault(pin.kernelspec, []).append(pin.digest)
    status = {}
    for name, digests in pinned.items():
        installed = installed_digest(name)
        drifted = sum(digest != installed for digest in digests)
        status[name] = (
            f"DRIFT: {drifted} of {len(digests)} pin another lock"
            if drifted
            else f"{len(digests)} notebook(s), same lock"
        )
    return status


class SyncOutcome(str, Enum):
    """What `sync` did for a notebook's kernel."""

    INSTALLED = "installed"
    DRIFTED = "installed, drifted"  # built from the pin, allowed to differ from it
    ALREADY_THERE = "already there"
    WOULD_INSTALL = "would install"  # a dry run
    NOT_PINNED = "not pinned"
    FAILED = "failed"


@dataclass(frozen=True)
class SyncResult:
    """One notebook's outcome, with what the table shows as its status."""

    notebook: Path
    kernel: str  # '' when the notebook has no pin
    outcome: SyncOutcome
    detail: str = ""  # why it failed; what a dry run would install from
    replaced_another_lock: bool = False

    @property
    def status(self) -> str:
        """'installed', 'failed: why', 'would install from its lock (debian:bookworm)'..."""
        text = self.outcome.value
        if self.detail:
            text += f": {self.detail}" if self.outcome is SyncOutcome.FAILED else f" {self.detail}"
        if self.replaced_another_lock:
            text += f" (replacing the {self.kernel} of another lock)"
        return text


def sync(
    paths: Iterable[Path],
    source: WheelSource,
    dry_run: bool = False,
    allow_drift: bool = False,
    progress: images.Progress = lambda line: None,
) -> list[SyncResult]:
    """Install the kernel each pinned notebook names, from its lock, once per kernel.

    Every pin is read and checked before anything is built; a malformed pin is
    refused (InvalidInput) and nothing is installed.
    """
    notebooks = notebooks_in(paths)
    read = {path: read_pin(read_notebook(path), str(path)) for path in notebooks}
    wanted: dict[str, Pin] = {}
    results: list[SyncResult | tuple[Path, str]] = []  # a pair: its kernel's outcome, below
    for path, pin in read.items():
        if pin is None:
            results.append(SyncResult(path, "", SyncOutcome.NOT_PINNED))
            continue
        first = wanted.setdefault(pin.kernelspec, pin)
        if first.digest != pin.digest:
            why = f"pinned to another lock of {pin.kernelspec} than other notebooks"
            results.append(SyncResult(path, pin.kernelspec, SyncOutcome.FAILED, why))
            continue
        results.append((path, pin.kernelspec))
    done = {
        name: _sync_kernel(pin, source, dry_run, allow_drift, progress)
        for name, pin in wanted.items()
    }
    return [
        result
        if isinstance(result, SyncResult)
        else dataclasses.replace(done[result[1]], notebook=result[0])
        for result in results
    ]


def _sync_kernel(
    pin: Pin, source: WheelSource, dry_run: bool, allow_drift: bool, progress: images.Progress
) -> SyncResult:
    """The kernel a pin names, installed from its lock unless it is there already."""
    name = pin.kernelspec
    before = installed_digest(name)
    if before == pin.digest:
        return SyncResult(Path(), name, SyncOutcome.ALREADY_THERE)
    if dry_run:
        outcome, detail = SyncOutcome.WOULD_INSTALL, f"from its lock ({pin.lock.base_reference})"
    else:
        outcome, detail = _install(pin, source, allow_drift, progress)
    replaced = before is not None and outcome is not SyncOutcome.FAILED
    return SyncResult(Path(), name, outcome, detail, replaced)


def _install(
    pin: Pin, source: WheelSource, allow_drift: bool, progress: images.Progress
) -> tuple[SyncOutcome, str]:
    note(progress, f"installing {pin.kernelspec} ({pin.display_name}) from its pinned lock")
    options = images.BuildOptions(
        extras=images.Extras(pin.lock.extras.pip, pin.lock.extras.packages),
        source=source,
        lock=pin.lock,
        allow_drift=allow_drift,
    )
    try:
        installer.install_kernel(
            pin.lock.base_reference,
            options,
            progress,
            name=pin.kernelspec,
            display_name=pin.display_name,
            replace=True,
            pull=not source.offline,
        )
    except DistroKernelsError as error:
        return SyncOutcome.FAILED, str(error)
    exact = installed_digest(pin.kernelspec) == pin.digest
    return (SyncOutcome.INSTALLED if exact else SyncOutcome.DRIFTED), ""
