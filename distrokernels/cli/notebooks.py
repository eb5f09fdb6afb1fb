"""Commands on notebooks: run one headless, pin kernels' locks in, sync kernels from pins."""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from ..errors import InvalidInput
from ..ids import short_id
from .common import drift_argument, output_arguments, progress, reporting, say, table, wheel_source


def cmd_run(args: argparse.Namespace) -> int:
    from .. import runner  # nbformat's schema validation costs most of a second to import

    output = Path(args.output) if args.output else None
    target = runner.run_notebook(
        Path(args.notebook),
        args.kernel,
        output,
        install=args.install,
        progress=progress,
        allow_drift=args.allow_drift,
    )
    say(f"executed {args.notebook} -> {target}")
    return 0


def cmd_pin(args: argparse.Namespace) -> int:
    from .. import pins  # nbformat: only the notebook commands import it

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
            say(f"skipped {path}: {error.what}")
            continue
        print(f"{path}: {pin.kernelspec} ({pin.display_name}), lock {short_id(pin.digest)}")
        pinned += 1
    say(f"pinned {pinned} of {len(notebooks)} notebook(s)")
    if not pinned:
        raise InvalidInput(
            f"no notebook under {' '.join(args.paths)} runs in a distro kernel",
            "pass --kernel NAME to pin them to one",
        )
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    from .. import pins

    with reporting(args, "sync") as report:
        results = pins.sync(
            [Path(path) for path in args.paths],
            wheel_source(args),
            dry_run=args.dry_run,
            allow_drift=args.allow_drift,
            progress=report,
        )
        counts = Counter(result.outcome.value for result in results)
        report.finish([", ".join(f"{count} {status}" for status, count in sorted(counts.items()))])
    rows = [[str(r.notebook), r.kernel or "-", r.status] for r in results]
    print(table(["NOTEBOOK", "KERNEL", "STATUS"], rows))
    return 1 if any(result.outcome is pins.SyncOutcome.FAILED for result in results) else 0


def cmd_test(args: argparse.Namespace) -> int:
    from .. import matrix  # nbformat and nbclient: only the notebook commands import them
    from ..outputs import Sanitizer

    notebooks = matrix.notebooks_in([Path(path) for path in args.paths])
    kernels = matrix.choose_kernels([k for k in ",".join(args.kernels).split(",") if k])
    sanitizer = Sanitizer.from_file(Path(args.sanitize_with)) if args.sanitize_with else None
    result = matrix.run_matrix(
        notebooks,
        kernels,
        reference=args.reference or "",
        against_stored=args.against_stored,
        timeout=args.timeout,
        jobs=args.jobs,
        sanitizer=sanitizer,
        progress=progress,
    )
    if args.report:
        from .. import report

        Path(args.report).write_text(report.render(result, sanitizer))
        say(f"report: {args.report}")
    if args.json:
        print(json.dumps(result.as_json(), indent=2))
    else:
        print(table(["NOTEBOOK", *(kernel.header for kernel in kernels)], result.rows()))
    failed = result.failed or (args.strict and result.differs)
    say(f"compared with {result.reference}: " + ("FAILED" if failed else "ok"))
    return 1 if failed else 0


def register(commands: Any) -> None:
    """The notebook commands' parsers."""
    run = commands.add_parser("run", help="execute a notebook headless in its distro kernel")
    run.add_argument("notebook")
    run.add_argument(
        "--kernel", help="kernelspec name (default: the notebook's own, checked against its pin)"
    )
    run.add_argument("--output", help="where to write the executed notebook (default: in place)")
    run.add_argument(
        "--install", action="store_true", help="install the notebook's kernel if it is missing"
    )
    drift_argument(run, "run a pinned notebook in its kernel as installed, even if it drifted")
    run.set_defaults(run=cmd_run, leaves="the notebook was not written; its kernel was stopped")

    pin = commands.add_parser("pin", help="embed the lock of a notebook's kernel in it")
    pin.add_argument("paths", nargs="+", metavar="NOTEBOOK|FOLDER")
    pin.add_argument("--kernel", help="pin to this distro kernel (default: each notebook's own)")
    pin.set_defaults(
        run=cmd_pin, leaves="the notebooks listed above are pinned; the others are unchanged"
    )

    _register_test(commands)

    sync = commands.add_parser("sync", help="install the kernels pinned notebooks name")
    sync.add_argument("paths", nargs="+", metavar="NOTEBOOK|FOLDER")
    sync.add_argument("--dry-run", action="store_true", help="only say what would be installed")
    sync.add_argument("--wheelhouse", metavar="DIR", help="a folder of wheels to use too")
    sync.add_argument("--offline", action="store_true", help="no network at all")
    drift_argument(sync, "accept a rebuild that differs from the pinned lock (said, not refused)")
    output_arguments(sync)
    sync.set_defaults(
        run=cmd_sync, leaves="kernels reported installed are registered; the rest are not"
    )


def _register_test(commands: Any) -> None:
    """`test`'s parser: notebooks x kernels."""
    test = commands.add_parser(
        "test", help="run notebooks in several distro kernels and compare their outputs"
    )
    test.add_argument("paths", nargs="+", metavar="NOTEBOOK|FOLDER")
    test.add_argument(
        "--kernels",
        action="append",
        required=True,
        metavar="NAMES",
        help="kernels to run in: names, globs on names, or all (comma-separated, repeatable)",
    )
    test.add_argument("--reference", metavar="KERNEL", help="compare with it (default: the first)")
    test.add_argument(
        "--against-stored", action="store_true", help="compare with the outputs in the notebook"
    )
    test.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        metavar="N",
        help="runs at once (default: one per CPU: a start is CPU-bound, memory is not the limit)",
    )
    test.add_argument(
        "--timeout", type=int, default=600, metavar="S", help="seconds per cell (default 600)"
    )
    test.add_argument(
        "--sanitize-with", metavar="FILE", help="regex replacements before comparing (nbval's)"
    )
    test.add_argument("--strict", action="store_true", help="a difference fails too")
    test.add_argument(
        "--report", metavar="FILE.html", help="also write the matrix and every difference there"
    )
    test.add_argument("--json", action="store_true", help="the whole result as JSON on stdout")
    test.set_defaults(run=cmd_test, leaves="its runs were stopped; nothing was written")
