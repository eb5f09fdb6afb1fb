"""Which ipykernel stack fits an image's Python, and fetching its wheels on the host.

Containers often cannot reach PyPI, while the host's pip is configured for the
network it is on (index, proxy, certificates). So pip runs here, on the host, asked
for the *image's* platform: its Python version and ABI, its libc and architecture.
"""

from __future__ import annotations

import email.parser
import hashlib
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .errors import InvalidInput, WheelResolutionFailed

# The newest ipykernel stack each Python can run, checked against the index's
# Requires-Python. Older Pythons also need older pins of the packages whose newer
# releases dropped them without saying so in metadata pip can act on.
STACKS: dict[tuple[int, int], tuple[str, ...]] = {
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
OLDEST_PYTHON = min(STACKS)

# Architectures as Docker and uname name them, to the name wheel tags use.
_WHEEL_ARCH = {
    "amd64": "x86_64",
    "x86_64": "x86_64",
    "arm64": "aarch64",
    "aarch64": "aarch64",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
}


# Where the pinned stacks are known to have wheels; elsewhere a pin is an upper bound,
# since some binary wheels stop earlier there (tornado's last i686 wheel is 6.5.4).
PINNED_ARCHES = ("x86_64", "aarch64")


def ipykernel_stack(python: tuple[int, int], arch: str = "x86_64") -> tuple[str, ...]:
    """Requirements for the newest ipykernel that supports ``python`` (on ``arch``, as
    wheel tags name it: outside PINNED_ARCHES, the newest that has wheels there)."""
    if python < OLDEST_PYTHON:
        raise WheelResolutionFailed(
            f"Python {python[0]}.{python[1]} is older than any ipykernel supports",
            f"use an image with Python {OLDEST_PYTHON[0]}.{OLDEST_PYTHON[1]} or newer",
        )
    usable = [version for version in STACKS if version <= python]
    stack = STACKS[max(usable)]
    if arch in PINNED_ARCHES:
        return stack
    return tuple(requirement.replace("==", "<=") for requirement in stack)


def parse_requirements(lines: list[str]) -> tuple[str, ...]:
    """Requirement lines as a user writes them; comments and blanks dropped.

    Only names, extras and version specifiers: pip options, URLs and paths are refused,
    since the wheels are fetched on the host with its own index configuration.
    """
    requirements = []
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement as error:
            raise InvalidInput(
                f"{line[:60]!r} is not a Python requirement", "write it like numpy>=1.26"
            ) from error
        if requirement.url or line.startswith("-"):
            raise InvalidInput(f"{line[:60]!r} names a URL or pip option", "use name[==version]")
        requirements.append(str(requirement))
    return tuple(requirements)


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

    python_full_version: str  # '3.6.8': Requires-Python can say >=3.6.1
    libc: str  # "glibc" or "musl"
    libc_version: tuple[int, int]
    machine: str  # as Docker or uname says it: amd64, x86_64, arm64, ...

    @property
    def python(self) -> tuple[int, int]:
        return python_version(self.python_full_version)

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

    @property
    def project(self) -> str:
        """The normalized project name: 'jupyter_client' and 'Jupyter-Client' are one."""
        return canonicalize_name(self.name)


@dataclass(frozen=True)
class WheelSource:
    """Where pip looks: the host's configured index, plus a local wheelhouse; or, offline,
    the wheelhouse alone."""

    wheelhouse: Path | None = None
    offline: bool = False

    def pip_options(self) -> list[str]:
        options = ["--no-index"] if self.offline else []
        if self.wheelhouse is not None:
            options += ["--find-links", str(self.wheelhouse)]
        return options

    def hint(self) -> str:
        if self.offline:
            return f"add the missing wheels to {self.wheelhouse} (pip download -d DIR ...)"
        return "check the host's pip index configuration (pip config list)"


def download_wheels(
    requirements: tuple[str, ...],
    platform: Platform,
    dest: Path,
    progress: Callable[[str], None] = lambda line: None,
    source: WheelSource = WheelSource(),
    pinned: tuple[Wheel, ...] = (),
) -> list[Wheel]:
    """Download the requirements and all their dependencies as wheels for ``platform``.

    pip evaluates dependency markers (``python_version < "3.10"``) for the *host's*
    Python, not the target's; so after each round the wheels' own metadata is read with
    the image's marker environment and what is still missing is fetched, pinned to
    what is already there. ``pinned`` wheels (already in the image) are kept as they are
    and not downloaded again.
    """
    dest.mkdir(parents=True, exist_ok=True)
    wanted = tuple(requirements)
    for _ in range(6):
        _pip_download(wanted, platform, dest, progress, source, pinned)
        wanted = missing_requirements(dest, platform, pinned)
        if not wanted:
            break
        progress(f"also needed on Python {platform.python_full_version}: {' '.join(wanted)}")
    else:
        raise WheelResolutionFailed(
            f"the dependencies of {' '.join(requirements)} did not settle for "
            f"Python {platform.python_full_version}: still missing {' '.join(wanted)}",
            "pin them in distrokernels/wheels.py",
        )
    installed = {wheel.project for wheel in pinned}
    for path in dest.glob("*.whl"):
        if Wheel(path.name, "").project in installed:
            path.unlink()  # pip fetched what the image already has: keep the image's
    return _wheels_in(dest)


def download_locked(
    wheels: list[Wheel],
    platform: Platform,
    dest: Path,
    progress: Callable[[str], None] = lambda line: None,
    source: WheelSource = WheelSource(),
) -> list[Wheel]:
    """Download exactly these wheels, each checked against its recorded sha256."""
    dest.mkdir(parents=True, exist_ok=True)
    if not wheels:
        return []
    requirements = dest.parent / f"{dest.name}-locked.txt"
    requirements.write_text(
        "".join(f"{w.name}=={w.version} --hash=sha256:{w.sha256}\n" for w in wheels)
    )
    _pip_download(
        ("--no-deps", "--require-hashes", "-r", str(requirements)), platform, dest, progress, source
    )
    return _wheels_in(dest)


def _wheels_in(folder: Path) -> list[Wheel]:
    return sorted(
        (Wheel(path.name, _sha256(path)) for path in folder.glob("*.whl")),
        key=lambda wheel: wheel.filename,
    )


def marker_environment(platform: Platform) -> dict[str, str]:
    """PEP 508 marker values as the image's interpreter would report them."""
    version = ".".join(platform.python_full_version.split(".")[:2])
    return {
        "implementation_name": "cpython",
        "implementation_version": platform.python_full_version,
        "os_name": "posix",
        "platform_machine": platform.arch,
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": "Linux",
        "platform_version": "",
        "python_full_version": platform.python_full_version,
        "python_version": version,
        "sys_platform": "linux",
        "extra": "",
    }


def missing_requirements(
    dest: Path, platform: Platform, pinned: tuple[Wheel, ...] = ()
) -> tuple[str, ...]:
    """Requirements of the downloaded wheels that apply on ``platform`` but have no wheel."""
    environment = marker_environment(platform)
    present = {Wheel(path.name, "").project for path in dest.glob("*.whl")}
    present |= {wheel.project for wheel in pinned}
    missing = set()
    for path in dest.glob("*.whl"):
        for line in _requires_dist(path):
            requirement = Requirement(line)
            if requirement.marker and not requirement.marker.evaluate(environment):
                continue
            if canonicalize_name(requirement.name) not in present:
                requirement.marker = None
                missing.add(str(requirement))
    return tuple(sorted(missing))


def _requires_dist(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.parser.Parser().parsestr(archive.read(name).decode())
    return metadata.get_all("Requires-Dist") or []


def _pip_download(
    requirements: tuple[str, ...],
    platform: Platform,
    dest: Path,
    progress: Callable[[str], None],
    source: WheelSource,
    pinned: tuple[Wheel, ...] = (),
) -> None:
    # What is already downloaded or installed stays as it is: later rounds only add.
    constraints = dest.parent / f"{dest.name}-constraints.txt"
    present = [*pinned, *(Wheel(path.name, "") for path in dest.glob("*.whl"))]
    constraints.write_text("".join(f"{wheel.name}=={wheel.version}\n" for wheel in present))
    command = [
        sys.executable, "-m", "pip", "download",
        "--dest", str(dest),
        "--only-binary=:all:",
        "--progress-bar", "off",
        "--python-version", platform.python_full_version,
        "--implementation", "cp",
    ]  # fmt: skip
    for tag in platform.pip_platforms():
        command += ["--platform", tag]
    command += [*source.pip_options(), "--constraint", str(constraints), *requirements]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    tail: list[str] = []
    for line in process.stdout:
        line = line.rstrip()
        tail = [*tail[-15:], line]
        if line.startswith(("Collecting", "Saved", "Downloading", "File was already")):
            progress(line)
    if process.wait() != 0:
        errors = [
            line[:200] for line in tail if "ERROR" in line and "Ignored the following" not in line
        ]
        raise WheelResolutionFailed(
            f"pip could not find wheels for Python {platform.python_full_version} "
            f"on {platform.libc} {platform.libc_version[0]}.{platform.libc_version[1]} "
            f"{platform.arch}: {' '.join(errors or tail[-2:])}",
            source.hint(),
        )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def python_version(text: str) -> tuple[int, int]:
    """'3.11.2' or '3.11' to (3, 11)."""
    match = re.match(r"(\d+)\.(\d+)", text.strip())
    if not match:
        raise ValueError(f"not a Python version: {text!r}")
    return int(match.group(1)), int(match.group(2))
