"""Build a kernel image: base image -> probe -> recipe -> wheels -> layers -> lock.

The base image comes from the machine, a registry, or the Debian archive. On it go the
dependency layer (Python and the ipykernel stack) and, when asked for, an extras layer;
kernels from one base share the base and dependency layers byte for byte. A lock of
what went in is recorded as a label, and a repeated request is a cache hit.
"""

from __future__ import annotations

import functools
import hashlib
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import __version__, bootstrap, locks
from .checks import validate_reference
from .distros import OsRelease
from .dockerfiles import EXTRAS_DIR, LayerPlan, plan_layer, render_extras_dockerfile
from .engine import (
    LABEL_BUILD_KEY,
    LABEL_LOCK,
    LABEL_LOCK_DIGEST,
    LABEL_REQUEST_KEY,
    Engine,
    image_label,
)
from .errors import BuildFailed, ImageNotFound, InvalidInput, LockMismatch
from .hostkernel import Userland
from .ids import short_id
from .platforms import Architecture, architecture, from_engine, official_repository
from .probe import Probe, probe_image, read_userland
from .recipes import recipe_for
from .reporting import note, phase
from .wheels import (
    STACKS,
    Platform,
    Wheel,
    WheelSource,
    download_locked,
    download_wheels,
    ipykernel_stack,
)

REPOSITORY = "distrokernels"


Progress = Callable[[str], None]

SOURCES = {
    "local": "found on the engine",
    "pulled": "pulled from its registry",
    "bootstrapped": "bootstrapped from the Debian archive (no registry reachable)",
}


@dataclass(frozen=True)
class KernelImage:
    """A built kernel image, described by the labels it carries."""

    id: str
    tag: str
    labels: dict[str, str]

    def label(self, key: str) -> str:
        return self.labels.get(image_label(key), "")

    @property
    def display_name(self) -> str:
        return self.label("display")

    @property
    def slug(self) -> str:
        return self.label("slug")

    @property
    def python_version(self) -> str:
        return self.label("python")

    @property
    def family(self) -> str:
        return self.label("family")

    @property
    def platform_name(self) -> str:
        """Its userland's platform, 'linux/arm64'. A build from before it was recorded was
        of the host's architecture, which its probe's machine label says."""
        if recorded := self.label("platform"):
            return recorded
        try:
            return architecture(self.label("machine")).platform
        except InvalidInput:
            return ""

    @property
    def lock(self) -> locks.Lock | None:
        text = self.labels.get(LABEL_LOCK)
        return locks.Lock.from_text(text, f"the lock label of {self.tag}") if text else None

    def wheels(self, key: str = "wheels") -> list[Wheel]:
        """The wheels recorded in a label: 'filename#sha256=hex ...'."""
        entries = self.label(key).split()
        return [Wheel(*entry.split("#sha256=")) for entry in entries]

    def platform(self) -> Platform:
        libc, _, version = self.label("libc").partition(" ")
        major, _, minor = version.partition(".")
        return Platform(self.python_version, libc, (int(major), int(minor)), self.label("machine"))


@dataclass(frozen=True)
class BaseImage:
    reference: str  # what the user asked for: 'debian:bookworm'
    id: str
    source: str  # "local", "pulled" or "bootstrapped"
    digest: str = ""  # the registry digest, when the image came from a registry
    # What its files say (probe.read_userland), and the engine host's architecture.
    userland: Userland = field(default_factory=lambda: Userland(None, ""))
    host: Architecture | None = None

    @classmethod
    def from_inspect(cls, reference: str, data: dict[str, Any], source: str) -> BaseImage:
        digests = data.get("RepoDigests") or []
        return cls(reference, data["Id"], source, digests[0] if digests else "")

    @property
    def arch(self) -> Architecture | None:
        """The userland's real architecture, from its ELF files (None: not in the table)."""
        return self.userland.arch

    @property
    def foreign(self) -> bool:
        """Whether its architecture is not the engine host's own (its names then say it)."""
        return self.arch is not None and self.host is not None and self.arch != self.host


