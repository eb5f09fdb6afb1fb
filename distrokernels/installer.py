"""Install a distro kernel: base image -> kernel image -> kernelspec.

The one sequence behind `distrokernels install` and `distrokernels run --install`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import images, kernelspecs
from .engine import Engine


@dataclass(frozen=True)
class Installed:
    name: str
    display_name: str
    folder: str
    base: images.BaseImage


def install_kernel(
    reference: str,
    options: images.BuildOptions,
    progress: images.Progress,
    name: str | None = None,
    display_name: str | None = None,
    config: dict[str, Any] | None = None,
    user: bool = True,
    prefix: str | None = None,
    replace: bool = False,
    pull: bool = True,
    docker_host: str = "",
) -> Installed:
    """Build (or reuse) the kernel image and register its kernelspec."""
    images.validate_reference(reference)
    if name:
        kernelspecs.validate_name(name)
        if not replace:
            kernelspecs.refuse_existing(name)
    if display_name is not None:
        kernelspecs.validate_display_name(display_name)
    engine = Engine.connect(docker_host)
    base = images.acquire_base(
        engine, reference, pull=pull, progress=progress, offline=options.source.offline
    )
    progress(f"base image {reference}: {images.SOURCES[base.source]} ({base.id[:19]})")
    image = images.build_kernel_image(engine, base, options, progress)
    name = name or kernelspecs.default_name(image)
    display_name = display_name or kernelspecs.default_display_name(image)
    folder = kernelspecs.install(
        image,
        name,
        display_name,
        config={
            "source": reference,
            **({"docker_host": docker_host} if docker_host else {}),
            **(config or {}),
        },
        user=user,
        prefix=prefix,
        replace=replace,
    )
    return Installed(name, display_name, folder, base)
