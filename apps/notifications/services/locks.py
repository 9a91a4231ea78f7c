"""The transaction-level advisory locks that keep two beats from doing the same round at once (a second
beat, or a round still running when the next is due). One key per round, all here so none is used twice."""

from __future__ import annotations

from django.db import connection

RENOTIFY = 7_301_001
DIGESTS = 7_301_002


def try_lock(key: int) -> bool:
    """Take the round's lock until the end of the current transaction; False when another holds it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [key])
        (taken,) = cursor.fetchone()
        return taken
