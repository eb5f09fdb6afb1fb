"""Which ipykernel stack fits an image's Python, and fetching its wheels on the host.

Containers often cannot reach PyPI, while the host's pip is configured for the
network it is on (index, proxy, certificates). So pip runs here, on the host, asked
for the *image's* platform: its Python version and ABI, its libc and architecture.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import WheelResolutionFailed

# The newest ipykernel stack each Python can run, checked against the index's
# Requires-Python. Older Pythons also need older pins of the packages whose newer
# releases dropped them without saying so in metadata pip can act on.
_STACKS: dict[tuple[int, int], tuple[str, ...]] = {
    (3, 6): (
        "ipykernel==5.5.6",
        "ipython==7.16.3",
        "traitlets==4.3.3",
        "tornado==6.1",
        "pyzmq==25.1.2",
        "jupyter_client==7.1.2",
        "jupyter_core==4.9.2",
        "pip==21.3.1",
    ),
    (3, 7): ("ipykernel==6.16.2", "jupyter_client==7.4.9", "pip==24.0"),
    (3, 8): ("ipykernel==6.29.5", "jupyter_client==8.6.3", "pip==25.0.1"),
    (3, 9): ("ipykernel==6.31.0", "pip"),
    (3, 10): ("ipykernel==7.3.0", "pip"),
    (3, 11): ("ipykernel==7.4.0", "pip"),
}
OLDEST_PYTHON = min(_STACKS)

# Architectures as Docker and uname name them, to the name wheel tags use.
_WHEEL_ARCH = {
    "amd64": "x86_64",
    "x86_64": "x86_64",
    "arm64": "aarch64",
    "aarch64": "aarch64",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
}


def ipykernel_stack(python: tuple[int, int]) -> tuple[str, ...]:
    """Requirements for the newest ipykernel that supports ``python``."""
    if python < OLDEST_PYTHON:
        raise WheelResolutionFailed(
            f"Python {python[0]}.{python[1]} is older than any ipykernel supports",
            f"use an image with Python {OLDEST_PYTHON[0]}.{OLDEST_PYTHON[1]} or newer",
        )
    usable = [version for version in _STACKS if version <= python]
    return _STACKS[max(usable)]


def pinned_version(requirements: tuple[str, ...], package: str) -> str:
    """The version ``package==X`` pins in ``requirements``, or ''."""
    for requirement in requirements:
        name, _, version = requirement.partition("==")
        if name == package:
            return version
    return ""


@dataclass(frozen=True)
class Platform:
    """What a wheel must match to run in the image."""

    python: tuple[int, int]
    libc: str  # "glibc" or "musl"
    libc_version: tuple[int, int]
    machine: str  # as Docker or uname says it: amd64, x86_64, arm64, ...

    @property
    def arch(self) -> str:
        return _WHEEL_ARCH.get(self.machine, self.machine)

    def pip_platforms(self) -> list[str]:
        """Every platform tag the image accepts, newest first (pip wants them spelled out)."""
        major, minor = self.libc_version
        if self.libc == "musl":
            return [f"musllinux_{major}_{m}_{self.arch}" for m in range(minor, 0, -1)]
        tags = [f"manylinux_{major}_{m}_{self.arch}" for m in range(minor, 4, -1)]
        legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
        for floor, name in legacy.items():
            if major == 2 and minor >= floor and (floor == 17 or self.arch in ("x86_64", "i686")):
                tags.append(f"{name}_{self.arch}")
        return tags


@dataclass(frozen=True)
class Wheel:
    filename: str
    sha256: str

    @property
    def name(self) -> str:
        return self.filename.split("-")[0]

    @property
    def version(self) -> str:
        return self.filename.split("-")[1]


def download_wheels(
    requirements: tuple[str, ...],
    platform: Platform,
    dest: Path,
    progress: Callable[[str], None] = lambda line: None,
) -> list[Wheel]:
    """Download the requirements and all their dependencies as wheels for ``platform``."""
    dest.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "pip", "download",
        "--dest", str(dest),
        "--only-binary=:all:",
        "--progress-bar", "off",
        "--python-version", f"{platform.python[0]}.{platform.python[1]}",
        "--implementation", "cp",
    ]  # fmt: skip
    for tag in platform.pip_platforms():
        command += ["--platform", tag]
    command += list(requirements)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    tail: list[str] = []
    for line in process.stdout:
        line = line.rstrip()
        tail = [*tail[-15:], line]
        if line.startswith(("Collecting", "Saved", "Downloading", "File was already")):
            progress(line)
    if process.wait() != 0:
        errors = [line for line in tail if "ERROR" in line] or tail[-3:]
        raise WheelResolutionFailed(
            f"pip could not find wheels for Python {platform.python[0]}.{platform.python[1]} "
            f"on {platform.libc} {platform.libc_version[0]}.{platform.libc_version[1]} "
            f"{platform.arch}: {' '.join(errors)}",
            "check the host's pip index configuration (pip config list)",
        )
    return sorted(
        (Wheel(path.name, _sha256(path)) for path in dest.glob("*.whl")),
        key=lambda wheel: wheel.filename,
    )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def python_version(text: str) -> tuple[int, int]:
    """'3.11.2' or '3.11' to (3, 11)."""
    match = re.match(r"(\d+)\.(\d+)", text.strip())
    if not match:
        raise ValueError(f"not a Python version: {text!r}")
    return int(match.group(1)), int(match.group(2))
