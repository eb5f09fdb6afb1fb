"""Commands that build: install, bootstrap, dockerfile, and export (a build's lock)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .. import bootstrap, images, installer, kernelspecs, locks
from ..checks import validate_reference
from ..config import cli_options, config_from_options, validate_config
from ..distros import OsRelease
from ..dockerfiles import plan_layer
from ..engine import Engine, engine_url
from ..errors import InvalidInput
from ..ids import short_id
from ..platforms import architecture
from ..probe import probe_image
from ..recipes import validate_package_names
from ..wheels import ipykernel_stack, parse_requirements, python_version
from .common import (
    chosen_engine,
    drift_argument,
    engine_argument,
    mb,
    output_arguments,
    read,
    reporting,
    wheel_source,
)


def cmd_install(args: argparse.Namespace) -> int:
    lock = locks.Lock.from_text(read(args.lock), args.lock) if args.lock else None
    reference = args.image or (lock.base_reference if lock else "")
    if not reference:
        raise InvalidInput("install needs an IMAGE or --lock FILE", "pass one")
    options = images.BuildOptions(
        extras=_extras(args, lock),
        source=wheel_source(args),
        lock=lock,
        rebuild=args.rebuild,
        allow_drift=args.allow_drift,
    )
    engine_kind = chosen_engine(args)
    config = _kernel_config(args, engine_kind)
    with reporting(args, "install") as report:
        installed = installer.install_kernel(
            reference,
            options,
            report,
            name=args.name,
            display_name=args.display_name,
            config=config,
            user=not args.sys_prefix and args.prefix is None,
            prefix=sys.prefix if args.sys_prefix else args.prefix,
            replace=args.replace,
            pull=not args.no_pull,
            docker_host=args.docker_host or "",
            push=args.push or "",
            engine_kind=engine_kind,
            arch=architecture(args.platform) if args.platform else None,
            force=args.force,
        )
        facts = installed.facts()
        report.finish(
            [
                f"installed {installed.display_name} as {installed.name}",
                f"  distro   {facts['distro']} ({facts['platform']})",
                f"  python   {facts['python']}, ipykernel {facts['ipykernel']}",
                f"  image    {facts['image']}, {mb(installed.added_bytes)} on {facts['base']}",
                f"  folder   {installed.folder}",
                f"  open it  jupyter lab, then pick {installed.display_name!r}",
            ]
        )
    print(json.dumps({**facts, "log": str(report.log_path)}) if args.json else installed.name)
    return 0


def _extras(args: argparse.Namespace, lock: locks.Lock | None) -> images.Extras:
    pip = list(args.pip or [])
    if args.requirements:
        pip += read(args.requirements).splitlines()
    packages = tuple(args.packages or [])
    if lock is not None:
        if pip or packages:
            raise InvalidInput("--lock fixes the extras", "drop --pip/--requirements/--packages")
        return images.Extras(lock.extras.pip, lock.extras.packages)
    return images.Extras(parse_requirements(pip), validate_package_names(packages))


def _kernel_config(args: argparse.Namespace, engine_kind: str) -> dict[str, Any]:
    """The kernelspec's config from the options generated from KernelConfig (its
    ``docker_host`` and ``engine`` the installer records), checked by its traits."""
    config = config_from_options(vars(args))
    validate_config({**config, "engine": engine_kind})
    config.pop("docker_host", None)
    return config


def cmd_export(args: argparse.Namespace) -> int:
    print(kernelspecs.find(args.name).lock_text(), end="")
    return 0


def cmd_bootstrap(args: argparse.Namespace) -> int:
    validate_reference(args.image)
    engine = Engine.connect(engine_url(chosen_engine(args)))
    arch = architecture(args.platform) if args.platform else None
    if arch is not None and arch == images.engine_architecture(engine):
        arch = None  # the host's own: the plain name
    with reporting(args, "bootstrap") as report:
        name, image_id = bootstrap.bootstrap_debian(
            engine,
            args.image,
            mirror=args.mirror,
            include=tuple(args.include),
            progress=report,
            arch=arch,
        )
        report.finish([f"bootstrapped {name} ({short_id(image_id)})"])
    print(image_id)
    return 0


def cmd_dockerfile(args: argparse.Namespace) -> int:
    if args.os_release:
        os_release = OsRelease.parse(read(args.os_release))
        plan = plan_layer("<base image>", os_release)
        requirements = ipykernel_stack(python_version(args.python)) if args.python else None
    elif args.image:
        validate_reference(args.image)
        engine = Engine.connect()
        base = engine.find_image(args.image)
        if base is None:
            raise InvalidInput(f"{args.image} is not on this machine", f"docker pull {args.image}")
        probe = probe_image(engine, base["Id"])
        plan = plan_layer(base["Id"], probe.os_release, probe.python_path)
        version = args.python or probe.python_full_version
        requirements = ipykernel_stack(python_version(version)) if version else None
    else:
        raise InvalidInput("dockerfile needs an IMAGE or --os-release FILE", "pass one")
    print(plan.dockerfile(requirements), end="")
    return 0


def register(commands: Any) -> None:
    """The build commands' parsers."""
    _install_parser(commands)
    export = commands.add_parser("export", help="print a kernel's lock (for install --lock)")
    export.add_argument("name")
    export.set_defaults(run=cmd_export)

    boot = commands.add_parser("bootstrap", help="make a Debian base image from the archive")
    boot.add_argument("image", help="debian:bullseye|bookworm|trixie|sid (or 11/12/13)")
    boot.add_argument("--mirror", default=bootstrap.DEFAULT_MIRROR)
    engine_argument(boot)
    output_arguments(boot)
    boot.add_argument("--include", action="append", default=[], help="extra package")
    boot.add_argument(
        "--platform",
        metavar="PLATFORM",
        help="another architecture, e.g. linux/arm64 (stored as arm64v8/debian:SUITE)",
    )
    boot.set_defaults(run=cmd_bootstrap, leaves="no base image was tagged")

    dockerfile = commands.add_parser("dockerfile", help="print the Dockerfile install builds")
    dockerfile.add_argument("image", nargs="?")
    dockerfile.add_argument("--os-release", help="render for this os-release file instead")
    dockerfile.add_argument("--python", help="the image's Python version, e.g. 3.11")
    dockerfile.set_defaults(run=cmd_dockerfile)


