"""The lock: what a kernel image is made of, recorded at build time and compared later.

A teacher's notebook re-runs in the same userland when the kernel is rebuilt from its
lock: the base image by id (or registry digest), the exact wheels with their sha256,
and the distro packages, whose versions are checked after the rebuild.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from .checks import require, validate_reference
from .engine import Engine
from .errors import InvalidInput
from .ids import short_id
from .platforms import architecture
from .recipes import validate_package_names
from .wheels import Wheel, parse_requirements

LOCK_VERSION = 1
DEFAULT_PLATFORM = "linux/amd64"  # what a lock that names no platform was built for

# Whichever package database the image has, as "name version" lines.
PACKAGE_QUERY = r"""
if command -v dpkg-query >/dev/null 2>&1; then dpkg-query -W -f '${Package} ${Version}\n'
elif command -v rpm >/dev/null 2>&1; then rpm -qa --qf '%{NAME} %{VERSION}-%{RELEASE}\n'
elif command -v pacman >/dev/null 2>&1; then pacman -Q
elif command -v apk >/dev/null 2>&1; then apk info -v 2>/dev/null
fi
"""
_APK_ENTRY = re.compile(r"^(?P<name>.+)-(?P<version>\d[^-]*-r\d+)$")


def parse_packages(text: str) -> dict[str, str]:
    """'name version' lines (or apk's 'name-version-rN') to a name -> version map."""
    packages = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            packages[parts[0]] = parts[1]
        elif len(parts) == 1 and (match := _APK_ENTRY.match(parts[0])):
            packages[match.group("name")] = match.group("version")
    return packages


def query_packages(engine: Engine, image: str) -> dict[str, str]:
    return parse_packages(engine.run_script(image, PACKAGE_QUERY))


@dataclass(frozen=True)
class Lock:
    data: dict[str, Any]

    @property
    def compact(self) -> str:
        """One line of canonical JSON: what the digest is taken of, and the image label."""
        return json.dumps(self.data, sort_keys=True, separators=(",", ":"))

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.compact.encode()).hexdigest()

    def to_text(self) -> str:
        return json.dumps(self.data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_text(cls, text: str, source: str = "the lock") -> Lock:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise InvalidInput(
                f"{source} is not JSON ({error})", "pass a file from export"
            ) from error
        return cls.from_data(data, source)

    @classmethod
    def from_data(cls, data: Any, source: str = "the lock") -> Lock:
        """A lock from parsed JSON, every value checked: a lock travels in notebooks and
        files from other people, and its names reach pip and the package manager."""
        required = {"version", "base", "wheels", "distro_packages", "extras"}
        if (
            not isinstance(data, dict)
            or data.get("version") != LOCK_VERSION
            or (required - set(data))
        ):
            raise InvalidInput(
                f"{source} is not a distrokernels lock (version {LOCK_VERSION})",
                "make one with `distrokernels export NAME > kernel.lock`",
            )
        remake = "make it again with `distrokernels export NAME` or `distrokernels pin`"
        try:
            _check(data)
        except InvalidInput as error:
            raise InvalidInput(f"{source}: {error.what}", remake) from error
        except (KeyError, TypeError, AttributeError, ValueError) as error:
            raise InvalidInput(
                f"{source} is malformed ({type(error).__name__}: {str(error)[:80]})", remake
            ) from error
        return cls(data)

    @property
    def content_digest(self) -> str:
        """The digest of what the userland is made of: the lock without the base image's
        id and registry digest. A bootstrapped base gets another id on every machine
        (file times) with the same packages; the packages themselves are in the lock."""
        base = {k: v for k, v in self.data["base"].items() if k not in ("id", "digest")}
        content = json.dumps({**self.data, "base": base}, sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(content.encode()).hexdigest()

    @property
    def base_id(self) -> str:
        return str(self.data["base"]["id"])

    @property
    def base_reference(self) -> str:
        return str(self.data["base"]["reference"])

    @property
    def platform(self) -> str:
        """The userland's platform: 'linux/arm64'; a lock without one is linux/amd64's."""
        return str(self.data["base"].get("platform", DEFAULT_PLATFORM))

    @property
    def base_digest(self) -> str:
        return str(self.data["base"].get("digest", ""))

    def wheels(self, key: str = "wheels") -> list[Wheel]:
        return [Wheel(entry["filename"], entry["sha256"]) for entry in self.data[key]]

    @property
    def extras(self) -> LockedExtras:
        """What was asked for on top of the kernel: wheels' requirements, distro packages."""
        extras = self.data["extras"]
        return LockedExtras(tuple(extras["pip"]), tuple(extras["packages"]))


@dataclass(frozen=True)
class LockedExtras:
    """The extras a lock records, as pip and the package manager are given them."""

    pip: tuple[str, ...]
    packages: tuple[str, ...]


_SHA256 = re.compile(r"[0-9a-f]{64}")
_IMAGE_ID = re.compile(r"sha256:[0-9a-f]{64}")
_WHEEL_FILE = re.compile(r"[A-Za-z0-9_.+!-]{1,200}\.whl")
_PYTHON = re.compile(r"[0-9]{1,2}\.[0-9]{1,3}(\.[0-9]{1,3})?")
_DISTRO_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+~:_-]{0,127}")


def _check(data: dict[str, Any]) -> None:
    """Every value of a lock as distrokernels writes them; InvalidInput (or a KeyError,
    TypeError, ValueError of a wrong shape) otherwise."""
    base = data["base"]
    validate_reference(str(base["reference"]))
    require(_IMAGE_ID, base["id"], "an image id", "", "base image id")
    architecture(str(base.get("platform", DEFAULT_PLATFORM)))
    if not isinstance(base.get("digest", ""), str):
        raise InvalidInput(f"base image digest {str(base['digest'])[:80]!r} is not a digest", "")
    if "python" in data:
        require(_PYTHON, data["python"], "a version", "", "python")
    for key in ("wheels", "extra_wheels"):
        for wheel in data.get(key, []):
            require(_WHEEL_FILE, wheel["filename"], "a wheel's file name", "", key)
            require(_SHA256, wheel["sha256"], "a sha256", "", wheel["filename"])
    if parse_requirements(list(data["extras"]["pip"])) != tuple(data["extras"]["pip"]):
        raise InvalidInput("its extra requirements are not written as pip writes them", "")
    validate_package_names(tuple(data["extras"]["packages"]))
    for name, version in data["distro_packages"].items():
        validate_package_names((name,))
        require(_DISTRO_VERSION, version, "a version", "", f"distro package {name}")


def _versions(wheels: list[Wheel]) -> dict[str, str]:
    """Distribution name -> version, from wheel file names (name-version-...whl)."""
    versions = {}
    for wheel in wheels:
        name, _, rest = wheel.filename.partition("-")
        versions[name.lower().replace("_", "-")] = rest.split("-")[0]
    return versions


def _moved(want: dict[str, str], have: dict[str, str]) -> list[str]:
    """'platformdirs 4.14.8 -> 4.14.9', 'six 1.16.0 is missing', 'rich 13.0 was added'."""
    found = []
    for name in sorted(set(want) | set(have)):
        if name not in have:
            found.append(f"{name} {want[name]} is missing")
        elif name not in want:
            found.append(f"{name} {have[name]} was added")
        elif want[name] != have[name]:
            found.append(f"{name} {want[name]} -> {have[name]}")
    return found


def make_lock(
    base_reference: str,
    base_id: str,
    base_digest: str,
    python: str,
    wheels: list[Wheel],
    extra_wheels: list[Wheel],
    extras_pip: tuple[str, ...],
    extras_packages: tuple[str, ...],
    distro_packages: dict[str, str],
    platform: str = DEFAULT_PLATFORM,
) -> Lock:
    base = {"reference": base_reference, "id": base_id, "digest": base_digest}
    if platform != DEFAULT_PLATFORM:  # locks made before platforms were recorded are amd64's
        base["platform"] = platform
    return Lock(
        {
            "version": LOCK_VERSION,
            "base": base,
            "python": python,
            "wheels": [{"filename": w.filename, "sha256": w.sha256} for w in wheels],
            "extra_wheels": [{"filename": w.filename, "sha256": w.sha256} for w in extra_wheels],
            "extras": {"pip": list(extras_pip), "packages": list(extras_packages)},
            "distro_packages": dict(sorted(distro_packages.items())),
        }
    )


def differences(
    expected: Lock, actual: Lock, limit: int = 8, same_base_id: bool = True
) -> list[str]:
    """What the rebuilt kernel has that the lock did not say, most telling first.

    ``same_base_id=False``: the base was rebuilt the way the lock says (the same suite
    bootstrapped again), so its id differs by nature; its packages are compared.
    """
    found = []
    if same_base_id and expected.base_id != actual.base_id:
        found.append(
            f"base image {short_id(actual.base_id)} instead of {short_id(expected.base_id)}"
        )
    if expected.data.get("python") != actual.data.get("python"):
        found.append(f"Python {actual.data.get('python')} instead of {expected.data.get('python')}")
    for key in ("wheels", "extra_wheels"):
        found += _moved(_versions(expected.wheels(key)), _versions(actual.wheels(key)))
    want_packages = expected.data["distro_packages"]
    have_packages = actual.data["distro_packages"]
    for name in sorted(set(want_packages) | set(have_packages)):
        want, have = want_packages.get(name), have_packages.get(name)
        if want != have:
            found.append(f"distro package {name} {want or 'absent'} -> {have or 'absent'}")
    if len(found) > limit:
        found = [*found[:limit], f"and {len(found) - limit} more"]
    return found
