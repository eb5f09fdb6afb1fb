"""Ids as a person reads them: an image id or digest as ``sha256:`` and 12 hex digits,
a container id as its first 12, as ``docker ps`` and ``docker images`` show them."""

from __future__ import annotations

import string

_DIGITS = 12
_ALGORITHM = "sha256:"


def short_id(full: str) -> str:
    """'sha256:0123456789ab' for a digest or image id, '0123456789ab' for a container's;
    anything else (a tag) whole."""
    if full.startswith(_ALGORITHM):
        return full[: len(_ALGORITHM) + _DIGITS]
    if len(full) > _DIGITS and all(char in string.hexdigits for char in full):
        return full[:_DIGITS]
    return full
