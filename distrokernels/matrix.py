"""One notebook, every userland: notebooks x kernels, run headless and compared.

Each notebook runs in each chosen kernel through nbclient, in a fresh copy of its folder
(runs cannot see each other's files), several at once, each cell with a timeout. Then
each kernel's outputs are compared cell by cell with a reference (the first kernel, one
named, or the outputs stored in the notebook), after outputs.py has normalised them.
The result is a matrix: passed, differs (N cells), failed at cell N, timeout at cell N.

Runs start cold: a warm container mounts its server's whole root folder, and runs that
must not see each other's files cannot share one.
"""

from __future__ import annotations

import asyncio
import fnmatch
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

from . import kernelspecs, pins
from .errors import InvalidInput
from .outputs import CellDifference, Sanitizer, differences

DEFAULT_TIMEOUT = 600  # seconds per cell, as `distrokernels run`
_FOLDER = "<folder>"  # what a run's own folder reads as in compared outputs
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Outcome(str, Enum):
    """How one notebook fared in one kernel."""

    PASSED = "passed"
    DIFFERS = "differs"
    FAILED = "failed"
    TIMEOUT = "timeout"


@dataclass(frozen=True)
class Kernel:
    """A column of the matrix: a distro kernel and what it runs."""

    name: str
    distro: str
    python: str

    @property
    def header(self) -> str:
        """'distro-debian-12 (Debian GNU/Linux 12 (bookworm), Python 3.11.2)'."""
        return f"{self.name} ({self.distro}, Python {self.python})"


@dataclass
class Run:
    """One notebook executed in one kernel."""

    notebook: Path
    kernel: str
    outcome: Outcome = Outcome.PASSED
    cell: int = 0  # the failing or timed-out cell, from 1
    error: str = ""  # its exception's name (and value)
    differences: list[CellDifference] = field(default_factory=list)
    cells: list[dict[str, Any]] = field(default_factory=list)  # as executed
    folder: str = ""  # where it ran (a temporary copy, gone after the run)

    @property
    def status(self) -> str:
        """The matrix's cell: 'passed', 'differs (3 cells)', 'failed at cell 7: E'."""
        if self.outcome is Outcome.DIFFERS:
            count = len(self.differences)
            return f"differs ({count} cell{'s' if count != 1 else ''})"
        if self.outcome is Outcome.FAILED:
            return f"failed at cell {self.cell}: {self.error}"
        if self.outcome is Outcome.TIMEOUT:
            return f"timeout at cell {self.cell}"
        return str(self.outcome.value)

    def as_json(self) -> dict[str, Any]:
        """What --json gives for this run."""
        return {
            "status": self.status,
            "outcome": self.outcome.value,
            "cell": self.cell or None,
            "error": self.error,
            "differences": [
                {"cell": d.index, "source": d.source, "diff": d.diff} for d in self.differences
            ],
        }


@dataclass
class Matrix:
    """Every notebook's runs, per kernel, and what they were compared with."""

    kernels: list[Kernel]
    reference: str  # a kernel's name, or "stored"
    runs: dict[Path, dict[str, Run]]

    @property
    def failed(self) -> bool:
        """Whether any run failed or timed out."""
        return any(
            run.outcome in (Outcome.FAILED, Outcome.TIMEOUT) for row in self.runs.values()
            for run in row.values()
        )  # fmt: skip

    @property
    def differs(self) -> bool:
        """Whether any run's outputs differ from the reference's."""
        return any(run.outcome is Outcome.DIFFERS for r in self.runs.values() for run in r.values())

    def rows(self) -> list[list[str]]:
        """The table: a notebook per row, a kernel per column."""
        return [
            [str(path), *(row[kernel.name].status for kernel in self.kernels)]
            for path, row in self.runs.items()
        ]

    def as_json(self) -> dict[str, Any]:
        """The whole result."""
        return {
            "kernels": [vars(kernel) for kernel in self.kernels],
            "reference": self.reference,
            "notebooks": [
                {"notebook": str(path), "results": {k: run.as_json() for k, run in row.items()}}
                for path, row in self.runs.items()
            ],
        }


def choose_kernels(patterns: list[str]) -> list[Kernel]:
    """The distro kernels ``patterns`` name: names, globs on names, or 'all'; in the
    order given (a glob's matches by name)."""
    installed = {kernel.name: kernel for kernel in kernelspecs.installed_kernels()}
    chosen: list[str] = []
    for pattern in patterns:
        matches = (
            sorted(installed) if pattern == "all" else fnmatch.filter(sorted(installed), pattern)
        )
        if not matches:
            raise InvalidInput(
                f"no installed distro kernel is {pattern!r}", "see `distrokernels list`"
            )
        chosen += [name for name in matches if name not in chosen]
    return [
        Kernel(name, installed[name].info.get("distro", ""), installed[name].info.get("python", ""))
        for name in chosen
    ]