def acquire_base(
    engine: Engine,
    reference: str,
    pull: bool,
    progress: Progress,
    offline: bool = False,
    arch: Architecture | None = None,
) -> BaseImage:
    """The base image for ``arch`` (None: the engine host's), as its files describe it."""
    host = engine_architecture(engine)
    base = _find_base(engine, reference, pull, progress, offline, arch if arch != host else None)
    base = replace(base, userland=read_userland(engine, base.id), host=host)
    if arch is not None and base.arch not in (arch, None):
        assert base.arch is not None
        raise ImageNotFound(
            f"{reference} is {base.arch.platform} here, not {arch.platform}",
            f"remove it or pull it for {arch.platform} under another name, then install that",
        )
    return base


def engine_architecture(engine: Engine) -> Architecture:
    """The architecture of the engine's host (what its kernel runs natively)."""
    return from_engine(str(engine.info().get("Architecture", ""))) or architecture("amd64")


def _find_base(
    engine: Engine,
    reference: str,
    pull: bool,
    progress: Progress,
    offline: bool,
    foreign: Architecture | None,
) -> BaseImage:
    """Use the local image, else pull it, else bootstrap a Debian suite from the archive.
    A ``foreign`` architecture's base is looked for under the name asked for (a user's
    own `docker pull --platform`) and under Docker Hub's per-architecture name, pulled
    and bootstrapped under the latter: the native image of that name stays as it is."""
    validate_reference(reference)
    names = [reference]
    if foreign is not None:
        official = official_repository(reference, foreign)
        names = [name for name in (reference, official) if name]
    for name in names:
        image = engine.find_image(name)
        if image is not None and (foreign is None or _is(image, foreign)):
            return BaseImage.from_inspect(reference, image, "local")
    wanted = f"{reference} for {foreign.platform}" if foreign else reference
    if offline:
        raise ImageNotFound(
            f"offline: the base image {wanted} is not on this machine",
            "load it first (docker load / distrokernels bootstrap) or drop --offline",
        )
    pull_error: ImageNotFound | None = None
    if pull:
        name = names[-1]
        if foreign is not None and name == reference and engine.find_image(name) is not None:
            raise ImageNotFound(
                f"{reference} is here for another architecture, and pulling it for "
                f"{foreign.platform} would replace it",
                f"docker pull --platform {foreign.platform} {reference}, tag it with a name "
                "of its own, and install that",
            )
        platform = foreign.platform if foreign else None
        progress(f"pulling {name}" + (f" for {platform}" if platform else ""))
        try:
            pulled = engine.pull(name, progress, platform)
            return BaseImage.from_inspect(reference, pulled, "pulled")
        except ImageNotFound as error:
            pull_error = error
    if bootstrap.debian_suite(reference):
        progress(f"{wanted} could not be pulled; bootstrapping it from the Debian archive")
        _name, image_id = bootstrap.bootstrap_debian(
            engine, reference, progress=progress, arch=foreign
        )
        return BaseImage(reference, image_id, "bootstrapped")
    if pull_error is not None:
        raise pull_error
    raise ImageNotFound(
        f"{wanted} is not on this machine (and pulling was turned off)",
        f"run `docker pull {reference}`, or drop --no-pull",
    )


def _is(image: dict[str, Any], arch: Architecture) -> bool:
    """Whether the engine records ``image`` as ``arch`` (read_userland checks its files)."""
    recorded = from_engine(str(image.get("Architecture", "")), str(image.get("Variant") or ""))
    return recorded == arch


@dataclass(frozen=True)
class Extras:
    """What a user adds on top of the ipykernel layer."""

    pip: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.pip or self.packages)


@dataclass(frozen=True)
class BuildOptions:
    extras: Extras = field(default_factory=Extras)
    source: WheelSource = field(default_factory=WheelSource)
    lock: locks.Lock | None = None
    rebuild: bool = False
    allow_drift: bool = False  # a rebuild from ``lock`` may differ from it (said, not refused)


# The build's format: bump it when what a build contains changes in a way the rendered
# recipes, Dockerfiles and pins below do not show (the venv's layout, a label's meaning).
# Only this and what the build renders decide the cache: an upgrade that changes neither
# (a comment, a docstring, any other module) keeps every image, reference and warm
# container.
BUILD_FORMAT = 1
# One os-release per recipe path (recipes.py): rendering each shows any recipe change.
_RECIPE_SAMPLES = (
    "ID=debian\nVERSION_ID=12",
    "ID=ubuntu\nID_LIKE=debian\nVERSION_ID=22.04",
    'ID=centos\nID_LIKE="rhel fedora"\nVERSION_ID=7',
    'ID=almalinux\nID_LIKE="rhel centos fedora"\nVERSION_ID=8.10',
    'ID=rocky\nID_LIKE="rhel centos fedora"\nVERSION_ID=9.4',
    'ID=amzn\nID_LIKE="centos rhel fedora"\nVERSION_ID=2',
    "ID=fedora\nVERSION_ID=40",
    'ID=opensuse-leap\nID_LIKE="suse opensuse"\nVERSION_ID=15.6',
    'ID=opensuse-tumbleweed\nID_LIKE="opensuse suse"\nVERSION_ID=20240101',
    "ID=alpine\nVERSION_ID=3.20.3",
    "ID=arch",
)


