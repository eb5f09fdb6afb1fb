"""How much disk the distro kernels take, counting layers they share once.

Kernel images stack three tiers: the base image, the dependency layer (Python and
ipykernel) and an optional extras layer. Kernels of one base share its layers; kernels
with different extras on one base share the dependency layer too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .engine import Engine, image_label
from .kernelspecs import InstalledKernel


@dataclass(frozen=True)
class KernelUsage:
    name: str
    image: str
    status: str
    platform: str = ""  # the userland's: linux/arm64
    base: int = 0
    dependency: int = 0
    extras: int = 0
    shared: int = 0


@dataclass(frozen=True)
class UsageReport:
    kernels: list[KernelUsage]
    total: int  # every distinct tier once


def disk_usage(engine: Engine, kernels: list[InstalledKernel]) -> UsageReport:
    """Sizes per tier; tiers are identified by their layer digests, not image ids, since
    a relabelled image (same layers, new id) shares everything with its parent."""
    inspected: dict[str, dict[str, Any]] = {}

    def inspect(image_id: str) -> dict[str, Any] | None:
        if not image_id:
            return None
        if image_id not in inspected:
            data = engine.find_image(image_id)
            if data is None:
                return None
            inspected[image_id] = data
        return inspected[image_id]

    tiers: list[tuple[InstalledKernel, _Tier, _Tier, _Tier]] = []  # base, dependency, image
    usages = []
    for kernel in kernels:
        image = inspect(kernel.image)
        if image is None:
            usages.append(KernelUsage(kernel.name, kernel.image, "missing"))
            continue
        labels = (image.get("Config") or {}).get("Labels") or {}
        base = inspect(labels.get(image_label("base-image"), "")) or {"RootFS": {}, "Size": 0}
        dependency = inspect(labels.get(image_label("dependency-image"), "")) or image
        tiers.append((kernel, _tier(base), _tier(dependency), _tier(image)))
    for kernel, base_tier, dependency_tier, image_tier in tiers:
        others = [t for t in tiers if t[0] is not kernel]
        shared = base_tier[1] if any(t[1] == base_tier for t in others) else 0
        dependency_size = dependency_tier[1] - base_tier[1]
        shared += dependency_size if any(t[2] == dependency_tier for t in others) else 0
        usages.append(
            KernelUsage(
                kernel.name,
                kernel.image,
                "built",
                platform=str(kernel.info.get("platform", "")),
                base=base_tier[1],
                dependency=dependency_size,
                extras=image_tier[1] - dependency_tier[1],
                shared=shared,
            )
        )
    total = sum(size for _, size in {t[1] for t in tiers})
    total += sum(dep[1] - low[1] for low, dep in {(t[1], t[2]) for t in tiers})
    total += sum(top[1] - dep[1] for dep, top in {(t[2], t[3]) for t in tiers})
    return UsageReport(sorted(usages, key=lambda u: u.name), total)


_Tier = tuple[tuple[str, ...], int]  # an image's layer digests and its size


def _tier(image: dict[str, Any]) -> _Tier:
    return tuple(image["RootFS"].get("Layers") or ()), int(image["Size"])
