"""Which characters client text may not hold: C0 and C1 control characters, and lone surrogates.

PostgreSQL refuses NUL in text and jsonb, ingest's sensor references use \x1f as their separator, and
undecodable bytes of a CSV file arrive as lone surrogates, which cannot be encoded for the database at all.
Ingest's names (apps/ingest/text.py) and the read APIs' query parameters (apps/core/fields.py) hold to this
one rule.
"""

from __future__ import annotations

import re

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
CONTROL_MESSAGE = "Must not contain control characters."


def has_control(text: str) -> bool:
    return CONTROL.search(text) is not None
