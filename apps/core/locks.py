"""PostgreSQL advisory locks that keep a job to one run at a time across every worker and host."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection


@contextmanager
def session_advisory_lock(key: int) -> Iterator[bool]:
    """A session-level advisory lock, or False at once if another session holds it. Session-level rather
    than per transaction because a run spans several transactions."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        acquired = cursor.fetchone()[0]
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
