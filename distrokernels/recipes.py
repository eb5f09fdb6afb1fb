"""Per-family recipes: how a distro's package manager puts a python3 into an image.

A recipe only knows its distro family. Everything else (wheels, the venv, labels) is
the same for every distro and lives in images.py. Adding a distro family is adding a
``Recipe`` subclass here and listing it in ``RECIPES``.
"""

from __future__ import annotations

import re
import shlex
from abc import ABC, abstractmethod
from typing import ClassVar

from .checks import require
from .distros import OsRelease
from .errors import NoRecipe


class Recipe(ABC):
    """How one family of distros gets a Python interpreter."""

    family: ClassVar[str]
    #: Whether the recipe should replace an image's python3 older than 3.8 with a newer
    #: one from the same archive (EL8 and Leap 15 ship 3.6 beside python3.11 packages).
    upgrades_old_python: ClassVar[bool] = False

    @abstractmethod
    def matches(self, os_release: OsRelease) -> bool:
        """Whether this recipe applies to the distro."""

    @abstractmethod
    def install_packages(self, os_release: OsRelease, names: tuple[str, ...]) -> str:
        """A shell command (one RUN) that installs distro packages, leaving no caches."""

    def install_python(self, os_release: OsRelease) -> str:
        """A shell command (one RUN) that installs python3 and leaves no caches behind."""
        return self.install_packages(os_release, ("python3",))

    def python_path(self, os_release: OsRelease) -> str:
        """The interpreter ``install_python`` is expected to provide (the build probes it)."""
        return "/usr/bin/python3"


def _first_available(install: str, packages: tuple[str, ...]) -> str:
    """Install the first package of ``packages`` the archive has: newest Python first."""
    names = " ".join(packages)
    return f'for p in {names}; do {install} "$p" && break; done'


class AptRecipe(Recipe):
    """Debian and Ubuntu. The venv keeps PEP 668's externally-managed system Python intact."""

    family = "debian"

    def matches(self, os_release: OsRelease) -> bool:
        return os_release.family == "debian"

    def install_packages(self, os_release: OsRelease, names: tuple[str, ...]) -> str:
        return (
            "export DEBIAN_FRONTEND=noninteractive && apt-get update"
            f" && apt-get install -y --no-install-recommends {quote(names)}"
            " && apt-get clean && rm -rf /var/lib/apt/lists/*"
        )

    def install_python(self, os_release: OsRelease) -> str:
        return (
            "export DEBIAN_FRONTEND=noninteractive"
            " && apt-get update"
            " && apt-get install -y --no-install-recommends python3"
            # pip below Python 3.10 imports distutils, which Debian ships apart.
            " && if python3 -c 'import sys; sys.exit(sys.version_info >= (3, 10))'"
            " && ! python3 -c 'import distutils.cmd' 2>/dev/null;"
            " then apt-get install -y --no-install-recommends python3-distutils; fi"
            " && apt-get clean"
            " && rm -rf /var/lib/apt/lists/*"
        )


# CentOS 7 is end of life: mirrorlist.centos.org is gone, the packages live on in the vault.
CENTOS7_VAULT = (
    "sed -i -e 's|^mirrorlist=|#mirrorlist=|'"
    " -e 's|^#\\?baseurl=http://mirror.centos.org/centos/\\$releasever|"
    "baseurl=http://vault.centos.org/7.9.2009|'"
    " /etc/yum.repos.d/*.repo"
)


class YumRecipe(Recipe):
    """CentOS 7 (from the vault) and Amazon Linux 2: yum, python3 3.6 / 3.7."""

    family = "yum"

    def matches(self, os_release: OsRelease) -> bool:
        return (os_release.id, os_release.version_id.split(".")[0]) in (
            ("centos", "7"),
            ("amzn", "2"),
        )

    def install_packages(self, os_release: OsRelease, names: tuple[str, ...]) -> str:
        steps = [CENTOS7_VAULT] if os_release.id == "centos" else []
        steps += [f"yum install -y {quote(names)}", "yum clean all", "rm -rf /var/cache/yum"]
        return " && ".join(steps)


