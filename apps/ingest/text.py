"""What text from a client may reach PostgreSQL: names without control characters, reports made printable.

PostgreSQL refuses NUL in text and jsonb, the sensor references of a batch use \x1f as their separator, and
undecodable bytes of a CSV file arrive as lone surrogates, which cannot be encoded for the database at all.
"""

from __future__ import annotations

import re

MAX_TEXT = 300
# C0 and C1 control characters, and lone surrogates.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


CONTROL_MESSAGE = "Must not contain control characters."


def identifier_error(raw: str) -> str | None:
    """Why a name (sensor key, device id, type code, channel, field name) cannot be used, or None."""
    if len(raw) > MAX_TEXT:
        return f"At most {MAX_TEXT} characters."
    # isprintable() is the fast path: it is true for almost every name and several times cheaper than a search.
    if not raw.isprintable() and has_control(raw):
        return CONTROL_MESSAGE
    return None


def has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def printable(text: str) -> str:
    """`text` with control characters and lone surrogates replaced by U+FFFD, fit for a stored report."""
    return text if text.isprintable() else _CONTROL.sub("\ufffd", text)


def has_undecodable(cells: list[str]) -> bool:
    """Whether text decoded with errors="surrogateescape" held bytes that were not UTF-8."""
    text = "".join(cells)
    return not text.isascii() and _SURROGATE.search(text) is not None
