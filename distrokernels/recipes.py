"""Per-family recipes: how a distro's package manager puts a python3 into an image.

A recipe only knows its distro family. Everything else (wheels, the venv, labels) is
the same for every distro and lives in images.py. Adding a distro family is adding a
``Recipe`` subclass here and listing it in ``RECIPES``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from .distros import OsRelease
from .errors import NoRecipe


class Recipe(ABC):
    """How one family of distros gets a Python interpreter."""

    family: ClassVar[str]
    #: The command that lists installed distro packages as "name version" lines.
    package_query: ClassVar[str]

    @abstractmethod
    def matches(self, os_release: OsRelease) -> bool:
        """Whether this recipe applies to the distro."""

    @abstractmethod
    def install_python(self, os_release: OsRelease) -> str:
        """A shell command (one RUN) that installs python3 and leaves no caches behind."""

    def python_path(self, os_release: OsRelease) -> str:
        """The interpreter ``install_python`` provides."""
        return "/usr/bin/python3"


class AptRecipe(Recipe):
    """Debian and Ubuntu. The venv keeps PEP 668's externally-managed system Python intact."""

    family = "debian"
    package_query = "dpkg-query -W -f '${Package} ${Version}\\n'"

    def matches(self, os_release: OsRelease) -> bool:
        return os_release.family == "debian"

    def install_python(self, os_release: OsRelease) -> str:
        return (
            "export DEBIAN_FRONTEND=noninteractive"
            " && apt-get update"
            " && apt-get install -y --no-install-recommends python3"
            " && apt-get clean"
            " && rm -rf /var/lib/apt/lists/*"
        )


RECIPES: tuple[Recipe, ...] = (AptRecipe(),)


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