def _install_parser(commands: Any) -> None:
    install = commands.add_parser("install", help="build a distro kernel and register it")
    install.add_argument(
        "image", nargs="?", help="base image, e.g. debian:bookworm (default: the lock's)"
    )
    install.add_argument("--name", help="kernelspec name (default: distro-<id>-<version>)")
    install.add_argument("--display-name", help="name shown in Jupyter")
    where = install.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="install for this user (default)")
    where.add_argument("--sys-prefix", action="store_true", help="install into sys.prefix")
    where.add_argument("--prefix", help="install into PREFIX/share/jupyter/kernels")
    install.add_argument("--replace", action="store_true", help="overwrite a kernelspec")
    install.add_argument("--no-pull", action="store_true", help="never pull the base image")
    install.add_argument("--rebuild", action="store_true", help="ignore the build cache")
    install.add_argument(
        "--platform",
        metavar="PLATFORM",
        help="build for another architecture, e.g. linux/arm64, linux/386 (default: the host's)",
    )
    install.add_argument(
        "--force",
        action="store_true",
        help="build even when the host's kernel cannot run the image (said, not refused)",
    )
    settings = install.add_argument_group("kernel settings (recorded in kernel.json)")
    for option in cli_options():
        settings.add_argument(option.flag, **option.kwargs)
    engine_argument(install)
    output_arguments(install, json_too=True)
    install.add_argument(
        "--push",
        metavar="REPOSITORY",
        help="push the image (e.g. registry.example:5000/kernels) so every node can pull it",
    )
    install.add_argument("--pip", nargs="+", metavar="REQ", help="extra Python packages")
    install.add_argument("--requirements", metavar="FILE", help="extra Python packages, a file")
    install.add_argument("--packages", nargs="+", metavar="PKG", help="extra distro packages")
    install.add_argument("--lock", metavar="FILE", help="rebuild exactly what an export recorded")
    drift_argument(install, "with --lock: accept a rebuild that differs from it (said)")
    install.add_argument("--wheelhouse", metavar="DIR", help="a folder of wheels to use too")
    install.add_argument("--offline", action="store_true", help="no network at all")
    install.set_defaults(
        run=cmd_install,
        leaves="no kernelspec was written (built layers stay in the build cache)",
    )
