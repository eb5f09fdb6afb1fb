"""The ``distrokernels`` command. Thin: it parses, calls the modules, prints, exits.

Progress goes to stderr, results to stdout. Any DistroKernelsError becomes one line
``distrokernels: error: ...`` and its exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import shutil
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

from . import __version__, bootstrap, images, installer, kernelspecs, locks, pool, references, usage
from .distros import OsRelease
from .dockerfiles import plan_layer
from .engine import ENGINES, Engine, choose_engine, engine_url
from .errors import DistroKernelsError, EngineUnavailable, ImageNotFound, InvalidInput
from .probe import probe_image
from .recipes import validate_package_names
from .reporting import Report, log_path, table
from .wheels import WheelSource, ipykernel_stack, parse_requirements, python_version


def _progress(line: str) -> None:
    print(f"  {line}", file=sys.stderr, flush=True)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _read(path: str) -> str:
    """A file the user named, or one line saying why it cannot be read."""
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput(f"cannot read {path}: {error}", "check the path") from error


def cmd_install(args: argparse.Namespace) -> int:
    lock = locks.Lock.from_text(_read(args.lock), args.lock) if args.lock else None
    reference = args.image or (lock.base_reference if lock else "")
    if not reference:
        raise InvalidInput("install needs an IMAGE or --lock FILE", "pass one")
    options = images.BuildOptions(
        extras=_extras(args, lock),
        source=_wheel_source(args),
        lock=lock,
        rebuild=args.rebuild,
        allow_drift=args.allow_drift,
    )
    engine_kind = _engine(args)
    config = _provisioner_config(args, engine_kind)
    with _reporting(args, "install") as report:
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
        )
        facts = installed.facts()
        report.finish(
            [
                f"installed {installed.display_name} as {installed.name}",
                f"  distro   {facts['distro']}",
                f"  python   {facts['python']}, ipykernel {facts['ipykernel']}",
                f"  image    {facts['image']}, {_mb(installed.added_bytes)} on {facts['base']}",
                f"  folder   {installed.folder}",
                f"  open it  jupyter lab, then pick {installed.display_name!r}",
            ]
        )
    print(json.dumps({**facts, "log": str(report.log_path)}) if args.json else installed.name)
    return 0


@contextlib.contextmanager
def _reporting(args: argparse.Namespace, command: str) -> Iterator[Report]:
    """A Report for a long command: phases on a terminal, plain lines elsewhere; on
    failure its failing phase, output tail and log path (main prints the error)."""
    mode = "verbose" if args.verbose else "quiet" if args.quiet or args.json else "auto"
    report = Report(mode, log_path(command))
    try:
        yield report
    except BaseException:
        report.fail()
        raise


def _extras(args: argparse.Namespace, lock: locks.Lock | None) -> images.Extras:
    pip = list(args.pip or [])
    if args.requirements:
        pip += _read(args.requirements).splitlines()
    packages = tuple(args.packages or [])
    if lock is not None:
        if pip or packages:
            raise InvalidInput("--lock fixes the extras", "drop --pip/--requirements/--packages")
        return images.Extras(tuple(lock.extras["pip"]), tuple(lock.extras["packages"]))
    return images.Extras(parse_requirements(pip), validate_package_names(packages))


def _wheel_source(args: argparse.Namespace) -> WheelSource:
    wheelhouse = Path(args.wheelhouse).resolve() if args.wheelhouse else None
    if wheelhouse is not None and not wheelhouse.is_dir():
        raise InvalidInput(f"--wheelhouse {args.wheelhouse} is not a folder", "fix the path")
    if args.offline and wheelhouse is None:
        raise InvalidInput(
            "--offline needs --wheelhouse DIR: the wheels have to come from somewhere",
            "fill one with `pip download -d DIR ...` while online",
        )
    return WheelSource(wheelhouse=wheelhouse, offline=args.offline)


def cmd_export(args: argparse.Namespace) -> int:
    print(kernelspecs.find(args.name).lock_text(), end="")
    return 0


def cmd_images(args: argparse.Namespace) -> int:
    """Per engine a kernelspec names: sizes per kernel, and what no reference holds."""
    kernels_json: list[dict[str, Any]] = []
    engines_json: list[dict[str, Any]] = []
    rows = []
    for url, kernels in _kernels_by_engine().items():
        engine = _connect(url)
        if engine is None:
            rows += [[k.name, "", "", "", "", "engine down", url] for k in kernels]
            continue
        report = usage.disk_usage(engine, kernels)
        loose = references.unreferenced(engine)
        where = url or "default"
        for k in report.kernels:
            kernels_json.append({**dataclasses.asdict(k), "engine": where})
            sizes = (k.base, k.dependency, k.extras, k.shared)
            rows.append([k.name, *(_mb(v) for v in sizes), k.status, where])
        engines_json.append(
            {
                "engine": where,
                "total": report.total,
                "unreferenced_images": loose.names,
                "unreferenced_bytes": loose.unique_bytes,
            }
        )
    if args.json:
        total = sum(entry["total"] for entry in engines_json)
        print(json.dumps({"kernels": kernels_json, "total": total, "engines": engines_json}))
        return 0
    header = ["NAME", "BASE", "DEPENDENCY", "EXTRAS", "SHARED", "STATUS", "ENGINE"]
    print(_table(header, rows))
    for entry in engines_json:
        print(
            f"{entry['engine']}: {_mb(entry['total'])} on disk for the installed kernels, shared "
            f"layers counted once; {_mb(entry['unreferenced_bytes'])} in "
            f"{len(entry['unreferenced_images'])} unreferenced image(s) (distrokernels gc --images)"
        )
    return 0


def _kernels_by_engine() -> dict[str, list[kernelspecs.InstalledKernel]]:
    """The installed distro kernels per engine URL; the user's default engine (dockerd,
    or their Podman when dockerd is closed to them) always."""
    grouped: dict[str, list[kernelspecs.InstalledKernel]] = {_default_engine_url(): []}
    for kernel in kernelspecs.installed_kernels():
        grouped.setdefault(kernel.engine_url, []).append(kernel)
    return grouped


def _default_engine_url() -> str:
    return engine_url(choose_engine("auto"))


def _connect(url: str) -> Engine | None:
    """The engine at ``url``; None for an unreachable named engine (the default one's
    error is the command's error)."""
    try:
        return Engine.connect(url)
    except EngineUnavailable as error:
        if url == _default_engine_url():
            raise
        _say(f"skipped {url}: {error}")
        return None


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def _provisioner_config(args: argparse.Namespace, engine_kind: str) -> dict[str, Any]:
    """The kernelspec's provisioner config, checked by the provisioner's own traits."""
    options = {
        "network_mode": args.network,
        "memory": args.memory,
        "cpus": args.cpus,
        "pids_limit": args.pids_limit,
        "cap_add": args.cap_add,
        "no_new_privileges": False if args.allow_new_privileges else None,
        "mounts": args.mount,
        "backend": None if args.backend == "docker" else args.backend,
        "constraints": args.constraint,
        "plaintext_tcp": args.plaintext_tcp or None,
        "work_volume": args.work_volume,
        "pool_size": args.pool,
    }
    config = {key: value for key, value in options.items() if value is not None}
    from .provisioner import validate_config  # jupyter_client's provisioning: only here

    validate_config({**config, "docker_host": args.docker_host or "", "engine": engine_kind})
    return config


def cmd_bootstrap(args: argparse.Namespace) -> int:
    images.validate_reference(args.image)
    engine = Engine.connect(engine_url(_engine(args)))
    with _reporting(args, "bootstrap") as report:
        image_id = bootstrap.bootstrap_debian(
            engine, args.image, mirror=args.mirror, include=tuple(args.include), progress=report
        )
        report.finish([f"bootstrapped {args.image} ({image_id[:19]})"])
    print(image_id)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    rows = []
    for url, kernels in _kernels_by_engine().items():
        warm: dict[str, list[int | None]] = {}
        try:
            engine = Engine.connect(url)
            built = references.reconcile(engine, kernels)
            for idle in pool.idle_warm_containers(engine):
                warm.setdefault(idle.kernelspec, []).append(engine.container_memory(idle.id))
        except EngineUnavailable:
            built = None
        for kernel in kernels:
            if built is None:
                status = "engine down"
            else:
                status = "built" if built[kernel.name] else "missing"
            rows.append(_list_row(kernel, status, warm.get(kernel.name, [])))
    rows.sort(key=lambda row: row["name"])
    if args.notebooks:
        from . import pins  # nbformat: only the notebook commands import it

        pinned_by = pins.pinned_by(Path(args.notebooks), _say)
        for row in rows:
            row["pinned_by"] = pinned_by.get(row["name"], "-")
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    columns = [
        "name",
        "display_name",
        "distro",
        "python",
        "image",
        "status",
        "warm",
        "runs_on",
        "limits",
        *(["pinned_by"] if args.notebooks else []),
    ]
    print(_table([c.upper() for c in columns], [[str(row[c]) for c in columns] for row in rows]))
    return 0


def _list_row(
    kernel: kernelspecs.InstalledKernel, status: str, warm: list[int | None]
) -> dict[str, Any]:
    """``warm``: the memory of each of this user's idle warm containers of the kernel."""
    backend = kernel.config.get("backend", "docker")
    known = [size for size in warm if size is not None]
    return {
        "name": kernel.name,
        "display_name": kernel.spec.get("display_name", ""),
        "distro": kernel.info.get("distro", ""),
        "python": kernel.info.get("python", ""),
        "ipykernel": kernel.info.get("ipykernel", ""),
        "image": kernel.image,
        "status": status,
        "warm": _warm_cell(warm, known),
        "warm_containers": len(warm),
        "warm_memory_bytes": known,
        "engine": kernel.engine,
        "runs_on": f"{'swarm' if backend == 'swarm' else kernel.engine} "
        f"{kernel.docker_host or '(default)'}",
        "image_in_registry": kernel.config.get("pushed_image", ""),
        "limits": " ".join(
            f"{key}={kernel.config[key]}"
            for key in ("memory", "cpus", "pids_limit", "cap_add")
            if key in kernel.config
        ),
        "path": kernel.resource_dir,
    }


def _warm_cell(warm: list[int | None], known: list[int]) -> str:
    """'2 (35.1 MB each)'; rootless Podman on cgroup v1 cannot tell a container's memory."""
    if not warm:
        return "-"
    return f"{len(warm)} ({_mb(sum(known) // len(known)) + ' each' if known else 'memory unknown'})"


def _table(header: list[str], rows: list[list[str]]) -> str:
    """On a terminal, fitted to its width (long cells elided in the middle); piped, whole
    (scripts want --json, but a grep still finds every value)."""
    width = shutil.get_terminal_size().columns if sys.stdout.isatty() else 0
    return table(header, rows, width)


def cmd_copy(args: argparse.Namespace) -> int:
    """The swarm runs a kernel by image id: the same id must be on every node."""
    kernel = kernelspecs.find(args.name)
    source = Engine.connect(kernel.engine_url)
    image_id = kernel.config.get("image_id", "")
    for url in args.to:
        target = Engine.connect(url)
        if image_id and target.find_image(image_id):
            _say(f"{url}: {kernel.image} is there already")
            continue
        _say(f"{url}: copying {kernel.image}")
        source.copy_image_to(target, kernel.image)
        if image_id and not target.find_image(image_id):
            raise ImageNotFound(
                f"{url} did not receive {kernel.image} with id {image_id[:19]}",
                "check that engine's disk space and logs",
            )
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    kernel = kernelspecs.find(args.name)
    folder = kernelspecs.remove(args.name)
    _say(f"removed kernelspec {args.name!r} from {folder}")
    with contextlib.suppress(EngineUnavailable):  # no engine, no warm container either
        engine = Engine.connect(kernel.engine_url)
        if dropped := pool.drop_kernelspecs(engine, {args.name}):
            _say(f"removed {dropped} warm container(s) of {args.name!r}")
        if not args.image:
            references.drop(engine, args.name)  # its image is then gc --images' to judge
    if args.image:
        engine = Engine.connect(kernel.engine_url)
        mine = _kernels_by_engine().get(kernel.engine_url, [])
        released = references.release(engine, kernel, mine)
        if released.removed:
            _say(f"removed image {released.image}")
        elif released.users is not None:
            _say(f"kept image {released.image}: still used by {released.users.describe()}")
        else:
            _say(f"no image {released.image}")
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    """On the default engine, and on every other engine an installed kernel runs on."""
    removed = []
    for url, kernels in _kernels_by_engine().items():
        engine = _connect(url)
        if engine is None:
            continue
        references.reconcile(engine, kernels)
        removed += engine.collect_orphans()
        if args.images:
            _collect_images(engine, url or "the default engine", args.dry_run)
    for kernel in removed:
        print(f"removed {kernel.name} (kernel {kernel.labels.get('distrokernels.kernel-id')})")
    _say(f"{len(removed)} orphaned kernel container(s) or service(s) removed")
    return 0


def _collect_images(engine: Engine, where: str, dry_run: bool) -> None:
    """Kernel images that no reference and no container uses (after the orphans went)."""
    found = references.unreferenced(engine)
    verb = "would remove" if dry_run else "removed"
    freed = found.unique_bytes if dry_run else references.collect(engine, found)
    for name in found.names:
        print(f"{verb} image {name} on {where}")
    _say(
        f"{where}: {len(found.images)} unreferenced image(s) {verb}, "
        f"{_mb(freed)} {'to reclaim' if dry_run else 'reclaimed'}"
    )


def cmd_dockerfile(args: argparse.Namespace) -> int:
    if args.os_release:
        os_release = OsRelease.parse(_read(args.os_release))
        plan = plan_layer("<base image>", os_release)
        requirements = ipykernel_stack(python_version(args.python)) if args.python else None
    elif args.image:
        images.validate_reference(args.image)
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


def cmd_run(args: argparse.Namespace) -> int:
    from . import runner  # nbformat's schema validation costs most of a second to import

    output = Path(args.output) if args.output else None
    target = runner.run_notebook(
        Path(args.notebook),
        args.kernel,
        output,
        install=args.install,
        progress=_progress,
        allow_drift=args.allow_drift,
    )
    _say(f"executed {args.notebook} -> {target}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from . import doctor

    checks = doctor.run_checks()
    for check in checks:
        print(check.line())
    failed = [check for check in checks if not check.ok]
    _say(f"{len(failed)} of {len(checks)} check(s) failed" if failed else "all checks passed")
    return 1 if failed else 0


def cmd_pin(args: argparse.Namespace) -> int:
    from . import pins  # nbformat: only the notebook commands import it

    paths = [Path(path) for path in args.paths]
    notebooks = pins.notebooks_in(paths)
    one_notebook = len(paths) == 1 and paths[0].is_file()
    pinned = 0
    for path in notebooks:
        try:
            pin = pins.pin_notebook(path, args.kernel)
        except InvalidInput as error:
            if one_notebook:
                raise
            _say(f"skipped {path}: {error.what}")
            continue
        print(f"{path}: {pin.kernelspec} ({pin.display_name}), lock {pin.digest[:19]}")
        pinned += 1
    _say(f"pinned {pinned} of {len(notebooks)} notebook(s)")
    if not pinned:
        raise InvalidInput(
            f"no notebook under {' '.join(args.paths)} runs in a distro kernel",
            "pass --kernel NAME to pin them to one",
        )
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    from . import pins

    with _reporting(args, "sync") as report:
        results = pins.sync(
            [Path(path) for path in args.paths],
            _wheel_source(args),
            dry_run=args.dry_run,
            allow_drift=args.allow_drift,
            progress=report,
        )
        counts = Counter(result.status.split(" (")[0].split(":")[0] for result in results)
        report.finish([", ".join(f"{count} {status}" for status, count in sorted(counts.items()))])
    rows = [[str(r.notebook), r.kernel or "-", r.status] for r in results]
    print(_table(["NOTEBOOK", "KERNEL", "STATUS"], rows))
    return 1 if any(result.status.startswith("failed") for result in results) else 0


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error in one line (the command's --help says the rest)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}: see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="distrokernels", description="Jupyter kernels in other Linux userlands.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

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
    install.add_argument("--network", choices=["bridge", "none", "host"], default="bridge")
    install.add_argument("--memory", help="memory limit, e.g. 2g")
    install.add_argument("--cpus", type=float, help="CPU limit, e.g. 1.5")
    install.add_argument("--mount", action="append", help="extra mount HOST[:CONTAINER][:ro|rw]")
    install.add_argument(
        "--docker-host", help="build and run on this engine (a DOCKER_HOST URL), not the default"
    )
    _engine_argument(install)
    _output_arguments(install, json_too=True)
    install.add_argument(
        "--backend",
        choices=["docker", "swarm"],
        default="docker",
        help="a container on the engine (default), or a service on its swarm",
    )
    install.add_argument(
        "--constraint", action="append", help="swarm placement, e.g. node.labels.gpu==1"
    )
    install.add_argument(
        "--push",
        metavar="REPOSITORY",
        help="push the image (e.g. registry.example:5000/kernels) so every node can pull it",
    )
    install.add_argument(
        "--plaintext-tcp",
        action="store_true",
        help="allow unencrypted TCP when the kernel's ipykernel cannot use CurveZMQ",
    )
    install.add_argument(
        "--work-volume", help="remote engine: the named volume mounted at /work as working folder"
    )
    install.add_argument(
        "--pool",
        type=int,
        metavar="N",
        help="warm containers a Jupyter server keeps for this kernel (default 1; 0: none)",
    )
    install.add_argument("--pids-limit", type=int, help="most processes (default 1024)")
    install.add_argument("--cap-add", action="append", help="add back a capability, e.g. CHOWN")
    install.add_argument(
        "--allow-new-privileges",
        action="store_true",
        help="allow setuid programs to gain privileges",
    )
    install.add_argument("--pip", nargs="+", metavar="REQ", help="extra Python packages")
    install.add_argument("--requirements", metavar="FILE", help="extra Python packages, a file")
    install.add_argument("--packages", nargs="+", metavar="PKG", help="extra distro packages")
    install.add_argument("--lock", metavar="FILE", help="rebuild exactly what an export recorded")
    _drift_argument(install, "with --lock: accept a rebuild that differs from it (said)")
    install.add_argument("--wheelhouse", metavar="DIR", help="a folder of wheels to use too")
    install.add_argument("--offline", action="store_true", help="no network at all")
    install.set_defaults(run=cmd_install)

    export = commands.add_parser("export", help="print a kernel's lock (for install --lock)")
    export.add_argument("name")
    export.set_defaults(run=cmd_export)

    du = commands.add_parser(
        "images", aliases=["du"], help="disk use per kernel, shared layers counted once"
    )
    du.add_argument("--json", action="store_true")
    du.set_defaults(run=cmd_images)

    boot = commands.add_parser("bootstrap", help="make a Debian base image from the archive")
    boot.add_argument("image", help="debian:bullseye|bookworm|trixie|sid (or 11/12/13)")
    boot.add_argument("--mirror", default=bootstrap.DEFAULT_MIRROR)
    _engine_argument(boot)
    _output_arguments(boot)
    boot.add_argument("--include", action="append", default=[], help="extra package")
    boot.set_defaults(run=cmd_bootstrap)

    listing = commands.add_parser("list", help="the installed distro kernels")
    listing.add_argument("--json", action="store_true")
    listing.add_argument(
        "--notebooks",
        metavar="FOLDER",
        help="mark kernels the folder's pinned notebooks drift from",
    )
    listing.set_defaults(run=cmd_list)

    remove = commands.add_parser("remove", help="unregister a distro kernel")
    remove.add_argument("name")
    remove.add_argument("--image", action="store_true", help="also delete its image")
    remove.set_defaults(run=cmd_remove)

    copy = commands.add_parser(
        "copy", help="copy a kernel's image to other engines (swarm nodes), id unchanged"
    )
    copy.add_argument("name")
    copy.add_argument("--to", action="append", required=True, metavar="URL", help="an engine")
    copy.set_defaults(run=cmd_copy)

    gc = commands.add_parser("gc", help="remove containers whose Jupyter server is gone")
    gc.add_argument(
        "--images", action="store_true", help="also remove kernel images nothing references"
    )
    gc.add_argument("--dry-run", action="store_true", help="with --images: only list them")
    gc.set_defaults(run=cmd_gc)

    dockerfile = commands.add_parser("dockerfile", help="print the Dockerfile install builds")
    dockerfile.add_argument("image", nargs="?")
    dockerfile.add_argument("--os-release", help="render for this os-release file instead")
    dockerfile.add_argument("--python", help="the image's Python version, e.g. 3.11")
    dockerfile.set_defaults(run=cmd_dockerfile)

    run = commands.add_parser("run", help="execute a notebook headless in its distro kernel")
    run.add_argument("notebook")
    run.add_argument(
        "--kernel", help="kernelspec name (default: the notebook's own, checked against its pin)"
    )
    run.add_argument("--output", help="where to write the executed notebook (default: in place)")
    run.add_argument(
        "--install", action="store_true", help="install the notebook's kernel if it is missing"
    )
    _drift_argument(run, "run a pinned notebook in its kernel as installed, even if it drifted")
    run.set_defaults(run=cmd_run)

    doctor = commands.add_parser("doctor", help="check what kernel starts need, with fixes")
    doctor.set_defaults(run=cmd_doctor)

    pin = commands.add_parser("pin", help="embed the lock of a notebook's kernel in it")
    pin.add_argument("paths", nargs="+", metavar="NOTEBOOK|FOLDER")
    pin.add_argument("--kernel", help="pin to this distro kernel (default: each notebook's own)")
    pin.set_defaults(run=cmd_pin)

    sync = commands.add_parser("sync", help="install the kernels pinned notebooks name")
    sync.add_argument("paths", nargs="+", metavar="NOTEBOOK|FOLDER")
    sync.add_argument("--dry-run", action="store_true", help="only say what would be installed")
    sync.add_argument("--wheelhouse", metavar="DIR", help="a folder of wheels to use too")
    sync.add_argument("--offline", action="store_true", help="no network at all")
    _drift_argument(sync, "accept a rebuild that differs from the pinned lock (said, not refused)")
    _output_arguments(sync)
    sync.set_defaults(run=cmd_sync)
    return parser


def _output_arguments(parser: argparse.ArgumentParser, json_too: bool = False) -> None:
    """How a long command reports: phases (default), everything, or only errors."""
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("-v", "--verbose", action="store_true", help="stream the tools' output")
    shown.add_argument("-q", "--quiet", action="store_true", help="only errors and the result")
    if json_too:
        shown.add_argument("--json", action="store_true", help="the result as JSON on stdout")
    else:
        parser.set_defaults(json=False)


def _drift_argument(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--allow-drift", action="store_true", help=what)


def _engine_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--engine",
        choices=["auto", *ENGINES],
        default="auto",
        help="dockerd, or your rootless Podman (no root daemon, no docker group); auto "
        "(default): dockerd when you can reach it, else Podman when it is installed",
    )


def _engine(args: argparse.Namespace) -> str:
    """The engine `--engine` names, or auto's choice."""
    return choose_engine(args.engine, getattr(args, "docker_host", None) or "")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
        return code
    except DistroKernelsError as error:
        print(f"distrokernels: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("distrokernels: interrupted; nothing was registered", file=sys.stderr)
        return 130
