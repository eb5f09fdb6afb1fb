"""Install a distro kernel: base image -> kernel image -> kernelspec.

The one sequence behind `distrokernels install` and `distrokernels run --install`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import connection, hostkernel, images, kernelspecs, pool, references
from .checks import validate_reference
from .config import DEFAULT_PIDS_LIMIT, validate_config
from .engine import Engine, choose_engine, engine_url, remote_address
from .engine.podman import PodmanHost
from .errors import HostCannotRun, InvalidInput
from .ids import short_id
from .platforms import Architecture, architecture, needs_personality
from .reporting import note, phase
from .runtime import runtime_root
from .slurm import node
from .slurm.backend import job_request


@dataclass(frozen=True)
class Installed:
    name: str
    display_name: str
    folder: str
    base: images.BaseImage
    image: images.KernelImage
    added_bytes: int  # what the kernel image holds beyond its base image

    def facts(self) -> dict[str, Any]:
        """What `install --json` prints, and the summary shows."""
        return {
            "name": self.name,
            "display_name": self.display_name,
            "folder": self.folder,
            "distro": self.image.label("distro"),
            "platform": self.image.platform_name,
            "python": self.image.label("python"),
            "ipykernel": self.image.label("ipykernel"),
            "image": self.image.tag,
            "image_id": self.image.id,
            "base": self.base.reference,
            "base_source": self.base.source,
            "added_bytes": self.added_bytes,
        }


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
    push: str = "",
    engine_kind: str = "auto",
    arch: Architecture | None = None,
    force: bool = False,
) -> Installed:
    """Build (or reuse) the kernel image and register its kernelspec.

    ``push`` names a repository every swarm node can pull from; the kernelspec then
    records the pushed digest, which the swarm runs. ``engine_kind`` 'podman' builds in,
    and runs on, the user's rootless Podman (or the Podman at ``docker_host``); 'auto'
    picks dockerd when it is open to this user, else their Podman. ``arch``: the userland's
    (None: the lock's, else the host's); ``force`` builds what the host cannot run.
    """
    _check_request(reference, name, display_name, replace, push)
    config = dict(config or {})
    engine_kind = choose_engine(engine_kind, docker_host)
    url = engine_url(engine_kind, docker_host)
    engine = _engine_for(url, config, progress)
    base = _base_for(engine, url, reference, options, pull, arch, force, progress)
    image = images.build_kernel_image(engine, base, options, progress)
    name = kernelspecs.default_name(image) if name is None else name
    display_name = display_name or kernelspecs.default_display_name(image)
    # Held from the build on: kernels run their image by id, so when another install
    # moves the shared tag, this build is still referenced and no `gc --images` takes it.
    references.hold(engine, image.id, name)
    before = _spec_of(name)
    try:
        _reach_and_push(engine, image, config, docker_host, push, progress)
        _stage_for_slurm(engine, image, config, engine_kind, progress)
        if options.rebuild:
            _say_who_keeps_the_old_build(image.tag, name, url, progress)
        phase(progress, f"writing the kernelspec {name}")
        recorded = {
            "source": reference,
            **_platform_config(base),
            **({"engine": engine_kind} if engine_kind != "docker" else {}),
            **({"docker_host": docker_host} if docker_host else {}),
            **config,
        }
        folder = kernelspecs.install(
            image, name, display_name, recorded, user=user, prefix=prefix, replace=replace
        )
    except BaseException:  # nothing registered: the reference goes back to what was
        references.restore(engine, name, _installed_on(url))
        raise
    _settle(engine, name, before, url)
    sizes = [(engine.find_image(i) or {}).get("Size", 0) for i in (image.id, base.id)]
    return Installed(name, display_name, folder, base, image, max(sizes[0] - sizes[1], 0))


def _base_for(
    engine: Engine,
    url: str,
    reference: str,
    options: images.BuildOptions,
    pull: bool,
    arch: Architecture | None,
    force: bool,
    progress: images.Progress,
) -> images.BaseImage:
    """The base image, once the host's kernel is known to run it (or ``force``)."""
    phase(progress, f"base image {reference}")
    if arch is None and options.lock is not None:  # a lock of an arm64 kernel rebuilds arm64
        arch = architecture(options.lock.platform)
    offline = options.source.offline
    base = images.acquire_base(engine, reference, pull, progress, offline, arch)
    progress(f"base image {reference}: {images.SOURCES[base.source]} ({short_id(base.id)})")
    _check_host(engine, url, base, force, progress)
    return base


def _check_host(
    engine: Engine, url: str, base: images.BaseImage, force: bool, progress: images.Progress
) -> None:
    """Refuse, before anything is built, a userland the host's kernel cannot run."""
    host = hostkernel.engine_host(engine, url)
    userland = base.userland
    for finding in hostkernel.findings(userland, host, base.reference):
        if not force:
            raise HostCannotRun(finding.why, f"{finding.fix} (or --force to build anyway)")
        note(progress, f"--force: building anyway, though {finding.line()}")
    if userland.arch is not None:
        how = "natively"
        if base.foreign and (handler := host.handler_for(userland.arch)) is not None:
            how = f"under {handler.name} ({handler.interpreter})"
        kernel = (
            f", glibc {'.'.join(map(str, userland.libc_version))}" if userland.libc_version else ""
        )
        progress(f"host: runs {userland.arch.platform}{kernel} {how}")


