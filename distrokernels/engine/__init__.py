"""The one place that talks to the Docker engine.

Everything else asks this package for images, builds, kernel containers, services and
volumes, and gets distrokernels' own errors back instead of docker-py's HTTP exceptions.
As docker-py splits its API client, one module per resource: ``images``, ``containers``,
``services`` (swarm services, tasks, nodes, secrets) and ``volumes``, each a mixin of
``Engine`` (``client``), over the shared connection and error mapping (``_base``).
Rootless Podman is the same Engine on the user's own socket; what differs about it
(finding and starting it, keep-id, its limits and names) is ``podman``'s.
"""

from ._base import DOCKERD_SOCKETS
from .client import ENGINES, Engine, choose_engine, engine_url, remote_address
from .containers import ContainerState, KernelContainer, KernelContainerSpec, container_ports
from .labels import (
    LABEL,
    LABEL_BUILD_KEY,
    LABEL_KERNEL_ID,
    LABEL_KERNELSPEC,
    LABEL_LOCK,
    LABEL_LOCK_DIGEST,
    LABEL_OWNER,
    LABEL_POOL,
    LABEL_PROBE,
    LABEL_REQUEST_KEY,
    LABEL_RUNTIME_DIR,
    LABEL_VOLUME,
    image_label,
)
from .services import KernelServiceSpec, KernelTask, task_ports

__all__ = [
    "DOCKERD_SOCKETS",
    "ENGINES",
    "LABEL",
    "LABEL_BUILD_KEY",
    "LABEL_KERNELSPEC",
    "LABEL_KERNEL_ID",
    "LABEL_LOCK",
    "LABEL_LOCK_DIGEST",
    "LABEL_OWNER",
    "LABEL_POOL",
    "LABEL_PROBE",
    "LABEL_REQUEST_KEY",
    "LABEL_RUNTIME_DIR",
    "LABEL_VOLUME",
    "ContainerState",
    "Engine",
    "KernelContainer",
    "KernelContainerSpec",
    "KernelServiceSpec",
    "KernelTask",
    "choose_engine",
    "container_ports",
    "engine_url",
    "image_label",
    "remote_address",
    "task_ports",
]
