"""What distro an image holds, read from its own /etc/os-release, and how to name it.

The image's name says nothing reliable (``myorg/base:latest``), so every name, slug
and logo comes from the os-release file that the distro itself ships.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

# Short names users know the distros by, where os-release's NAME is long or odd.
_SHORT_NAMES = {
    "almalinux": "AlmaLinux",
    "alpine": "Alpine",
    "amzn": "Amazon Linux",
    "arch": "Arch Linux",
    "centos": "CentOS",
    "debian": "Debian",
    "fedora": "Fedora",
    "ol": "Oracle Linux",
    "opensuse-leap": "openSUSE Leap",
    "opensuse-tumbleweed": "openSUSE Tumbleweed",
    "rhel": "RHEL",
    "rocky": "Rocky Linux",
    "sles": "SLES",
    "ubuntu": "Ubuntu",
}

# Products that share an ID with another, told apart by NAME: (ID, NAME) -> (name, slug).
_PRODUCTS = {("centos", "CentOS Stream"): ("CentOS Stream", "centos-stream")}

# Rolling releases: their VERSION_ID is a build date, not a version anyone names.
_ROLLING = {"arch", "opensuse-tumbleweed"}

# Families, most specific first: the ID, then each ID_LIKE entry, is looked up here.
_FAMILIES = {
    "debian": "debian",
    "ubuntu": "debian",
    "centos": "rhel",
    "rhel": "rhel",
    "rocky": "rhel",
    "almalinux": "rhel",
    "ol": "rhel",
    "fedora": "fedora",
    "amzn": "amzn",
    "opensuse-leap": "suse",
    "opensuse-tumbleweed": "suse",
    "opensuse": "suse",
    "sles": "suse",
    "suse": "suse",
    "alpine": "alpine",
    "arch": "arch",
}


@dataclass(frozen=True)
class OsRelease:
    """The fields of os-release(5) that distrokernels uses."""

    id: str
    version_id: str = ""
    name: str = ""
    pretty_name: str = ""
    version_codename: str = ""
    id_like: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def parse(cls, text: str) -> OsRelease:
        """Parse os-release text: KEY=value lines, values quoted as in a shell."""
        values: dict[str, str] = {}
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            key, _, raw = line.partition("=")
            try:
                parts = shlex.split(raw)
            except ValueError:
                parts = [raw.strip("\"'")]
            values[key.strip()] = " ".join(parts)
        return cls(
            id=values.get("ID", "linux").lower(),
            version_id=values.get("VERSION_ID", ""),
            name=values.get("NAME", ""),
            pretty_name=values.get("PRETTY_NAME", ""),
            version_codename=values.get("VERSION_CODENAME", ""),
            id_like=tuple(values.get("ID_LIKE", "").lower().split()),
        )

    @property
    def family(self) -> str:
        """The family whose package manager and logo apply: 'debian', 'rhel', ... or ''."""
        for candidate in (self.id, *self.id_like):
            if candidate in _FAMILIES:
                return _FAMILIES[candidate]
        return ""

    @property
    def version(self) -> str:
        """The version people say: '12', '22.04', '15.6'; a codename when there is no number."""
        if self.id in _ROLLING:
            return ""
        if self.version_id:
            return self.version_id
        return self.version_codename

    @property
    def display_name(self) -> str:
        """'Debian 12', 'CentOS 7', 'openSUSE Leap 15.6', 'Arch Linux'."""
        product = _PRODUCTS.get((self.id, self.name))
        base = product[0] if product else _SHORT_NAMES.get(self.id) or self.name or self.id
        return f"{base} {self.version}".strip()

    @property
    def slug(self) -> str:
        """A name safe for kernelspecs and image repositories: 'debian-12', 'ubuntu-22.04'."""
        product = _PRODUCTS.get((self.id, self.name))
        stem = product[1] if product else self.id
        return slugify(f"{stem}-{self.version}" if self.version else stem)


def slugify(text: str) -> str:
    """Lower-case letters, digits, dots and dashes only; never empty."""
    slug = re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.")
    return slug or "linux"
