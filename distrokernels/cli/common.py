"""What every command module shares: output, reading files, engines, common options.

Results go to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

from .. import kernelspecs
from ..engine import ENGINES, Engine, choose_engine, engine_url
from ..errors import EngineUnavailable, InvalidInput
from ..reporting import Report, log_path
from ..reporting import table as fitted_table
from ..wheels import WheelSource


def progress(line: str) -> None:
    print(f"  {line}", file=sys.stderr, flush=True)


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def read(path: str) -> str:
    """A file the user named, or one line saying why it cannot be read."""
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput(f"cannot read {path}: {error}", "check the path") from error


@contextlib.contextmanager
def reporting(args: argparse.Namespace, command: str) -> Iterator[Report]:
    """A Report for a long command: phases on a terminal, plain lines elsewhere; on
    failure its failing phase, output tail and log path (main prints the error)."""
    mode = "verbose" if args.verbose else "quiet" if args.quiet or args.json else "auto"
    report = Report(mode, log_path(command))
    try:
        yield report
    except BaseException:
        report.fail()
        raise


def wheel_source(args: argparse.Namespace) -> WheelSource:
    wheelhouse = Path(args.wheelhouse).resolve() if args.wheelhouse else None
    if wheelhouse is not None and not wheelhouse.is_dir():
        raise InvalidInput(f"--wheelhouse {args.wheelhouse} is not a folder", "fix the path")
    if args.offline and wheelhouse is None:
        raise InvalidInput(
            "--offline needs --wheelhouse DIR: the wheels have to come from somewhere",
            "fill one with `pip download -d DIR ...` while online",
        )
    return WheelSource(wheelhouse=wheelhouse, offline=args.offline)


def kernels_by_engine() -> dict[str, list[kernelspecs.InstalledKernel]]:
    """The installed distro kernels per engine URL; the user's default engine (dockerd,
    or their Podman when dockerd is closed to them) always."""
    grouped: dict[str, list[kernelspecs.InstalledKernel]] = {default_engine_url(): []}
    for kernel in kernelspecs.installed_kernels():
        grouped.setdefault(kernel.engine_url, []).append(kernel)
    return grouped


def default_engine_url() -> str:
    return engine_url(choose_engine("auto"))


def connect(url: str) -> Engine | None:
    """The engine at ``url``; None for an unreachable named engine (the default one's
    error is the command's error)."""
    try:
        return Engine.connect(url)
    except EngineUnavailable as error:
        if url == default_engine_url():
            raise
        say(f"skipped {url}: {error}")
        return None


def mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def table(header: list[str], rows: list[list[str]]) -> str:
    """On a terminal, fitted to its width (long cells elided in the middle); piped, whole
    (scripts want --json, but a grep still finds every value)."""
    width = shutil.get_terminal_size().columns if sys.stdout.isatty() else 0
    return fitted_table(header, rows, width)


def output_arguments(parser: argparse.ArgumentParser, json_too: bool = False) -> None:
    """How a long command reports: phases (default), everything, or only errors."""
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("-v", "--verbose", action="store_true", help="stream the tools' output")
    shown.add_argument("-q", "--quiet", action="store_true", help="only errors and the result")
    if json_too:
        shown.add_argument("--json", action="store_true", help="the result as JSON on stdout")
    else:
        parser.set_defaults(json=False)


def drift_argument(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--allow-drift", action="store_true", help=what)


def engine_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--engine",
        choices=["auto", *ENGINES],
        default="auto",
        help="dockerd, or your rootless Podman (no root daemon, no docker group); auto "
        "(default): dockerd when you can reach it, else Podman when it is installed",
    )


def chosen_engine(args: argparse.Namespace) -> str:
    """The engine `--engine` names, or auto's choice."""
    return choose_engine(args.engine, getattr(args, "docker_host", None) or "")
