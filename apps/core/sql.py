"""Raw SQL on the connection Django is using, with parameters bound server-side and in binary: for the set-wise
statements of hot paths (evaluation, anomaly states) whose array and bytea parameters Django would quote into
the SQL text."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache

import psycopg
from django.db import connection
from psycopg.rows import class_row, tuple_row


class BinaryCursor:
    """Executes with parameters bound server-side and in binary: a batch's arrays (hundreds of ids, times and
    values) then cost no client-side quoting. Statements are logged like Django's own when queries are being
    captured, so query-count tests see them.

    The statements are written with %s like every other; each is run with %b instead. psycopg's %s lets it
    choose the format, and it chooses text for lists: 2,000 timestamps took 7.6 ms to format as an array
    literal against 0.5 ms in binary, 2,000 integers 1.1 against 0.4 ms (a batch binds several such lists).
    A list of nothing but NULLs is still sent as text; the statements cast every array parameter.

    Errors are Django's (IntegrityError, OperationalError, ...), as from its own cursors: callers catch those,
    and Django learns that the connection may be unusable."""

    def __init__(self, cursor: psycopg.Cursor) -> None:
        self.cursor = cursor

    def execute(self, sql: str, params: Sequence | Mapping) -> None:
        started = time.monotonic()
        try:
            with connection.wrap_database_errors:
                self.cursor.execute(_binary_placeholders(sql), params, binary=True)
        finally:
            if connection.queries_logged:
                connection.queries_log.append({"sql": sql, "time": f"{time.monotonic() - started:.3f}"})

    @property
    def description(self):
        return self.cursor.description

    def fetchone(self) -> tuple | None:
        with connection.wrap_database_errors:
            return self.cursor.fetchone()

    def fetchall(self, row: type | None = None) -> list:
        """The rows as tuples, or as `row` (a NamedTuple or dataclass) built from the columns by name, so a
        reader names what it reads instead of counting positions."""
        if row is None:
            with connection.wrap_database_errors:
                return self.cursor.fetchall()
        self.cursor.row_factory = class_row(row)
        try:
            with connection.wrap_database_errors:
                return self.cursor.fetchall()
        finally:
            self.cursor.row_factory = tuple_row


_PLACEHOLDER = re.compile(r"(?<!%)%(\([^)]*\))?s")


@lru_cache(maxsize=256)
def _binary_placeholders(sql: str) -> str:
    return _PLACEHOLDER.sub(r"%\1b", sql)


@contextmanager
def binary_cursor() -> Iterator[BinaryCursor]:
    """A BinaryCursor on the connection (and transaction) Django is using."""
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        yield BinaryCursor(cursor)
