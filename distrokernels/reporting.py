"""How long work reaches a person: phases with their times, a live line, and a log.

`install`, `sync` and `bootstrap` report through a ``Report``: one phase per step a
person recognises (base image, Python, wheels, layer, lock, kernelspec), each with its
elapsed time. The raw output of the tools underneath (the engine's build, pip,
mmdebstrap) goes to a log file per run (``$XDG_STATE_HOME/distrokernels/logs``), clean
of terminal control codes; it is shown as it comes only with ``--verbose``, and its last
lines when a phase fails. On a terminal the running phase has a spinner, the tool's
latest line and, where the build says how many steps it has, a bar; anywhere else
(CI, pipes) one plain line per finished phase, and nothing but errors with ``--quiet``.

The modules below report through a plain ``Callable[[str], None]``; ``phase`` marks a
line as the start of a phase when the callable is a Report, and passes it as a line
otherwise.
"""

from __future__ import annotations

import os
import re
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn
from rich.table import Column

FAIL_TAIL = 30  # lines of a failed phase's output shown with its error
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[@-Z\\-_]")
_STEP = re.compile(r"\bstep (\d+)/(\d+)", re.IGNORECASE)  # dockerd: Step 3/7; Podman: STEP 3/7
_DETAIL_WIDTH = 72  # characters of the tool's latest line, below the running phase
_BAR_WIDTH = 12


def clean(line: str) -> str:
    """A tool's line without terminal control codes (colours, cursor moves, \\r)."""
    return _CONTROL.sub("", line).split("\r")[-1].rstrip()


def phase(progress: Callable[[str], None], title: str) -> None:
    """Start a phase: a Report shows it as one; any other callable gets a line."""
    if isinstance(progress, Report):
        progress.phase(title)
    else:
        progress(title)


def note(progress: Callable[[str], None], text: str) -> None:
    """A line a person must see (a warning, a decision made for them), in every mode
    but --quiet; any other callable gets it as a line."""
    if isinstance(progress, Report):
        progress.note(text)
    else:
        progress(text)


def log_path(command: str) -> Path:
    """A new log file's path under the user's state folder (short: a person copies it)."""
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    return state / "distrokernels" / "logs" / f"{command}-{stamp}-{os.getpid()}.log"