def notebooks_in(paths: list[Path]) -> list[Path]:
    """The notebooks at ``paths`` (pins.notebooks_in: files, or every notebook below a
    folder), each once."""
    found = list(dict.fromkeys(pins.notebooks_in(paths)))
    if not found:
        raise InvalidInput(f"no notebook under {' '.join(map(str, paths))}", "pass .ipynb files")
    return found


async def _execute(path: Path, kernel: str, timeout: int, slots: asyncio.Semaphore) -> Run:
    """Run ``path`` in ``kernel`` in a fresh copy of its folder."""
    run = Run(path, kernel)
    async with slots:
        with tempfile.TemporaryDirectory(prefix="distrokernels-test-") as tmp:
            folder = Path(tmp) / "notebook"
            shutil.copytree(path.parent, folder, symlinks=True)
            notebook = nbformat.read(folder / path.name, as_version=4)
            current = [0]

            def started(cell: Any, cell_index: int) -> None:
                current[0] = cell_index + 1

            client = NotebookClient(
                notebook,
                kernel_name=kernel,
                timeout=timeout,
                resources={"metadata": {"path": str(folder)}},
                on_cell_start=started,
            )
            try:
                await client.async_execute()
            except CellTimeoutError:
                run.outcome, run.cell = Outcome.TIMEOUT, current[0]
            except CellExecutionError as error:
                run.outcome, run.cell = Outcome.FAILED, current[0]
                run.error = error.ename or str(error).splitlines()[0]
            except DeadKernelError:
                run.outcome, run.cell, run.error = Outcome.FAILED, current[0], "the kernel died"
            run.cells = [dict(cell) for cell in notebook.cells]
            run.folder = str(folder)
    return run


def execute_one(path: Path, kernel: str, timeout: int = DEFAULT_TIMEOUT) -> Run:
    """One notebook in one kernel, in a fresh copy of its folder (the pytest plugin's)."""
    return asyncio.run(_execute(path, kernel, timeout, asyncio.Semaphore(1)))


def failing_traceback(run: Run) -> str:
    """The traceback of the cell a run failed at, as the kernel printed it (colours
    removed); '' if it has none."""
    if not run.cell or run.cell > len(run.cells):
        return ""
    for output in run.cells[run.cell - 1].get("outputs", []):
        if output.get("output_type") == "error":
            return _ANSI.sub("", "\n".join(output.get("traceback", [])))
    return ""


def _compare(run: Run, reference: list[dict[str, Any]], folder: str, sanitizer: Sanitizer) -> None:
    """Mark a run that passed as differing where its outputs are not the reference's."""
    if run.outcome is not Outcome.PASSED:
        return
    clean = sanitizer.with_literal(run.folder, _FOLDER)
    if folder:
        clean = clean.with_literal(folder, _FOLDER)
    run.differences = differences(reference, run.cells, clean)
    if run.differences:
        run.outcome = Outcome.DIFFERS


async def _run_all(
    notebooks: list[Path], kernels: list[Kernel], timeout: int, jobs: int
) -> dict[Path, dict[str, Run]]:
    slots = asyncio.Semaphore(jobs)
    pairs = [(path, kernel.name) for path in notebooks for kernel in kernels]
    done = await asyncio.gather(*(_execute(path, name, timeout, slots) for path, name in pairs))
    runs: dict[Path, dict[str, Run]] = {path: {} for path in notebooks}
    for run in done:
        runs[run.notebook][run.kernel] = run
    return runs


def run_matrix(
    notebooks: list[Path],
    kernels: list[Kernel],
    reference: str = "",
    against_stored: bool = False,
    timeout: int = DEFAULT_TIMEOUT,
    jobs: int = 1,
    sanitizer: Sanitizer | None = None,
    progress: Callable[[str], None] = lambda line: None,
) -> Matrix:
    """Run every notebook in every kernel and compare each with the reference."""
    sanitizer = sanitizer or Sanitizer()
    names = [kernel.name for kernel in kernels]
    if reference and reference not in names:
        raise InvalidInput(f"the reference {reference!r} is not one of the kernels", "add it")
    reference = "stored" if against_stored else reference or names[0]
    progress(f"running {len(notebooks)} notebook(s) in {len(kernels)} kernel(s), {jobs} at once")
    runs = asyncio.run(_run_all(notebooks, kernels, timeout, jobs))
    for path, row in runs.items():
        if against_stored:
            stored = [dict(cell) for cell in nbformat.read(path, as_version=4).cells]
            expected, folder = stored, str(path.parent.resolve())
        else:
            expected, folder = row[reference].cells, row[reference].folder
        for name, run in row.items():
            if against_stored or name != reference:
                _compare(run, expected, folder, sanitizer)
    return Matrix(kernels, reference, runs)
