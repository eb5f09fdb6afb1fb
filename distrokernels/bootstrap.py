"""Make a Debian base image from a package archive when no registry can be reached.

mmdebstrap (or debootstrap) writes a minimal root file system, which the engine
imports as ``debian:<suite>``. It needs root, or mmdebstrap's unshare mode. For another
architecture (``arch``), mmdebstrap's ``--architectures`` builds it (its maintainer
scripts run under the host's binfmt handler), and the image is stored under Docker
Hub's per-architecture name (``arm64v8/debian:bookworm``), recording its real
architecture: ``debian:bookworm`` keeps meaning the host's.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from .engine import Engine
from .errors import BootstrapFailed, InvalidInput
from .platforms import Architecture, official_repository
from .reporting import phase

DEFAULT_MIRROR = "http://deb.debian.org/debian"

# Every name Docker Hub's debian image uses for a suite, to the archive's codename.
_SUITES = {
    "bullseye": "bullseye",
    "11": "bullseye",
    "bookworm": "bookworm",
    "12": "bookworm",
    "trixie": "trixie",
    "13": "trixie",
    "sid": "sid",
    "unstable": "sid",
}


def debian_suite(reference: str) -> str:
    """'debian:12' -> 'bookworm'; '' when the reference is not a Debian suite we can build."""
    repository, _, tag = reference.partition(":")
    if repository not in ("debian", "docker.io/library/debian", "library/debian"):
        return ""
    return _SUITES.get(tag or "", "")


def bootstrap_debian(
    engine: Engine,
    reference: str,
    mirror: str = DEFAULT_MIRROR,
    include: tuple[str, ...] = (),
    progress: Callable[[str], None] = lambda line: None,
    arch: Architecture | None = None,
) -> tuple[str, str]:
    """Bootstrap ``reference`` (e.g. 'debian:bookworm') for ``arch`` (None: the host's)
    and import it; returns (the name it is stored under, the image id)."""
    suite = debian_suite(reference)
    if not suite:
        raise InvalidInput(
            f"{reference} is not a Debian suite distrokernels can bootstrap",
            f"use one of: {', '.join('debian:' + name for name in _SUITES)}",
        )
    stored = official_repository(reference, arch) if arch else reference
    with tempfile.TemporaryDirectory(prefix="distrokernels-bootstrap-") as tmp:
        tarball = Path(tmp) / f"{suite}.tar"
        command = _bootstrap_command(suite, tarball, mirror, include, Path(tmp) / "root", arch)
        what = f"{suite} for {arch.platform}" if arch else suite
        phase(progress, f"bootstrapping {what} from {mirror} ({command[0]})")
        result = subprocess.run(command, capture_output=True, text=True)
        for line in (result.stdout + result.stderr).splitlines():
            progress(line)
        if result.returncode != 0:
            raise BootstrapFailed(
                f"bootstrapping {suite} failed: {first_error(result.stderr or result.stdout)}",
                "check that the mirror is reachable and that you run as root "
                "(or that mmdebstrap's unshare mode works)",
            )
        if command[0] == "debootstrap":
            tarball = _tar_directory(Path(tmp) / "root", tarball)
        phase(progress, f"importing {tarball.stat().st_size // 2**20} MiB as {stored}")
        platform = arch.platform if arch else ""
        return stored, engine.import_rootfs(tarball, stored, ['CMD ["bash"]'], platform)


def first_error(output: str) -> str:
    """The tool's own first error line (apt's 'E: ...', mmdebstrap's 'E: ...'), which
    says why; else its last lines."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in lines:
        if re.match(r"(E:|Err:|error:|Error:|mmdebstrap: error)", line):
            return line[:300]
    return " | ".join(lines[-5:])


def _bootstrap_command(
    suite: str,
    tarball: Path,
    mirror: str,
    include: tuple[str, ...],
    root: Path,
    arch: Architecture | None = None,
) -> list[str]:
    extra = [f"--include={','.join(include)}"] if include else []
    if arch is not None:
        extra.append(f"--arch={arch.debian}")  # mmdebstrap's --architectures, debootstrap's
    if shutil.which("mmdebstrap"):
        return ["mmdebstrap", "--variant=minbase", "--quiet", *extra, suite, str(tarball), mirror]
    if shutil.which("debootstrap"):
        return ["debootstrap", "--variant=minbase", *extra, suite, str(root), mirror]
    raise BootstrapFailed(
        "neither mmdebstrap nor debootstrap is installed",
        "install one (sudo apt-get install mmdebstrap)",
    )


def _tar_directory(root: Path, tarball: Path) -> Path:
    subprocess.run(["tar", "-C", str(root), "-cf", str(tarball), "."], check=True)
    return tarball
