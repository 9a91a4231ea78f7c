"""Emptying the tables after a transactional test with DELETE instead of TRUNCATE.

Django's flush truncates every table, and on PostgreSQL a TRUNCATE makes new files for each table and index:
about a second for this schema, after every test that uses the worker or a live server. The tables hold a
test's few rows, which DELETE removes in milliseconds. Django's foreign keys are deferrable, so they are
checked at commit; the few that are not (raw SQL on the partitioned tables) decide the order: tables that
refer first. The sequences are reset the way Django does it whenever a test asks for that.
"""

from __future__ import annotations

from graphlib import CycleError, TopologicalSorter

from django.db.backends.postgresql.operations import DatabaseOperations

_IMMEDIATE_REFERENCES = """
SELECT src.relname, dst.relname
  FROM pg_constraint c
  JOIN pg_class src ON src.oid = c.conrelid
  JOIN pg_class dst ON dst.oid = c.confrelid
 WHERE c.contype = 'f' AND NOT c.condeferrable AND src.relname = ANY(%s) AND dst.relname = ANY(%s)
"""

_truncating_flush = DatabaseOperations.sql_flush


def _deleting_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
    if not tables or reset_sequences:
        return _truncating_flush(self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
    tables = list(tables)
    with self.connection.cursor() as cursor:
        cursor.execute(_IMMEDIATE_REFERENCES, [tables, tables])
        referenced_by: dict[str, set[str]] = {table: set() for table in tables}
        for referring, referred in cursor.fetchall():
            if referring != referred:
                referenced_by[referred].add(referring)
    try:
        # A table comes after every table that refers to it without deferring.
        order = list(TopologicalSorter(referenced_by).static_order())
    except CycleError:
        return _truncating_flush(self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
    return ["SET CONSTRAINTS ALL DEFERRED"] + [f"DELETE FROM {self.quote_name(table)}" for table in order]


def install() -> None:
    DatabaseOperations.sql_flush = _deleting_flush