class DnfRecipe(Recipe):
    """Fedora, Amazon Linux 2023 and the EL family (CentOS Stream, RHEL/UBI, Rocky, Alma,
    Oracle): dnf, or microdnf on minimal images; the newest python3.X module on EL."""

    family = "dnf"
    upgrades_old_python = True

    def matches(self, os_release: OsRelease) -> bool:
        return os_release.family in ("rhel", "fedora", "amzn")

    _INSTALL = "$dnf install -y --nodocs --setopt=install_weak_deps=0"
    _DNF = "dnf=$(command -v dnf || command -v microdnf)"
    _CLEAN = "$dnf clean all && rm -rf /var/cache/dnf /var/cache/yum"

    def install_packages(self, os_release: OsRelease, names: tuple[str, ...]) -> str:
        return f"{self._DNF} && {self._INSTALL} {quote(names)} && {self._CLEAN}"

    def install_python(self, os_release: OsRelease) -> str:
        el = os_release.family == "rhel"
        packages = ("python3.12", "python3.11", "python39", "python3") if el else ("python3",)
        return f"{self._DNF} && {_first_available(self._INSTALL, packages)} && {self._CLEAN}"


class ZypperRecipe(Recipe):
    """openSUSE Leap and Tumbleweed, SLES/BCI: zypper; Leap 15's python3 is 3.6, so the
    newest pythonXY package is preferred."""

    family = "suse"
    upgrades_old_python = True

    def matches(self, os_release: OsRelease) -> bool:
        return os_release.family == "suse"

    _INSTALL = "zypper --non-interactive install --no-recommends"

    def install_packages(self, os_release: OsRelease, names: tuple[str, ...]) -> str:
        return f"{self._INSTALL} {quote(names)} && zypper clean --all"

    def install_python(self, os_release: OsRelease) -> str:
        rolling = os_release.id == "opensuse-tumbleweed"
        packages = ("python3",) if rolling else ("python313", "python312", "python311", "python3")
        return f"{_first_available(self._INSTALL, packages)} && zypper clean --all"


class ApkRecipe(Recipe):
    """Alpine: musl, so the wheels are musllinux ones (the probe reports the libc)."""

    family = "alpine"

    def matches(self, os_release: OsRelease) -> bool:
        return os_release.family == "alpine"

    def install_packages(self, os_release: OsRelease, names: tuple[str, ...]) -> str:
        return f"apk add --no-cache {quote(names)}"


class PacmanRecipe(Recipe):
    """Arch Linux: a rolling release whose python is always current."""

    family = "arch"

    def matches(self, os_release: OsRelease) -> bool:
        return os_release.family == "arch"

    def install_packages(self, os_release: OsRelease, names: tuple[str, ...]) -> str:
        return f"pacman -Sy --noconfirm --needed {quote(names)} && pacman -Scc --noconfirm"

    def install_python(self, os_release: OsRelease) -> str:
        return self.install_packages(os_release, ("python",))

    def python_path(self, os_release: OsRelease) -> str:
        return "/usr/bin/python"


# Most specific first: CentOS 7 and Amazon Linux 2 are in the rhel/amzn families too.
RECIPES: tuple[Recipe, ...] = (
    AptRecipe(),
    YumRecipe(),
    DnfRecipe(),
    ZypperRecipe(),
    ApkRecipe(),
    PacmanRecipe(),
)


_PACKAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+_:~=<>-]{0,127}$")


def validate_package_names(names: tuple[str, ...]) -> tuple[str, ...]:
    """Distro package names as package managers spell them; anything else is refused."""
    for name in names:
        require(
            _PACKAGE_NAME,
            name,
            "a distro package name",
            "pass names like build-essential, gcc or libxml2-dev to --packages",
        )
    return names


def quote(names: tuple[str, ...]) -> str:
    return " ".join(shlex.quote(name) for name in validate_package_names(names))


def recipe_for(os_release: OsRelease) -> Recipe:
    """The recipe that installs Python on this distro, or an error that says how to add one."""
    for recipe in RECIPES:
        if recipe.matches(os_release):
            return recipe
    known = ", ".join(sorted({r.family for r in RECIPES}))
    raise NoRecipe(
        f"the image has no python3 and distrokernels has no recipe for "
        f"'{os_release.id}' (family '{os_release.family or 'unknown'}'; known: {known})",
        "use an image that already has python3, or add a Recipe subclass in "
        "distrokernels/recipes.py",
    )
