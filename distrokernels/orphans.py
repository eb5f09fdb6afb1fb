"""Kernel containers whose owner is gone: found for `doctor`, removed by `gc` and by the
sweep a kernel start runs in the background.

An owner is the token of the process that started a kernel (owners.py), or, for a warm
container, of the process that claimed it (``runtime.claimant``: a client served by the
warm-kernel agent owns its kernel, not the agent); a watchdog, which knows its process
has died, passes its own judgement. What is removed:
the container or swarm service, the runtime folder its label names (only inside this
user's runtime root, runtime.py), and swarm secrets of a start that died between
creating them and creating its service.
"""

from __future__ import annotations

from collections.abc import Callable

from . import owners, runtime
from .engine import LABEL_OWNER, LABEL_RUNTIME_DIR, Engine, KernelContainer

OwnerIsGone = Callable[[str], bool]


def find(
    engine: Engine, owner_is_gone: OwnerIsGone = owners.owner_is_gone
) -> list[KernelContainer]:
    """Kernel containers and services whose owning process is gone."""
    return [
        kernel
        for kernel in [*engine.kernel_containers(), *engine.kernel_services()]
        if owner_is_gone(owner(kernel.labels))
    ]


def owner(labels: dict[str, str]) -> str:
    """Whose a kernel is: the process that claimed it (a warm one), else its creator."""
    return runtime.claimant(labels.get(LABEL_RUNTIME_DIR, "")) or labels.get(LABEL_OWNER, "")


def collect(
    engine: Engine, owner_is_gone: OwnerIsGone = owners.owner_is_gone
) -> list[KernelContainer]:
    """Remove what ``find`` finds, with its runtime folder and secrets; what was removed."""
    removed = find(engine, owner_is_gone)
    for kernel in removed:
        if kernel.status == "service":  # what kernel_services lists
            engine.remove_kernel_service(kernel.id)
        else:
            engine.remove_container(kernel.id)
        runtime.remove_labelled(kernel.labels.get(LABEL_RUNTIME_DIR, ""))
    for secret_id, labels in engine.kernel_secrets().items():
        if owner_is_gone(labels.get(LABEL_OWNER, "")):
            engine.remove_secret(secret_id)
    return removed
