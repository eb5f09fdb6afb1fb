"""Which kernelspecs still want an image: references that every user of an engine sees.

Kernel images are content-addressed: every kernelspec installed from one request names
the same tag (``distrokernels/debian-12:<lock digest>``), on an engine that all users of
the machine share. So no kernelspec owns "its" image, and deleting the tag would break
every other kernelspec, of every user, that names it. Instead each kernelspec holds a
reference of its own, a tag on the image it runs:

    distrokernels-ref/<host>-u<uid>:<kernelspec name>

Tags are what the engine lets anyone add to an existing image and list for everyone, so
each user sees the others' references without reading their kernelspecs. An image is
deleted only when no reference and no container (running or not) uses it:
``remove --image`` drops one reference and deletes only what is then unused, and
``gc --images`` deletes every distrokernels image nobody references.

``reconcile`` keeps this user's references true to their kernelspecs: each points at the
image its kernelspec's tag names now (after a ``--rebuild`` too). It runs on install,
list, remove and gc, so kernelspecs installed before references existed gain theirs then.
A kernelspec deleted by hand, not by ``distrokernels remove``, leaves its reference: it may
be on another Jupyter path, and keeping an image is the safe mistake.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .engine import Engine, image_label
from .ids import short_id
from .images import REPOSITORY
from .kernelspecs import InstalledKernel

REF_REPOSITORY = "distrokernels-ref"
_KERNEL_IMAGES = image_label("slug")  # every image distrokernels built carries it


def owner_key() -> str:
    """'vm-u1000': this user on this host, as a repository path component."""
    host = re.sub(r"[^a-z0-9]+", "-", socket.gethostname().lower()).strip("-") or "host"
    return f"{host}-u{os.getuid()}"


def reference(kernelspec_name: str) -> str:
    return f"{REF_REPOSITORY}/{owner_key()}:{kernelspec_name}"


@dataclass(frozen=True)
class ImageUsers:
    """Who still uses an image."""

    mine: list[str]  # kernelspec names of this user
    others: int  # references of other users (or of this user on other hosts)
    containers: int

    @property
    def anyone(self) -> bool:
        return bool(self.mine or self.others or self.containers)

    def describe(self) -> str:
        parts = []
        if self.mine:
            parts.append(f"your kernel{'s' if len(self.mine) > 1 else ''} {', '.join(self.mine)}")
        if self.others:
            parts.append(f"{self.others} reference{'s' if self.others > 1 else ''} of other users")
        if self.containers:
            parts.append(f"{self.containers} container{'s' if self.containers > 1 else ''}")
        return ", ".join(parts)


def _tags(image: dict[str, Any]) -> list[str]:
    """An image's tags; the engine lists an untagged image as '<none>:<none>'."""
    return [tag for tag in image.get("RepoTags") or [] if not tag.startswith("<none>")]


def _references(tags: Iterable[str]) -> list[str]:
    return [tag for tag in tags if tag.startswith(f"{REF_REPOSITORY}/")]


def users_of(engine: Engine, image: dict[str, Any]) -> ImageUsers:
    mine_prefix = f"{REF_REPOSITORY}/{owner_key()}:"
    references = _references(_tags(image))
    mine = sorted(tag[len(mine_prefix) :] for tag in references if tag.startswith(mine_prefix))
    return ImageUsers(mine, len(references) - len(mine), engine.containers_using(image["Id"]))


def kernel_image(engine: Engine, kernel: InstalledKernel) -> dict[str, Any] | None:
    """The image ``kernel`` runs: its recorded id (kernelspecs from before ids were
    recorded: its tag), and only if distrokernels built it."""
    image = engine.find_image(kernel.runs)
    return image if image is not None and built_here(image) else None


def built_here(image: dict[str, Any]) -> bool:
    """An image distrokernels built (its label): the only kind it tags or deletes."""
    return _KERNEL_IMAGES in ((image.get("Config") or {}).get("Labels") or {})


