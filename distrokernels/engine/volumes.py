"""Named volumes: a remote engine's working folder for kernels."""

from __future__ import annotations

import docker
import docker.errors

from ._base import EngineBase, engine_errors
from .labels import LABEL_PROBE, LABEL_VOLUME


class VolumesMixin(EngineBase):
    """Named volumes."""

    @engine_errors
    def ensure_volume(self, name: str, image: str, owner: str) -> None:
        """Create the named volume if missing, its root owned by ``owner`` (uid:gid)."""
        try:
            self.api.inspect_volume(name)
            return
        except docker.errors.NotFound:
            pass
        self.api.create_volume(name, labels={LABEL_VOLUME: "1"})
        container = self.api.create_container(
            image,
            command=["chown", owner, "/volume"],
            user="0",
            entrypoint=[],
            labels={LABEL_PROBE: "1"},
            host_config=self.api.create_host_config(
                binds=[f"{name}:/volume:rw"], network_mode="none"
            ),
        )
        try:
            self.api.start(container)
            self.api.wait(container, timeout=60)
        finally:
            self.api.remove_container(container, force=True)