@functools.cache
def build_fingerprint() -> str:
    """What decides every build's content, as a digest: the build format, each recipe's
    rendered Dockerfiles and package commands, and the ipykernel pins per Python."""
    material = [f"build-format {BUILD_FORMAT}", repr(sorted(STACKS.items()))]
    for text in _RECIPE_SAMPLES:
        os_release = OsRelease.parse(text)
        material.append(plan_layer("<base>", os_release).dockerfile(("<requirement>",)))
        material.append(recipe_for(os_release).install_packages(os_release, ("package-name",)))
    material.append(render_extras_dockerfile("<kernel>", (3, 11), "<packages>", True, {}))
    return hashlib.sha256("\n".join(material).encode()).hexdigest()


def request_key(base_id: str, extras: Extras, lock: locks.Lock | None) -> str:
    """What was asked for; the same request finds its image without probing anything."""
    material = json.dumps(
        [build_fingerprint(), base_id, extras.pip, extras.packages, lock.digest if lock else ""]
    )
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def _find_cached(engine: Engine, base: BaseImage, options: BuildOptions) -> KernelImage | None:
    """The image this request built before; with a lock, also any image sealed with that
    very lock (same base id, wheels, packages): rebuilding it would only move its tag to
    a copy and leave other kernelspecs naming the old id."""
    if options.rebuild:
        return None
    key = request_key(base.id, options.extras, options.lock)
    cached = _image_labelled(engine, LABEL_REQUEST_KEY, key)
    if cached is None and options.lock is not None and options.lock.base_id == base.id:
        cached = _image_labelled(engine, LABEL_LOCK_DIGEST, options.lock.digest)
    return cached


def build_kernel_image(
    engine: Engine, base: BaseImage, options: BuildOptions, progress: Progress
) -> KernelImage:
    """Build (or find in the cache) the kernel image for ``base`` and ``options``."""
    cached = _find_cached(engine, base, options)
    if cached is not None:
        phase(progress, f"cache hit: {cached.tag}")
        return cached
    same_base = options.lock is None or options.lock.base_id == base.id
    if not same_base:
        assert options.lock is not None
        note(
            progress,
            f"the lock's base image {short_id(options.lock.base_id)} is not here: {base.reference} "
            f"is {short_id(base.id)} ({SOURCES[base.source]}); its packages are compared with "
            "the lock's after the build",
        )
    network = "none" if options.source.offline else None
    with tempfile.TemporaryDirectory(prefix="distrokernels-build-") as tmp:
        dependency = _dependency_image(engine, base, options, Path(tmp), network, progress)
    image, extra_wheels = dependency, list[Wheel]()
    if options.extras:
        with tempfile.TemporaryDirectory(prefix="distrokernels-extras-") as tmp:
            image, extra_wheels = _extras_image(
                engine, dependency, options, Path(tmp), network, progress
            )
    phase(progress, "recording the lock: distro packages and wheels")
    lock = locks.make_lock(
        base.reference,
        base.id,
        base.digest,
        dependency.python_version,
        dependency.wheels(),
        extra_wheels,
        options.extras.pip,
        options.extras.packages,
        locks.query_packages(engine, image.id),
        base.arch.platform if base.arch else locks.DEFAULT_PLATFORM,
    )
    if options.lock is not None:
        differences = locks.differences(options.lock, lock, same_base_id=same_base)
        if differences and not options.allow_drift:
            raise LockMismatch(
                f"the rebuilt kernel differs from the lock: {'; '.join(differences)}",
                "the distro archive (or the base image) moved on since the lock was made: "
                "--allow-drift accepts these versions, or rebuild from an archive snapshot",
            )
        for difference in differences:
            note(progress, f"drift accepted: {difference}")
    return _seal(engine, image, lock, request_key(base.id, options.extras, options.lock))


