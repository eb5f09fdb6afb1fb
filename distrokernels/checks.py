"""The one way a value from a user, a kernel.json or a lock is checked against a
pattern: ``require``, whose refusal is one line naming the value and its fix. Image
references are checked here too (Docker's reference grammar), below every module that
reads one.
"""

from __future__ import annotations

import re

from .errors import InvalidInput

_SHOWN = 80  # characters of a refused value in its message

# Docker's reference grammar, slightly simplified: [registry[:port]/]path[:tag][@digest].
_REFERENCE = re.compile(
    r"(?:(?P<registry>[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?(?::[0-9]{1,5})?)/)?"
    r"(?P<path>[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?"
)
_LONGEST_REFERENCE = 255


def require(pattern: re.Pattern[str], value: str, what: str, fix: str, setting: str = "") -> str:
    """``value`` if the whole of it matches ``pattern``; else InvalidInput
    "[SETTING ]'VALUE' is not WHAT" with ``fix``."""
    if not isinstance(value, str) or not pattern.fullmatch(value):
        named = f"{setting} " if setting else ""
        raise InvalidInput(f"{named}{str(value)[:_SHOWN]!r} is not {what}", fix)
    return value


def validate_reference(reference: str) -> str:
    """Return ``reference`` if it is a well-formed image reference, else raise InvalidInput."""
    what = "a valid image reference"
    fix = "use a name like debian:bookworm, ubuntu:22.04 or registry.example.org/team/image:tag"
    if len(reference) > _LONGEST_REFERENCE:
        raise InvalidInput(f"{reference[:_SHOWN]!r} is not {what}", fix)
    return require(_REFERENCE, reference, what, fix)
