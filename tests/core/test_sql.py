"""The binary cursor of the hot paths against the real PostgreSQL: what its statements bind comes back as it
went in, whatever the list holds, and a literal percent sign stays one."""

from datetime import UTC, datetime, timedelta

import pytest

from apps.core.sql import _binary_placeholders, binary_cursor

pytestmark = pytest.mark.django_db

START = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def test_lists_of_every_kind_round_trip_through_unnest():
    ids = list(range(1, 2001))
    times = [START + timedelta(seconds=i, microseconds=i) for i in ids]
    values = [i / 3 for i in ids]
    levels = ["normal" if i % 2 else "warning" for i in ids]
    nothing = [None] * len(ids)
    partly = [None if i % 3 else START for i in ids]

    with binary_cursor() as cursor:
        cursor.execute(
            "SELECT * FROM unnest(%s::bigint[], %s::timestamptz[], %s::float8[], %s::text[], %s::timestamptz[],"
            " %s::timestamptz[]) AS u(id, ts, value, level, nothing, partly) ORDER BY id",
            [ids, times, values, levels, nothing, partly],
        )
        rows = cursor.fetchall()

    assert rows == list(zip(ids, times, values, levels, nothing, partly, strict=True))


def test_empty_lists_and_scalars_bind():
    with binary_cursor() as cursor:
        cursor.execute(
            "SELECT cardinality(%s::bigint[]), %s::timestamptz, %s::bigint + 1, %s::text", [[], START, 2**40, "é"]
        )
        assert cursor.fetchall() == [(0, START, 2**40 + 1, "é")]


def test_a_literal_percent_sign_is_not_a_placeholder():
    with binary_cursor() as cursor:
        cursor.execute("SELECT '100%%', %s::int", [7])
        assert cursor.fetchall() == [("100%", 7)]


def test_every_placeholder_binds_in_binary():
    """psycopg's %s would let it send lists as text (array literals it formats element by element)."""
    assert _binary_placeholders("SELECT %s, '%%s', %s::bigint[]") == "SELECT %b, '%%s', %b::bigint[]"
    assert _binary_placeholders("SELECT %(ids)s::bigint[], '%%(x)s'") == "SELECT %(ids)b::bigint[], '%%(x)s'"
