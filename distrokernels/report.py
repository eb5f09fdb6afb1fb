"""`distrokernels test --report FILE.html`: the matrix as a page a person reads.

One self-contained file (styles inline, images embedded: no network needed to open it):
the matrix on top, each kernel's distro and Python in its column's header; then, per
notebook, each cell that failed or differs: its source, and the reference's and each
kernel's outputs side by side with the differing lines highlighted (difflib's HtmlDiff),
images side by side.
"""

from __future__ import annotations

import difflib
import html
from typing import Any

from .matrix import Matrix, Outcome, Run, failing_traceback
from .outputs import Sanitizer, comparable, joined

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #1b1b1b; }
table.matrix { border-collapse: collapse; margin-bottom: 2em; }
table.matrix th, table.matrix td { border: 1px solid #ccc; padding: .4em .8em; text-align: left; }
td.passed { background: #e6f4ea; } td.differs { background: #fff4d6; }
td.failed, td.timeout { background: #fde7e9; }
pre { background: #f6f8fa; padding: .6em; overflow-x: auto; }
table.diff { font-family: monospace; border-collapse: collapse; margin: .5em 0 1.5em; }
table.diff td { padding: 0 .4em; vertical-align: top; white-space: pre-wrap; }
.diff_add { background: #c8f0d0; } .diff_chg { background: #ffe9a8; }
.diff_sub { background: #f8c4c8; }
.images { display: flex; gap: 1em; } .images figure { margin: 0; }
"""


def render(matrix: Matrix, sanitizer: Sanitizer | None = None) -> str:
    """The whole report, as one HTML document."""
    sanitizer = sanitizer or Sanitizer()
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        "<title>distrokernels test</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>One notebook, every userland</h1>",
        f"<p>Compared with: <b>{html.escape(matrix.reference)}</b></p>",
        _matrix_table(matrix),
    ]
    for path, row in matrix.runs.items():
        sections = [_run_section(run, row, matrix.reference, sanitizer) for run in row.values()]
        if any(sections):
            parts += [f"<h2>{html.escape(str(path))}</h2>", *sections]
    parts.append("</body></html>")
    return "\n".join(parts)


def _matrix_table(matrix: Matrix) -> str:
    header = "".join(f"<th>{html.escape(kernel.header)}</th>" for kernel in matrix.kernels)
    rows = []
    for path, row in matrix.runs.items():
        cells = "".join(
            f"<td class='{row[k.name].outcome.value}'>{html.escape(row[k.name].status)}</td>"
            for k in matrix.kernels
        )
        rows.append(f"<tr><td>{html.escape(str(path))}</td>{cells}</tr>")
    return f"<table class='matrix'><tr><th>notebook</th>{header}</tr>{''.join(rows)}</table>"


def _run_section(run: Run, row: dict[str, Run], reference: str, sanitizer: Sanitizer) -> str:
    """What a person needs to see of one run: its failing cell, or each differing cell."""
    title = f"<h3>{html.escape(run.kernel)}: {html.escape(run.status)}</h3>"
    if run.outcome in (Outcome.FAILED, Outcome.TIMEOUT):
        source = run.cells[run.cell - 1].get("source", "") if 0 < run.cell <= len(run.cells) else ""
        return (
            f"{title}<pre>{html.escape(joined(source))}</pre>"
            f"<pre>{html.escape(failing_traceback(run))}</pre>"
        )
    if run.outcome is not Outcome.DIFFERS:
        return ""
    expected = row.get(reference)
    blocks = [title]
    for difference in run.differences:
        mine = run.cells[difference.index - 1].get("outputs", [])
        theirs = expected.cells[difference.index - 1].get("outputs", []) if expected else []
        blocks.append(
            f"<h4>cell {difference.index}</h4><pre>{html.escape(difference.source)}</pre>"
        )
        blocks.append(
            difflib.HtmlDiff(wrapcolumn=90).make_table(
                comparable(theirs, sanitizer), comparable(mine, sanitizer), reference, run.kernel
            )
        )
        images = _images(theirs, reference) + _images(mine, run.kernel)
        if images:
            blocks.append(f"<div class='images'>{''.join(images)}</div>")
    return "\n".join(blocks)


def _images(outputs: list[dict[str, Any]], who: str) -> list[str]:
    """Each PNG or JPEG output embedded, captioned with the kernel it came from."""
    found = []
    for output in outputs:
        for mimetype, data in (output.get("data") or {}).items():
            if mimetype in ("image/png", "image/jpeg"):
                source = f"data:{mimetype};base64,{joined(data).strip()}"
                found.append(
                    f"<figure><img src='{source}'><figcaption>{html.escape(who)}</figcaption>"
                    "</figure>"
                )
    return found