def _seal(engine: Engine, image: KernelImage, lock: locks.Lock, key: str) -> KernelImage:
    """Label the image with its lock (a metadata-only step: no layer is added)."""
    labels = {
        LABEL_REQUEST_KEY: key,
        LABEL_LOCK_DIGEST: lock.digest,
        LABEL_LOCK: lock.compact,
    }
    tag = f"{REPOSITORY}/{image.slug}:{lock.digest.split(':')[1][:12]}"
    with tempfile.TemporaryDirectory(prefix="distrokernels-seal-") as tmp:
        context = Path(tmp)
        pairs = " ".join(f"{k}={json.dumps(v)}" for k, v in labels.items())
        (context / "Dockerfile").write_text(f"FROM {image.id}\nLABEL {pairs}\n")
        image_id = engine.build(context, tag=tag, progress=lambda line: None)
    return KernelImage(id=image_id, tag=tag, labels={**image.labels, **labels})


def _dependency_image(
    engine: Engine,
    base: BaseImage,
    options: BuildOptions,
    context: Path,
    network: str | None,
    progress: Progress,
) -> KernelImage:
    """The base plus Python and the ipykernel venv; shared by every kernel of that base."""
    phase(progress, f"probing {base.reference}")
    probe = _probe(engine, base.id, base)
    plan = plan_layer(
        base.id, probe.os_release, probe.python_path, probe.python if probe.has_python else None
    )
    (context / "wheels").mkdir()
    if plan.install_python:
        phase(progress, f"installing Python with {probe.os_release.display_name}'s package manager")
        (context / "Dockerfile").write_text(plan.dockerfile())
        system_id = _build(engine, context, None, network, progress, "installing python3")
        probe = _probe(engine, system_id, base)
        if not probe.has_python:
            raise BuildFailed(
                f"the recipe for {probe.os_release.display_name} ran but left no python3",
                "report this with the output of `distrokernels dockerfile IMAGE`",
            )
        plan = LayerPlan(plan.base, probe.python_path, plan.install_python)
    requirements = ipykernel_stack(probe.python, probe.platform().arch)
    locked = options.lock.wheels() if options.lock else []
    dockerfile = plan.dockerfile(requirements)
    key = _digest(dockerfile, *(wheel.sha256 for wheel in locked))
    cached = None if options.rebuild else _image_labelled(engine, LABEL_BUILD_KEY, key)
    if cached is not None:
        phase(progress, f"dependency layer cached: {cached.tag}")
        return cached
    wheels_dir = context / "wheels"
    if locked:
        phase(progress, f"fetching the {len(locked)} locked wheels (hashes checked)")
        wheels = download_locked(locked, probe.platform(), wheels_dir, progress, options.source)
    else:
        phase(
            progress,
            f"resolving wheels for Python {probe.python_full_version} "
            f"({probe.libc} {'.'.join(map(str, probe.libc_version))})",
        )
        wheels = download_wheels(
            requirements, probe.platform(), wheels_dir, progress, options.source
        )
    content = _digest(dockerfile, *(wheel.sha256 for wheel in wheels))
    tag = f"{REPOSITORY}/{_names(base, probe)[1]}:{content[:12]}"
    labels = _labels(base, probe, key, wheels)
    (context / "Dockerfile").write_text(plan.dockerfile(requirements, labels))
    phase(progress, f"building the layer {tag.removeprefix(REPOSITORY + '/')}")
    progress(f"resolved: {' '.join(wheel.filename for wheel in wheels)}")
    image_id = _build(engine, context, tag, network, progress, "installing the wheels")
    return KernelImage(id=image_id, tag=tag, labels=labels)


