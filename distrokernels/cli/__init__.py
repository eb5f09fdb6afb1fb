"""The ``distrokernels`` command (also ``jupyter distrokernels``). Thin: it parses, calls
the modules, prints, exits.

Each module of this package registers its subcommands next to their handlers; COMMANDS
lists them in the order ``--help`` shows. Results go to stdout, progress to stderr. Any
DistroKernelsError becomes one line ``distrokernels: error: ...`` and its exit code; an
interrupt says what the interrupted command leaves behind.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from .. import __version__
from ..errors import DistroKernelsError
from . import install, kernels, notebooks

COMMANDS: tuple[Callable[[Any], None], ...] = (
    install.register,
    kernels.register,
    notebooks.register,
)
_NOTHING_CHANGED = "nothing was changed"


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error in one line (the command's --help says the rest)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}: see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command, from each module's ``register``."""
    parser = _Parser(prog="distrokernels", description="Jupyter kernels in other Linux userlands.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for register in COMMANDS:
        register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit code."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
        return code
    except DistroKernelsError as error:
        print(f"distrokernels: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        leaves = getattr(args, "leaves", _NOTHING_CHANGED)
        print(f"distrokernels: interrupted: {leaves}", file=sys.stderr)
        return 130