def _platform_config(base: images.BaseImage) -> dict[str, str]:
    """What a kernelspec of a foreign userland records: its platform, and for a 32-bit
    one the host runs natively, the machine its kernels run as (setarch)."""
    if not base.foreign or base.arch is None or base.host is None:
        return {}
    personality = needs_personality(base.host, base.arch)
    return {
        "architecture": base.arch.platform,
        **({"personality": base.arch.machine} if personality else {}),
    }


def _settle(engine: Engine, name: str, before: dict[str, Any] | None, url: str) -> None:
    """After the kernelspec is written: warm containers of what it replaced are stale (a
    server then starts cold, once) unless the reinstall wrote the same kernelspec (the
    same build, the same settings); references are reconciled (this kernelspec's, and
    those of kernelspecs from before references)."""
    if before is None or before != _spec_of(name):
        pool.drop_kernelspecs(engine, {name})
    references.reconcile(engine, _installed_on(url))


def _check_request(
    reference: str, name: str | None, display_name: str | None, replace: bool, push: str
) -> None:
    """Refuse a request before anything is built or written."""
    validate_reference(reference)
    runtime_root()  # where its kernels will run: refused now, before anything is written
    if name is not None:
        kernelspecs.validate_name(name)
        if not replace:
            kernelspecs.refuse_existing(name)
    if display_name is not None:
        kernelspecs.validate_display_name(display_name)
    if push:
        validate_reference(push)


def _engine_for(url: str, config: dict[str, Any], progress: images.Progress) -> Engine:
    """The engine to build on, with what it will not do as asked said (or refused)."""
    engine = Engine.connect(url)
    if engine.podman:
        rootless = "rootless " if engine.podman.rootless else ""
        note(progress, f"engine: {rootless}Podman at {url or 'DOCKER_HOST'}")
        _warn_about_podman(engine.podman, config, progress)
    if config.get("backend") == "swarm" and not engine.swarm_node_id():
        raise InvalidInput(
            "--backend swarm needs an engine that is a swarm manager; this one is not",
            "run `docker swarm init` there, or point --docker-host at a manager",
        )
    return engine


def _reach_and_push(
    engine: Engine,
    image: images.KernelImage,
    config: dict[str, Any],
    docker_host: str,
    push: str,
    progress: images.Progress,
) -> None:
    """A TCP kernel: refused now when every start would refuse it (no encryption, not
    asked for). ``push``: the image pushed, its digest recorded in ``config``."""
    if config.get("backend") in ("swarm", "slurm") or remote_address(docker_host):
        connection.choose_encryption(
            image.label("ipykernel"), bool(config.get("plaintext_tcp")), "auto"
        )
    if push:
        phase(progress, f"pushing to {push}")
        config["pushed_image"] = engine.push(
            image.id, f"{push}:{image.tag.split(':')[-1]}", progress
        )
        progress(f"pushed {config['pushed_image']}")


def _stage_for_slurm(
    engine: Engine,
    image: images.KernelImage,
    config: dict[str, Any],
    engine_kind: str,
    progress: images.Progress,
) -> None:
    """A Slurm kernel: the image put where the nodes' runtime takes it from, by id, once."""
    if config.get("backend") != "slurm":
        return
    checked = validate_config(config)
    folder = job_request(checked).images
    phase(progress, f"staging the image for {checked.runtime} on the Slurm nodes")
    path = node.stage_image(engine, image.id, image.tag, checked.runtime, folder, engine_kind)
    progress(f"staged {path}")


def _say_who_keeps_the_old_build(tag: str, name: str, url: str, progress: images.Progress) -> None:
    """After a rebuild, the other kernelspecs of the same content keep their image id."""
    if sharing := _sharing(tag, name, url):
        note(
            progress,
            f"{len(sharing)} other kernel(s) keep running the build they were installed "
            "with (reinstall them to move): " + ", ".join(sharing),
        )


def _warn_about_podman(host: PodmanHost, config: dict[str, Any], progress: images.Progress) -> None:
    """What rootless Podman here will not do as asked, said before the build."""
    limits = host.limits_warning({"pids_limit": DEFAULT_PIDS_LIMIT, **config})
    for warning in (limits, host.storage_warning):
        if warning:
            note(progress, f"warning: {warning}")


def _spec_of(name: str) -> dict[str, Any] | None:
    """The kernel.json of the installed distro kernel ``name``, if there is one."""
    kernel = next((k for k in kernelspecs.installed_kernels() if k.name == name), None)
    return kernel.spec if kernel else None


def _installed_on(url: str) -> list[kernelspecs.InstalledKernel]:
    return [kernel for kernel in kernelspecs.installed_kernels() if kernel.engine_url == url]


def _sharing(tag: str, name: str, url: str) -> list[str]:
    """The other kernelspecs naming the same content: a rebuild does not change what
    they run (their image id)."""
    return [
        kernel.name for kernel in _installed_on(url) if kernel.image == tag and kernel.name != name
    ]
