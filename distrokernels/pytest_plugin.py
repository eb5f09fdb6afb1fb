"""`pytest --distrokernels=KERNELS`: each notebook collected, once per distro kernel.

Registered through pytest's ``pytest11`` entry point and inert without the option (it
imports nothing heavy until a notebook is collected). With it, every ``.ipynb`` pytest
collects becomes one test item per kernel, named after the kernel
(``lesson.ipynb::distro-debian-12``), so ``--junitxml`` and every CI system show the
matrix. An item fails when a cell raises or runs past ``--distrokernels-timeout``; the
failing cell's traceback is the failure's text. Comparing outputs across kernels is
`distrokernels test`'s.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_OPTION = "distrokernels"


def pytest_addoption(parser: pytest.Parser) -> None:
    """The plugin's options."""
    group = parser.getgroup("distrokernels", "notebooks in distro kernels")
    group.addoption(
        f"--{_OPTION}",
        metavar="KERNELS",
        default="",
        help="run each collected notebook in these distro kernels (names, globs on names, "
        "or all; comma-separated)",
    )
    group.addoption(
        f"--{_OPTION}-timeout",
        type=int,
        default=600,
        metavar="S",
        help="seconds each cell may run (default 600)",
    )


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """A notebook, when --distrokernels is given."""
    wanted = parent.config.getoption(_OPTION) and file_path.suffix == ".ipynb"
    if wanted and ".ipynb_checkpoints" not in file_path.parts:
        return Notebook.from_parent(parent, path=file_path)
    return None


class Notebook(pytest.File):
    """A notebook: one item per chosen kernel."""

    def collect(self) -> Iterator[pytest.Item]:
        """The notebook's items, one per kernel, in the order the option names them."""
        from .matrix import choose_kernels

        patterns = [k for k in str(self.config.getoption(_OPTION)).split(",") if k]
        for kernel in choose_kernels(patterns):
            yield NotebookInKernel.from_parent(self, name=kernel.name, kernel=kernel.name)


class NotebookRunFailed(Exception):
    """A cell raised, timed out, or the kernel died."""


class NotebookInKernel(pytest.Item):
    """The notebook run in one distro kernel."""

    def __init__(self, *, kernel: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kernel = kernel

    def runtest(self) -> None:
        """Run every cell; fail at the first that raises or times out."""
        from .matrix import Outcome, execute_one, failing_traceback

        timeout = int(self.config.getoption(f"{_OPTION}_timeout"))
        run = execute_one(self.path, self.kernel, timeout)
        if run.outcome in (Outcome.FAILED, Outcome.TIMEOUT):
            detail = failing_traceback(run)
            raise NotebookRunFailed(f"{run.status}" + (f"\n\n{detail}" if detail else ""))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        """The failing cell and its traceback, not the plugin's own stack."""
        if isinstance(excinfo.value, NotebookRunFailed):
            return f"{self.path.name} in {self.kernel}: {excinfo.value}"
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        """Where the item is: the notebook, and the kernel it runs in."""
        return self.path, 0, f"{self.path.name} in {self.kernel}"