def reconcile(engine: Engine, kernels: list[InstalledKernel]) -> dict[str, bool]:
    """Each of ``kernels`` (this user's, on ``engine``) holds a reference to the image it
    runs; returns which kernels' images are there. References of kernelspecs this
    process does not see are left alone: they may live on another Jupyter path (another
    virtualenv's --sys-prefix)."""
    built = {}
    for kernel in kernels:
        image = kernel_image(engine, kernel)
        built[kernel.name] = image is not None
        if image is not None and reference(kernel.name) not in _tags(image):
            engine.tag_image(image["Id"], reference(kernel.name))  # moves it, after a reinstall
    return built


@dataclass(frozen=True)
class Released:
    image: str
    removed: bool
    users: ImageUsers | None = None  # why it was kept


def release(engine: Engine, removed: InstalledKernel, kernels: list[InstalledKernel]) -> Released:
    """After ``removed``'s kernelspec is gone: drop its reference, and delete its image
    only if nobody else uses it. ``kernels``: this user's kernelspecs on ``engine``."""
    held = engine.find_image(reference(removed.name))
    image = held if held is not None and built_here(held) else kernel_image(engine, removed)
    reconcile(engine, kernels)
    drop(engine, removed.name)
    if image is None:  # gone, or not distrokernels': never deleted
        return Released(removed.image, False)
    image = engine.find_image(image["Id"])
    if image is None:  # that reference was the image's last tag
        return Released(removed.image, True)
    users = users_of(engine, image)
    if users.anyone:
        return Released(removed.image, False, users)
    for tag in _tags(image):
        if tag.startswith(f"{REPOSITORY}/"):
            engine.remove_image(tag)  # the last tag takes the image with it
    return Released(removed.image, engine.find_image(image["Id"]) is None)


def hold(engine: Engine, image_id: str, kernelspec_name: str) -> None:
    """``kernelspec_name``'s reference on a build it is about to run (an install)."""
    engine.tag_image(image_id, reference(kernelspec_name))


def restore(engine: Engine, kernelspec_name: str, kernels: list[InstalledKernel]) -> None:
    """After a failed install: the reference back on what the installed kernelspec of
    that name runs, or none when there is none."""
    installed = [kernel for kernel in kernels if kernel.name == kernelspec_name]
    if installed:
        reconcile(engine, installed)
    else:
        drop(engine, kernelspec_name)


def drop(engine: Engine, kernelspec_name: str) -> None:
    """Drop a removed kernelspec's reference (its image stays for `gc --images`)."""
    engine.remove_image(reference(kernelspec_name))


@dataclass
class Unreferenced:
    """Kernel images no reference and no container uses, and what deleting them frees."""

    images: list[dict[str, Any]] = field(default_factory=list)
    unique_bytes: int = 0  # layers no other image has

    @property
    def names(self) -> list[str]:
        return [_name(image) for image in self.images]


def unreferenced(engine: Engine) -> Unreferenced:
    images = engine.images_labelled(_KERNEL_IMAGES)
    in_use = engine.container_images() | {i["Id"] for i in images if _references(_tags(i))}
    parents = engine.image_parents()
    wanted: set[str] = set()
    for image_id in in_use:  # and the stages it was built on
        while image_id and image_id not in wanted:
            wanted.add(image_id)
            image_id = parents.get(image_id, "")
    found = Unreferenced([image for image in images if image["Id"] not in wanted])
    sizes = {entry["Id"]: entry for entry in engine.image_sizes()} if found.images else {}
    found.unique_bytes = sum(_unique_bytes(sizes.get(image["Id"], {})) for image in found.images)
    return found


def _unique_bytes(size: dict[str, Any]) -> int:
    """Bytes in layers no other image has (SharedSize is -1 where the engine did not count)."""
    return max(int(size.get("Size", 0)) - max(int(size.get("SharedSize", 0)), 0), 0)


def collect(engine: Engine, found: Unreferenced) -> int:
    """Delete the unreferenced images; the bytes the engine's layers shrank by."""
    before = engine.layers_size()
    for image in found.images:
        for tag in _tags(image):
            engine.remove_image(tag)
        if engine.find_image(image["Id"]) is not None:  # untagged: only its id names it
            engine.remove_image(image["Id"])
    return max(before - engine.layers_size(), 0)


def _name(image: dict[str, Any]) -> str:
    tags = _tags(image)
    return tags[0] if tags else short_id(str(image["Id"]))