class Report:
    """Phases and their output for one command run; a callable for the output lines.

    ``mode``: "auto" (a terminal gets the live view, anything else plain lines),
    "plain", "verbose" (every line of the tools as it comes) or "quiet" (errors only).
    """

    def __init__(self, mode: str, log: Path, stream: IO[str] | None = None) -> None:
        self.console = Console(file=stream, stderr=stream is None, highlight=False)
        self.mode = "tty" if mode == "auto" and self.console.is_terminal else mode
        if self.mode == "auto":
            self.mode = "plain"
        self.log_path = log
        self._log: IO[str] | None = None  # opened by the first line: a refused input leaves none
        self._phases = 0
        self._title = ""
        self._started = self._began = time.monotonic()
        self._tail: deque[str] = deque(maxlen=FAIL_TAIL)
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        if self.mode == "tty":
            # The running phase's latest tool line goes below its title, dimmed: the
            # title column keeps its width, and the line gets the terminal's.
            self._bar = Progress(
                SpinnerColumn(finished_text="[green]✓[/]"),
                TextColumn("{task.description}", table_column=_column(ratio=1)),
                BarColumn(bar_width=_BAR_WIDTH),
                TextColumn("{task.fields[elapsed]}", table_column=_column()),
                console=self.console,
                transient=False,
            )
            self._bar.start()

    # --- what the modules call ------------------------------------------------------

    def __call__(self, line: str) -> None:
        """A line of output of the work under way."""
        text = clean(line.strip())
        if not text:
            return
        self._write(text)
        self._tail.append(text)
        if self.mode == "verbose":
            self._print(f"  {text}")
        elif self._bar is not None and self._task is not None:
            steps = _STEP.search(text)
            detail = escape(_elide(text, _DETAIL_WIDTH))
            update: dict[str, Any] = {"description": f"{escape(self._title)}\n  [dim]{detail}[/]"}
            if steps:
                update |= {"completed": int(steps[1]) - 1, "total": int(steps[2])}
            self._bar.update(self._task, **update)

    def note(self, text: str) -> None:
        self._write(text)
        if self.mode != "quiet":
            self._print(f"  {text}")

    def phase(self, title: str) -> None:
        self._end_phase()
        self._title, self._started = title, time.monotonic()
        self._tail.clear()
        self._phases += 1
        self._write(f"== {title}")
        if self._bar is not None:
            self._task = self._bar.add_task(escape(title), total=None, elapsed="")
        elif self.mode == "verbose":
            self._print(f"{title}")

    # --- what the command calls --------------------------------------------------------

    def finish(self, summary: list[str]) -> None:
        """The last phase done; ``summary`` (what was made, how to open it) shown."""
        self._end_phase()
        self._close()
        if self.mode != "quiet":
            total = time.monotonic() - self._began
            where = [f"  log      {_home(self.log_path)}"] if self._phases else []
            for line in [*summary, *where, f"done in {total:.1f} s"]:
                self._print(line)

    def fail(self) -> None:
        """The failing phase, the last lines of its output, and where the log is; nothing
        when no phase began (an input refused before any work: its error says it all)."""
        if not self._phases:
            self._close()
            return
        title = self._title
        self._end_phase(failed=True)
        self._close()
        lines = [f"failed: {title}" if title else "failed"]
        if self.mode != "verbose":  # verbose showed every line already
            lines += [f"  | {line}" for line in self._tail]
        lines.append(f"the full log: {_home(self.log_path)}")
        for line in lines:
            self._print(line)

    # --- inside --------------------------------------------------------------------

    def _end_phase(self, failed: bool = False) -> None:
        if not self._title:
            return
        elapsed = f"{time.monotonic() - self._started:.1f} s"
        self._write(f"== {self._title}: {'failed' if failed else 'done'} in {elapsed}")
        if self._bar is not None and self._task is not None:
            mark = "[red]failed[/] " if failed else ""
            self._bar.update(
                self._task,
                description=escape(self._title),
                total=1,
                completed=1,
                elapsed=mark + elapsed,
            )
            if failed:
                self._bar.stop_task(self._task)
        elif self.mode == "plain" and not failed:
            self._print(f"{self._title} ({elapsed})")
        self._title, self._task = "", None

    def _print(self, text: str) -> None:
        """A line for the person, never wrapped (a path stays one piece to copy)."""
        console = self._bar.console if self._bar is not None else self.console
        console.print(text, markup=False, highlight=False, soft_wrap=True)

    def _write(self, line: str) -> None:
        if self._log is None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("a", encoding="utf-8")
        self._log.write(line + "\n")
        self._log.flush()

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        if self._log is not None and not self._log.closed:
            self._log.close()


MIN_COLUMN = 8  # a column elided below this says nothing


def table(header: list[str], rows: list[list[str]], width: int = 0) -> str:
    """Columns padded to their widest cell; with ``width``, the widest columns are
    narrowed (their cells elided in the middle, never wrapped) until a line fits."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    gaps = 2 * (len(widths) - 1)
    while width and sum(widths) + gaps > width and max(widths) > MIN_COLUMN:
        widths[widths.index(max(widths))] -= 1
    return "\n".join(
        "  ".join(
            _elide(cell, size).ljust(size) for cell, size in zip(line, widths, strict=True)
        ).rstrip()
        for line in [header, *rows]
    )


def _column(**options: Any) -> Column:
    return Column(no_wrap=True, overflow="ellipsis", **options)


def _home(path: Path) -> str:
    """A path as a person types it: '~/...' below the home folder."""
    home = str(Path.home())
    return "~" + str(path)[len(home) :] if str(path).startswith(home + "/") else str(path)


def _elide(text: str, width: int) -> str:
    """'start…end' when ``text`` is wider than ``width``."""
    if len(text) <= width:
        return text
    half = (width - 1) // 2
    return f"{text[:half]}…{text[-(width - 1 - half) :]}"
