"""What text from a client may reach PostgreSQL: names without control characters, reports made printable.

Which characters count as control characters is apps/core/text.py's rule, shared with the read APIs' query
parameters.
"""

from __future__ import annotations

import re

from apps.core.text import CONTROL as _CONTROL
from apps.core.text import CONTROL_MESSAGE, has_control

__all__ = ["CONTROL_MESSAGE", "MAX_TEXT", "has_control", "has_undecodable", "identifier_error", "printable"]

MAX_TEXT = 300
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def identifier_error(raw: str) -> str | None:
    """Why a name (sensor key, device id, type code, channel, field name) cannot be used, or None."""
    if len(raw) > MAX_TEXT:
        return f"At most {MAX_TEXT} characters."
    # isprintable() is the fast path: it is true for almost every name and several times cheaper than a search.
    if not raw.isprintable() and has_control(raw):
        return CONTROL_MESSAGE
    return None


def printable(text: str) -> str:
    """`text` with control characters and lone surrogates replaced by U+FFFD, fit for a stored report."""
    return text if text.isprintable() else _CONTROL.sub("\ufffd", text)


def has_undecodable(cells: list[str]) -> bool:
    """Whether text decoded with errors="surrogateescape" held bytes that were not UTF-8."""
    text = "".join(cells)
    return not text.isascii() and _SURROGATE.search(text) is not None
