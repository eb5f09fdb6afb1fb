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

from .engine import Engine
from .errors import InvalidInput
from .wheels import Wheel

LOCK_VERSION = 1

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
        return cls(data)

    @property
    def base_id(self) -> str:
        return str(self.data["base"]["id"])

    @property
    def base_reference(self) -> str:
        return str(self.data["base"]["reference"])

    @property
    def base_digest(self) -> str:
        return str(self.data["base"].get("digest", ""))

    def wheels(self, key: str = "wheels") -> list[Wheel]:
        return [Wheel(entry["filename"], entry["sha256"]) for entry in self.data[key]]

    @property
    def extras(self) -> dict[str, list[str]]:
        extras: dict[str, list[str]] = self.data["extras"]
        return extras


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
) -> Lock:
    return Lock(
        {
            "version": LOCK_VERSION,
            "base": {"reference": base_reference, "id": base_id, "digest": base_digest},
            "python": python,
            "wheels": [{"filename": w.filename, "sha256": w.sha256} for w in wheels],
            "extra_wheels": [{"filename": w.filename, "sha256": w.sha256} for w in extra_wheels],
            "extras": {"pip": list(extras_pip), "packages": list(extras_packages)},
            "distro_packages": dict(sorted(distro_packages.items())),
        }
    )


def differences(expected: Lock, actual: Lock, limit: int = 8) -> list[str]:
    """What the rebuilt kernel has that the lock did not say, most telling first."""
    found = []
    if expected.base_id != actual.base_id:
        found.append(f"base image {actual.base_id[:19]} instead of {expected.base_id[:19]}")
    if expected.data.get("python") != actual.data.get("python"):
        found.append(f"Python {actual.data.get('python')} instead of {expected.data.get('python')}")
    for key in ("wheels", "extra_wheels"):
        want = {w.filename for w in expected.wheels(key)}
        have = {w.filename for w in actual.wheels(key)}
        found += [f"wheel {name} is missing" for name in sorted(want - have)]
        found += [f"wheel {name} was not in the lock" for name in sorted(have - want)]
    want_packages = expected.data["distro_packages"]
    have_packages = actual.data["distro_packages"]
    for name in sorted(set(want_packages) | set(have_packages)):
        want, have = want_packages.get(name), have_packages.get(name)
        if want != have:
            found.append(f"distro package {name}: {have or 'absent'} instead of {want or 'absent'}")
    if len(found) > limit:
        found = [*found[:limit], f"and {len(found) - limit} more"]
    return found
