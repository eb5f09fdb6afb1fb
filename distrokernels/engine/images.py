"""Images: find, pull, push, copy between engines, import a root file system, build."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors

from ..errors import BuildFailed, ImageNotFound
from . import podman
from ._base import CONFLICT, EngineBase, engine_errors

# The image a build step made: dockerd prints '---> 1a2b3c4d5e6f', Podman '--> 1a2b3c4d5e6'.
_STEP_IMAGE = re.compile(r"-{2,3}> ([0-9a-f]{6,64})")


class ImagesMixin(EngineBase):
    """Images: the bases kernels build on, and the kernel images."""

    @engine_errors
    def find_image(self, reference: str) -> dict[str, Any] | None:
        """The image's inspect data, or None when it is not on this engine."""
        if not reference:
            return None
        try:
            return self._as_docker_names(self.api.inspect_image(reference))
        except docker.errors.ImageNotFound:
            return None
        except docker.errors.APIError as error:
            if error.status_code in (400, 404):
                return None
            raise

    @engine_errors
    def info(self) -> dict[str, Any]:
        """The engine's `docker info`: its host's architecture, kernel, security options."""
        info: dict[str, Any] = self.api.info()
        return info

    @engine_errors
    def pull(
        self, reference: str, progress: Callable[[str], None], platform: str | None = None
    ) -> dict[str, Any]:
        """Pull ``reference`` (for ``platform``, e.g. 'linux/arm64'), reporting each layer."""
        repository, tag = _split_tag(reference)
        try:
            for event in _checked(
                self.api.pull(repository, tag=tag, stream=True, decode=True, platform=platform),
                f"could not pull {reference}",
                "check the name, your network, or `docker login` for private images",
            ):
                status = event.get("status", "")
                layer = event.get("id", "")
                detail = event.get("progress", "")
                progress(" ".join(part for part in (layer, status, detail) if part))
        except docker.errors.APIError as error:
            raise ImageNotFound(
                f"{reference} is not on this machine and could not be pulled: "
                f"{error.explanation or error}",
                "check the image name, your network, or `docker login` for private images",
            ) from error
        image = self.find_image(reference)
        if image is None:
            raise ImageNotFound(f"pulling {reference} gave no image", "check the image name")
        return image

    @engine_errors
    def push(self, image_id: str, reference: str, progress: Callable[[str], None]) -> str:
        """Tag ``image_id`` as ``reference``, push it; returns 'repository@sha256:...'."""
        repository, tag = _split_tag(reference)
        self.api.tag(image_id, repository, tag, force=True)
        digest = ""
        try:
            for event in _checked(
                self.api.push(repository, tag=tag, stream=True, decode=True),
                f"pushing {reference} failed",
                "check the registry's address, that it is running, and `docker login`",
            ):
                digest = (event.get("aux") or {}).get("Digest", digest)
                status = " ".join(str(event.get(key, "")) for key in ("id", "status", "progress"))
                if status.strip():
                    progress(status.strip())
        except docker.errors.APIError as error:
            raise ImageNotFound(
                f"pushing {reference} failed: {error.explanation or error}",
                "check the registry's address and `docker login`",
            ) from error
        if not digest:
            raise ImageNotFound(f"pushing {reference} reported no digest", "push it again")
        return f"{repository}@{digest}"

    @engine_errors
    def copy_image_to(self, target: ImagesMixin, reference: str) -> None:
        """`docker save | docker load`, engine to engine: the image keeps its id."""
        try:
            target.api.load_image(self.api.get_image(reference))
        except docker.errors.ImageNotFound as error:
            raise ImageNotFound(f"{reference} is not on the source engine") from error

    @engine_errors
    def save_image(self, image_id: str) -> Iterator[bytes]:
        """`docker save` of one image, as chunks of its archive (the image keeps its id)."""
        chunks: Iterator[bytes] = self.api.get_image(image_id)
        return chunks

    @engine_errors
    def import_rootfs(
        self, tarball: Path, reference: str, changes: list[str], platform: str = ""
    ) -> str:
        """Import a root file system tarball as an image; returns its id.

        With ``platform`` ('linux/arm64', 'linux/arm/v7') the image records that
        architecture: dockerd's import labels every image with its host's, so the tarball
        is loaded as an image archive whose config says the real one.
        """
        if platform:
            return self._load_rootfs(tarball, reference, changes, platform)
        repository, tag = _split_tag(reference)
        if self.podman:  # its compat import takes the tag in the repository, not in tag
            repository, tag = reference, None
        result = self.api.import_image_from_file(
            str(tarball), repository=repository, tag=tag, changes=changes
        )
        image = self.find_image(reference)
        if image is None:
            raise ImageNotFound(f"importing {tarball} did not create {reference}: {result}")
        return str(image["Id"])

    def _load_rootfs(self, tarball: Path, reference: str, changes: list[str], platform: str) -> str:
        _os, arch, *variant = platform.split("/")
        digest = hashlib.sha256()
        with tarball.open("rb") as layer:
            while chunk := layer.read(2**20):
                digest.update(chunk)
        config = {
            "architecture": arch,
            **({"variant": variant[0]} if variant else {}),
            "os": "linux",
            "config": _config_of(changes),
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{digest.hexdigest()}"]},
            "history": [{"created_by": f"distrokernels: a root file system for {platform}"}],
        }
        config_bytes = json.dumps(config, sort_keys=True).encode()
        config_name = f"{hashlib.sha256(config_bytes).hexdigest()}.json"
        manifest = [{"Config": config_name, "RepoTags": [reference], "Layers": ["layer.tar"]}]
        with tempfile.TemporaryFile() as archive_file:
            with tarfile.open(fileobj=archive_file, mode="w") as archive:
                archive.add(str(tarball), arcname="layer.tar")
                for name, content in (
                    (config_name, config_bytes),
                    ("manifest.json", json.dumps(manifest).encode()),
                ):
                    member = tarfile.TarInfo(name)
                    member.size = len(content)
                    archive.addfile(member, io.BytesIO(content))
            archive_file.seek(0)
            for _ in self.api.load_image(archive_file):
                pass
        image = self.find_image(reference)
        if image is None:
            raise ImageNotFound(f"loading {tarball} did not create {reference}")
        return str(image["Id"])

    @engine_errors
    def build(
        self,
        context: Path,
        tag: str | None,
        progress: Callable[[str], None],
        network_mode: str | None = None,
    ) -> str:
        """Build the Dockerfile in ``context``; returns the image id.

        Intermediate containers are removed even when a step fails (forcerm), so a
        failed or interrupted build leaves nothing running behind. A rebuild that moves
        ``tag`` leaves the image it moved away from: kernelspecs run images by id, and
        `gc --images` deletes it once no reference holds it.
        """
        tail: list[str] = []
        step_images: set[str] = set()
        image_id = ""
        stream = self.api.build(
            path=str(context),
            tag=tag,
            rm=True,
            forcerm=True,
            network_mode=network_mode,
            pull=False,
            decode=True,
        )
        try:
            for event in stream:
                if "error" in event:
                    tail.append(event["error"].strip())
                    raise BuildFailed(
                        f"building {tag or 'a stage'} failed: "
                        f"{' | '.join(line for line in tail[-12:] if line)}",
                        "fix the cause above (network to the distro's package archive?) "
                        "and run the install again",
                    )
                if "aux" in event and "ID" in event["aux"]:
                    image_id = event["aux"]["ID"]
                for line in event.get("stream", "").splitlines():
                    if step_image := _STEP_IMAGE.fullmatch(line.strip()):
                        step_images.add(step_image[1])
                    if line.strip():
                        tail = [*tail[-40:], line]
                        progress(line)
        finally:
            stream.close()
        if not image_id:
            raise BuildFailed(f"building {tag or 'a stage'} reported no image", "run it again")
        self._remove_stage_leftovers(image_id, step_images)
        return image_id

    def _remove_stage_leftovers(self, image_id: str, step_images: set[str]) -> None:
        """Delete images of earlier build stages that the result does not stand on.

        A multi-stage build keeps each stage's last image; the venv stage's one holds
        the wheel files and would sit on disk as a dangling image.
        """
        ancestors = {entry["Id"] for entry in self.api.history(image_id)}
        for short_id in step_images:
            try:
                found = self.api.inspect_image(short_id)
                full_id = found["Id"]
                if full_id != image_id and full_id not in ancestors and not found["RepoTags"]:
                    self.api.remove_image(full_id)  # untagged: no kernelspec names it
            except docker.errors.APIError:
                pass  # in use as another build's cache or parent: keep it

    @engine_errors
    def remove_image(self, reference: str) -> bool:
        """Remove a tag (the image goes with its last tag); False when it is not there,
        or when a container still uses the image: the engine then keeps both."""
        try:
            self.api.remove_image(reference)
        except docker.errors.ImageNotFound:
            return False
        except docker.errors.APIError as error:
            if error.status_code != CONFLICT:
                raise
            return False
        return True

    @engine_errors
    def tag_image(self, image_id: str, reference: str) -> None:
        """Point ``reference`` at ``image_id`` (moving it from any other image)."""
        repository, tag = _split_tag(reference)
        self.api.tag(image_id, repository, tag, force=True)

    @engine_errors
    def images_labelled(self, label: str) -> list[dict[str, Any]]:
        """The images carrying ``label``, as the engine lists them."""
        return [self._as_docker_names(i) for i in self.api.images(filters={"label": label})]

    def _as_docker_names(self, image: dict[str, Any]) -> dict[str, Any]:
        """Podman's qualified names (docker.io/..., localhost/...) as dockerd names them."""
        if self.podman:
            for key in ("RepoTags", "RepoDigests"):
                image[key] = [podman.short_name(name) for name in image.get(key) or []]
        return image

    @engine_errors
    def image_parents(self) -> dict[str, str]:
        """Every image id, intermediate ones too, and the id of the image it was built on."""
        return {str(i["Id"]): str(i.get("ParentId") or "") for i in self.api.images(all=True)}

    @engine_errors
    def layers_size(self) -> int:
        """Bytes the engine's image layers take, each layer counted once."""
        return int(self.api.df().get("LayersSize") or 0)

    @engine_errors
    def image_sizes(self) -> list[dict[str, Any]]:
        """Every image's Id, Size and SharedSize (bytes in layers other images have too)."""
        return self.api.df().get("Images") or []


def _checked(events: Iterable[dict[str, Any]], failed: str, hint: str) -> Iterator[dict[str, Any]]:
    """A pull's or push's progress events; the engine's "error" event raises."""
    for event in events:
        if "error" in event:
            raise ImageNotFound(f"{failed}: {event['error']}", hint)
        yield event


def _split_tag(reference: str) -> tuple[str, str | None]:
    """'debian:bookworm' -> ('debian', 'bookworm'); a registry port is not a tag."""
    if "@" in reference:
        return reference, None
    repository, _, tag = reference.rpartition(":")
    if not repository or "/" in tag:
        return reference, "latest"
    return repository, tag


def _config_of(changes: list[str]) -> dict[str, Any]:
    """An image config from import-style changes: only ``CMD [...]`` is used here."""
    config: dict[str, Any] = {}
    for change in changes:
        keyword, _, value = change.partition(" ")
        if keyword.upper() == "CMD":
            config["Cmd"] = json.loads(value)
    return config
