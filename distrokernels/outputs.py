"""Cell outputs made comparable across userlands: normalised, then compared cell by cell.

What differs between two runs of one notebook without meaning anything is removed before
comparing: memory addresses, timings, the run's own folder and the kernel's id, and what
the user's sanitize file says. The file is nbval's format (``--sanitize-with``), so one
written for nbval works here: sections whose ``regex`` is replaced by their ``replace``.
A cell tagged ``nbval-ignore-output`` (nbval's tag) is not compared.

Text outputs are compared as lines (and a line diff says how they differ); images, rich
outputs and errors by type and content (an error by its name and value: its traceback
holds the userland's own paths and line numbers).
"""

from __future__ import annotations

import configparser
import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InvalidInput

IGNORE_OUTPUT_TAG = "nbval-ignore-output"
_BUILT_IN = (
    (re.compile(r"\b0x[0-9a-fA-F]{6,16}\b"), "0xADDRESS"),
    (re.compile(r"\b\d+(\.\d+)?\s?(ns|µs|us|ms|s)\b"), "TIME"),
    (
        re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"),
        "UUID",
    ),
)
_TEXT_TYPES = ("text/plain", "text/markdown", "text/latex", "application/json")


@dataclass(frozen=True)
class Sanitizer:
    """Regex replacements applied to every text output before comparing."""

    patterns: tuple[tuple[re.Pattern[str], str], ...] = _BUILT_IN

    @classmethod
    def from_file(cls, path: Path) -> Sanitizer:
        """The built-in replacements, then those of an nbval sanitize file."""
        parser = configparser.ConfigParser()
        try:
            parser.read_string(path.read_text())
        except (OSError, UnicodeDecodeError, configparser.Error) as error:
            raise InvalidInput(
                f"cannot read the sanitize file {path}: {error}", "write it as nbval's"
            ) from error
        extra = []
        for section in parser.sections():
            try:
                pattern = re.compile(parser.get(section, "regex"))
            except (configparser.Error, re.error) as error:
                raise InvalidInput(
                    f"{path} [{section}]: {error}", "each section needs a valid regex"
                ) from error
            extra.append((pattern, parser.get(section, "replace", fallback="")))
        return cls((*_BUILT_IN, *extra))

    def with_literal(self, text: str, replacement: str) -> Sanitizer:
        """Also replace ``text`` itself (a run's own folder)."""
        return Sanitizer(((re.compile(re.escape(text)), replacement), *self.patterns))

    def clean(self, text: str) -> str:
        """``text`` with every pattern replaced."""
        for pattern, replacement in self.patterns:
            text = pattern.sub(replacement, text)
        return text


def comparable(outputs: Iterable[dict[str, Any]], sanitizer: Sanitizer) -> list[str]:
    """A code cell's outputs as lines to compare: streams merged per name, text outputs
    sanitised, other data by type and content, errors by name and value."""
    lines: list[str] = []
    for output in outputs:
        kind = output.get("output_type", "")
        if kind == "stream":
            text = sanitizer.clean(joined(output.get("text", "")))
            lines += [f"{output.get('name', 'stdout')}: {line}" for line in text.splitlines()]
        elif kind == "error":
            value = sanitizer.clean(str(output.get("evalue", "")))
            lines.append(f"error: {output.get('ename', '')}: {value}")
        elif kind in ("execute_result", "display_data"):
            for mimetype, data in sorted((output.get("data") or {}).items()):
                if mimetype in _TEXT_TYPES or mimetype.startswith("text/"):
                    text = sanitizer.clean(joined(data))
                    lines += [f"{mimetype}: {line}" for line in text.splitlines()]
                else:  # an image or another binary: its content, as one line
                    lines.append(f"{mimetype}: {joined(data).strip()}")
    return lines


def joined(value: Any) -> str:
    """A notebook's multi-line string (a list of lines or one string) as one string."""
    return "".join(value) if isinstance(value, list) else str(value)


@dataclass(frozen=True)
class CellDifference:
    """A code cell whose outputs differ from the reference's."""

    index: int  # the cell's position in the notebook, from 1
    source: str
    diff: list[str]  # a unified line diff, reference first


def differences(
    reference: list[dict[str, Any]], other: list[dict[str, Any]], sanitizer: Sanitizer
) -> list[CellDifference]:
    """The code cells of two executions of one notebook whose outputs differ (cells as
    nbformat has them; a cell tagged nbval-ignore-output is skipped)."""
    found = []
    for index, (mine, theirs) in enumerate(zip(reference, other, strict=True), start=1):
        if mine.get("cell_type") != "code" or IGNORE_OUTPUT_TAG in mine.get("metadata", {}).get(
            "tags", []
        ):
            continue
        expected = comparable(mine.get("outputs", []), sanitizer)
        actual = comparable(theirs.get("outputs", []), sanitizer)
        if expected != actual:
            diff = list(difflib.unified_diff(expected, actual, "reference", "this", lineterm=""))
            found.append(CellDifference(index, joined(mine.get("source", "")), diff))
    return found