def _extras_image(
    engine: Engine,
    dependency: KernelImage,
    options: BuildOptions,
    context: Path,
    network: str | None,
    progress: Progress,
) -> tuple[KernelImage, list[Wheel]]:
    """The user's extra distro packages and wheels, in one more layer on the kernel image."""
    extras = options.extras
    install_packages = ""
    if extras.packages:
        os_release = OsRelease(
            id=dependency.label("os-id"),
            version_id=dependency.label("os-version"),
            id_like=tuple(dependency.label("os-like").split()),
        )
        install_packages = recipe_for(os_release).install_packages(os_release, extras.packages)
    wheels: list[Wheel] = []
    if extras.pip:
        locked = options.lock.wheels("extra_wheels") if options.lock else []
        platform = dependency.platform()
        if locked:
            wheels = download_locked(locked, platform, context / "wheels", progress, options.source)
        else:
            phase(
                progress,
                f"resolving {' '.join(extras.pip)} for Python {platform.python_full_version}",
            )
            wheels = download_wheels(
                extras.pip,
                platform,
                context / "wheels",
                progress,
                options.source,
                pinned=tuple(dependency.wheels()),
            )
        (context / "distrokernels-extras.pth").write_text(EXTRAS_DIR + "\n")
    labels = {
        # Labels are inherited: this image must not pass for the dependency layer it extends.
        LABEL_BUILD_KEY: "",
        image_label("extras-pip"): " ".join(extras.pip),
        image_label("extras-packages"): " ".join(extras.packages),
        image_label("extra-wheels"): " ".join(f"{w.filename}#sha256={w.sha256}" for w in wheels),
        image_label("dependency-image"): dependency.id,
    }
    dockerfile = render_extras_dockerfile(
        dependency.id,
        dependency.platform().python,
        install_packages,
        has_wheels=bool(wheels),
        labels=labels,
    )
    (context / "Dockerfile").write_text(dockerfile)
    phase(progress, "building the extras layer")
    image_id = _build(engine, context, None, network, progress, "installing the extras")
    return KernelImage(id=image_id, tag=image_id, labels={**dependency.labels, **labels}), wheels


def _build(
    engine: Engine,
    context: Path,
    tag: str | None,
    network: str | None,
    progress: Progress,
    step: str,
) -> str:
    try:
        return engine.build(context, tag=tag, progress=progress, network_mode=network)
    except BuildFailed as error:
        if network == "none":
            raise BuildFailed(
                f"offline: {step} needs the network (the distro's archive): {error.what}",
                "build it once online, so the engine caches the step, or drop --offline",
            ) from error
        raise


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join([build_fingerprint(), *parts]).encode()).hexdigest()[:16]


def _image_labelled(engine: Engine, label: str, value: str) -> KernelImage | None:
    for entry in engine.images_labelled(f"{label}={value}"):
        tags = [tag for tag in entry.get("RepoTags") or [] if tag.startswith(f"{REPOSITORY}/")]
        if tags:
            return KernelImage(id=entry["Id"], tag=tags[0], labels=entry.get("Labels") or {})
    return None


def _probe(engine: Engine, image_id: str, base: BaseImage) -> Probe:
    """The image's probe, its machine the one its files say: uname in an i386 userland
    on an x86-64 host says x86_64."""
    probe = probe_image(engine, image_id)
    return replace(probe, machine=base.arch.machine) if base.arch else probe


def _names(base: BaseImage, probe: Probe) -> tuple[str, str]:
    """(display, slug): 'Debian 12' and 'debian-12', with the architecture when it is not
    the engine host's: 'Debian 12, arm64' and 'debian-12-arm64'."""
    os_release = probe.os_release
    if base.foreign and base.arch is not None:
        label = base.arch.label
        return f"{os_release.display_name}, {label}", f"{os_release.slug}-{label}"
    return os_release.display_name, os_release.slug


def _labels(base: BaseImage, probe: Probe, key: str, wheels: list[Wheel]) -> dict[str, str]:
    versions = {wheel.project: wheel.version for wheel in wheels}
    os_release = probe.os_release
    display, slug = _names(base, probe)
    return {
        LABEL_BUILD_KEY: key,
        image_label("display"): display,
        image_label("slug"): slug,
        image_label("distro"): os_release.pretty_name or os_release.display_name,
        image_label("family"): os_release.family,
        image_label("os-id"): os_release.id,
        image_label("os-version"): os_release.version_id,
        image_label("os-like"): " ".join(os_release.id_like),
        image_label("python"): probe.python_full_version,
        image_label("ipykernel"): versions.get("ipykernel", ""),
        image_label("base-ref"): base.reference,
        image_label("base-image"): base.id,
        image_label("libc"): f"{probe.libc} {'.'.join(map(str, probe.libc_version))}",
        image_label("machine"): probe.machine,
        **({image_label("platform"): base.arch.platform} if base.arch else {}),
        image_label("wheels"): " ".join(
            f"{wheel.filename}#sha256={wheel.sha256}" for wheel in wheels
        ),
        image_label("version"): __version__,
    }
