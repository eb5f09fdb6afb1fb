"""MkDocs hooks: the pages generated from the code, so they cannot drift from it.

``<!-- settings-table -->`` becomes KernelConfig's table of settings and
``<!-- cli-reference -->`` every command's ``--help``, from the parser itself.
"""

from __future__ import annotations

from typing import Any

from distrokernels.cli import build_parser
from distrokernels.config import settings_table

SETTINGS = "<!-- settings-table -->"
CLI = "<!-- cli-reference -->"


def cli_reference() -> str:
    """Each command's --help as the parser prints it."""
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    sections = [f"```\n{parser.format_help()}```\n"]
    seen: set[int] = set()
    for name, command in commands.items():
        if id(command) in seen:  # an alias (du) names a command already shown
            continue
        seen.add(id(command))
        sections.append(f"## {name}\n\n```\n{command.format_help()}```\n")
    return "\n".join(sections)


def expand(markdown: str) -> str:
    """The page with its generated parts filled in."""
    if SETTINGS in markdown:
        markdown = markdown.replace(SETTINGS, settings_table())
    if CLI in markdown:
        markdown = markdown.replace(CLI, cli_reference())
    return markdown


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """MkDocs' hook: called with each page's Markdown before it is rendered."""
    return expand(markdown)
