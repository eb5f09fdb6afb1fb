"""Commands about installed kernels: list, images, remove, copy, gc, doctor."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

from .. import kernelspecs, orphans, owners, pool, references, usage
from ..engine import Engine
from ..errors import EngineUnavailable, ImageNotFound
from ..ids import short_id
from ..slurm import jobs as slurm_jobs
from .common import connect, kernels_by_engine, mb, say, table


def cmd_list(args: argparse.Namespace) -> int:
    rows = []
    for url, kernels in kernels_by_engine().items():
        warm: dict[str, list[int | None]] = {}
        try:
            engine = Engine.connect(url)
            built = references.reconcile(engine, kernels)
            for idle in pool.idle_warm_containers(engine):
                if idle.serves:  # a killed server's leftovers are gc's, not warm
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
        from .. import pins  # nbformat: only the notebook commands import it

        pinned_by = pins.pinned_by(Path(args.notebooks), say)
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
        "platform",
        "image",
        "status",
        "warm",
        "runs_on",
        "limits",
        *(["pinned_by"] if args.notebooks else []),
    ]
    print(table([c.upper() for c in columns], [[str(row[c]) for c in columns] for row in rows]))
    return 0


def _list_row(
    kernel: kernelspecs.InstalledKernel, status: str, warm: list[int | None]
) -> dict[str, Any]:
    """``warm``: the memory of each of this user's idle warm containers of the kernel."""
    backend = kernel.setting("backend")
    known = [size for size in warm if size is not None]
    return {
        "name": kernel.name,
        "display_name": kernel.spec.get("display_name", ""),
        "distro": kernel.info.get("distro", ""),
        "python": kernel.info.get("python", ""),
        "platform": kernel.info.get("platform", ""),
        "ipykernel": kernel.info.get("ipykernel", ""),
        "image": kernel.image,
        "status": status,
        "warm": _warm_cell(warm, known),
        "warm_containers": len(warm),
        "warm_memory_bytes": known,
        "engine": kernel.engine,
        "runs_on": f"{'swarm' if backend == 'swarm' else kernel.engine} "
        f"{kernel.docker_host or '(default)'}",
        "image_in_registry": kernel.setting("pushed_image"),
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
    return f"{len(warm)} ({mb(sum(known) // len(known)) + ' each' if known else 'memory unknown'})"


def cmd_images(args: argparse.Namespace) -> int:
    """Per engine a kernelspec names: sizes per kernel, and what no reference holds."""
    kernels_json: list[dict[str, Any]] = []
    engines_json: list[dict[str, Any]] = []
    rows = []
    for url, kernels in kernels_by_engine().items():
        engine = connect(url)
        if engine is None:
            rows += [[k.name, "", "", "", "", "", "engine down", url] for k in kernels]
            continue
        report = usage.disk_usage(engine, kernels)
        loose = references.unreferenced(engine)
        where = url or "default"
        for k in report.kernels:
            kernels_json.append({**dataclasses.asdict(k), "engine": where})
            sizes = (k.base, k.dependency, k.extras, k.shared)
            rows.append([k.name, k.platform, *(mb(v) for v in sizes), k.status, where])
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
    header = ["NAME", "PLATFORM", "BASE", "DEPENDENCY", "EXTRAS", "SHARED", "STATUS", "ENGINE"]
    print(table(header, rows))
    for entry in engines_json:
        print(
            f"{entry['engine']}: {mb(entry['total'])} on disk for the installed kernels, shared "
            f"layers counted once; {mb(entry['unreferenced_bytes'])} in "
            f"{len(entry['unreferenced_images'])} unreferenced image(s) (distrokernels gc --images)"
        )
    return 0


def cmd_copy(args: argparse.Namespace) -> int:
    """The swarm runs a kernel by image id: the same id must be on every node."""
    kernel = kernelspecs.find(args.name)
    source = Engine.connect(kernel.engine_url)
    image_id = kernel.setting("image_id")
    for url in args.to:
        target = Engine.connect(url)
        if image_id and target.find_image(image_id):
            say(f"{url}: {kernel.image} is there already")
            continue
        say(f"{url}: copying {kernel.image}")
        source.copy_image_to(target, kernel.image)
        if image_id and not target.find_image(image_id):
            raise ImageNotFound(
                f"{url} did not receive {kernel.image} with id {short_id(image_id)}",
                "check that engine's disk space and logs",
            )
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    kernel = kernelspecs.find(args.name)
    folder = kernelspecs.remove(args.name)
    say(f"removed kernelspec {args.name!r} from {folder}")
    with contextlib.suppress(EngineUnavailable):  # no engine, no warm container either
        engine = Engine.connect(kernel.engine_url)
        if dropped := pool.drop_kernelspecs(engine, {args.name}):
            say(f"removed {dropped} warm container(s) of {args.name!r}")
        if not args.image:
            references.drop(engine, args.name)  # its image is then gc --images' to judge
    if args.image:
        engine = Engine.connect(kernel.engine_url)
        mine = kernels_by_engine().get(kernel.engine_url, [])
        released = references.release(engine, kernel, mine)
        if released.removed:
            say(f"removed image {released.image}")
        elif released.users is not None:
            say(f"kept image {released.image}: still used by {released.users.describe()}")
        else:
            say(f"no image {released.image}")
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    """On the default engine, and on every other engine an installed kernel runs on."""
    removed = []
    for url, kernels in kernels_by_engine().items():
        engine = connect(url)
        if engine is None:
            continue
        references.reconcile(engine, kernels)
        removed += orphans.collect(engine)
        if args.images:
            _collect_images(engine, url or "the default engine", args.dry_run)
    for kernel in removed:
        print(f"removed {kernel.name} (kernel {kernel.labels.get('distrokernels.kernel-id')})")
    print(f"{len(removed)} orphaned kernel container(s) or service(s) removed")
    if shutil.which("squeue"):  # a Slurm submit host: the user's kernel jobs too
        cancelled = slurm_jobs.collect(owners.owner_is_gone)
        for job in cancelled:
            print(f"cancelled Slurm job {job.id} ({job.comment})")
        print(f"{len(cancelled)} orphaned Slurm kernel job(s) cancelled")
    return 0


def _collect_images(engine: Engine, where: str, dry_run: bool) -> None:
    """Kernel images that no reference and no container uses (after the orphans went)."""
    found = references.unreferenced(engine)
    verb = "would remove" if dry_run else "removed"
    freed = found.unique_bytes if dry_run else references.collect(engine, found)
    for name in found.names:
        print(f"{verb} image {name} on {where}")
    done = f"{mb(freed)} to reclaim (a dry run)" if dry_run else f"removed, {mb(freed)} reclaimed"
    print(f"{where}: {len(found.images)} unreferenced image(s) {done}")


def cmd_doctor(args: argparse.Namespace) -> int:
    from .. import doctor

    checks = doctor.run_checks()
    for check in checks:
        print(check.line())
    failed = [check for check in checks if not check.ok]
    say(f"{len(failed)} of {len(checks)} check(s) failed" if failed else "all checks passed")
    return 1 if failed else 0


def register(commands: Any) -> None:
    """The parsers of the commands about installed kernels."""
    listing = commands.add_parser("list", help="the installed distro kernels")
    listing.add_argument("--json", action="store_true")
    listing.add_argument(
        "--notebooks",
        metavar="FOLDER",
        help="mark kernels the folder's pinned notebooks drift from",
    )
    listing.set_defaults(run=cmd_list)

    du = commands.add_parser(
        "images", aliases=["du"], help="disk use per kernel, shared layers counted once"
    )
    du.add_argument("--json", action="store_true")
    du.set_defaults(run=cmd_images)

    remove = commands.add_parser("remove", help="unregister a distro kernel")
    remove.add_argument("name")
    remove.add_argument("--image", action="store_true", help="also delete its image")
    remove.set_defaults(
        run=cmd_remove,
        leaves="what is said above was removed; run it again to finish (or `distrokernels list`)",
    )

    copy = commands.add_parser(
        "copy", help="copy a kernel's image to other engines (swarm nodes), id unchanged"
    )
    copy.add_argument("name")
    copy.add_argument("--to", action="append", required=True, metavar="URL", help="an engine")
    copy.set_defaults(
        run=cmd_copy, leaves="an engine being copied to may hold a partial image; copy again"
    )

    gc = commands.add_parser("gc", help="remove containers whose Jupyter server is gone")
    gc.add_argument(
        "--images", action="store_true", help="also remove kernel images nothing references"
    )
    gc.add_argument("--dry-run", action="store_true", help="with --images: only list them")
    gc.set_defaults(
        run=cmd_gc, leaves="what is listed above was removed; run it again for the rest"
    )

    doctor = commands.add_parser("doctor", help="check what kernel starts need, with fixes")
    doctor.set_defaults(run=cmd_doctor)
