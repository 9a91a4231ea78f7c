"""The TimescaleDB path: not taken on this plain PostgreSQL, and the SQL it would run, tested as far as plain
PostgreSQL can: the continuous aggregates' SELECT bodies against the rollup tables, and the purge's
drop_chunks calls against stand-ins."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.aggregates import timescale
from apps.aggregates.retention import retention_purge
from apps.aggregates.selectors import HOUR_TABLE, rollup_source
from apps.aggregates.services import rollups_refresh
from apps.ingest.partitions import partitions_list
from apps.ingest.timescale import timescaledb_available
from tests.aggregates.helpers import assert_same_rows, insert_raw, rollup_rows

pytestmark = pytest.mark.django_db

# TimescaleDB's time_bucket for fixed widths is date_bin from its default origin (a Monday).
TIME_BUCKET_STAND_IN = """
CREATE FUNCTION time_bucket(bucket_width interval, ts timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$ SELECT date_bin(bucket_width, ts, timestamptz '2000-01-03 00:00:00+00') $$
"""


def test_plain_postgresql_here_uses_the_rollup_tables(world):
    assert not timescaledb_available(connection)
    assert not timescale.continuous_aggregates_exist(connection)
    assert rollup_source().hour_relation == HOUR_TABLE
    assert rollups_refresh().mode == "tables"


def test_continuous_aggregate_statements():
    statements = timescale.continuous_aggregate_statements(
        readings_retention_days=90, rollups_retention_days=730, refresh_interval_s=60
    )

    hour_view, hour_policy, hour_retention, day_view, day_policy, day_retention = statements
    assert hour_view.startswith(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS aggregates_rollup_hour_cagg"
        " WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS SELECT"
    )
    assert hour_view.endswith("WITH NO DATA") and "FROM ingest_reading" in hour_view
    assert "FROM aggregates_rollup_hour_cagg" in day_view  # hierarchical: days from hours
    assert hour_policy == (
        "SELECT add_continuous_aggregate_policy('aggregates_rollup_hour_cagg', start_offset => INTERVAL '90 days',"
        " end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '60 seconds', if_not_exists => true)"
    )
    assert "end_offset => INTERVAL '1 day'" in day_policy
    assert (
        hour_retention
        == "SELECT add_retention_policy('aggregates_rollup_hour_cagg', INTERVAL '730 days', if_not_exists => true)"
    )
    assert day_retention.startswith("SELECT add_retention_policy('aggregates_rollup_day_cagg'")


def test_drop_chunks_statements():
    assert timescale.drop_chunks_statements(readings_retention_days=90, rollups_retention_days=730) == [
        ("readings", "SELECT drop_chunks('ingest_reading', older_than => INTERVAL '90 days')"),
        ("hour_rollups", "SELECT drop_chunks('aggregates_rollup_hour_cagg', older_than => INTERVAL '730 days')"),
        ("day_rollups", "SELECT drop_chunks('aggregates_rollup_day_cagg', older_than => INTERVAL '730 days')"),
    ]


def test_the_continuous_aggregates_compute_what_the_rollup_tables_hold(world):
    now = timezone.now()
    for number, key in enumerate(["env-001/temperature", "env-002/humidity", "dc-meter-001/voltage_dc"]):
        insert_raw(
            world.sensors[key].pk, now - timedelta(days=3, minutes=number * 7), count=900, step=timedelta(minutes=5)
        )
    rollups_refresh()  # the first run backfills them
    hours, days = rollup_rows("aggregates_rolluphour"), rollup_rows("aggregates_rollupday")
    columns = "sensor_id, bucket, min, max, sum / count, sum, count, first_ts, last_ts"

    with connection.cursor() as cursor:
        cursor.execute(TIME_BUCKET_STAND_IN)
        cursor.execute(f"SELECT {columns} FROM ({timescale.HOUR_SELECT}) AS hour_view")
        hour_view = {(row[0], row[1]): tuple(row[2:]) for row in cursor.fetchall()}
        # The daily view reads the hourly one by name: stand it in with a temporary view of the same name.
        cursor.execute(f"CREATE TEMP VIEW {timescale.HOUR_VIEW} AS {timescale.HOUR_SELECT}")
        cursor.execute(f"SELECT {columns} FROM ({timescale.DAY_SELECT}) AS day_view")
        day_view = {(row[0], row[1]): tuple(row[2:]) for row in cursor.fetchall()}
        cursor.execute(f"DROP VIEW {timescale.HOUR_VIEW}")

    assert len(hours) > 3 * 72 and len(days) >= 9
    assert_same_rows(hour_view, hours)
    assert_same_rows(day_view, days)


def test_on_a_hypertable_the_purge_drops_chunks_instead_of_partitions(world):
    """TimescaleDB cannot be installed here: its catalogue view of hypertables and drop_chunks() are stood in
    for, so the purge takes the TimescaleDB path and sends the statements it would send there."""
    with connection.cursor() as cursor:
        cursor.execute("CREATE SCHEMA timescaledb_information")
        cursor.execute(
            "CREATE VIEW timescaledb_information.hypertables AS SELECT 'ingest_reading'::name AS hypertable_name"
        )
        cursor.execute("CREATE TEMP TABLE dropped (relation text, older_than interval)")
        cursor.execute(
            "CREATE FUNCTION drop_chunks(relation text, older_than interval) RETURNS SETOF text"
            " LANGUAGE sql AS $$ INSERT INTO dropped VALUES (relation, older_than) RETURNING relation || '_chunk' $$"
        )
    partitions_before = partitions_list()

    outcome = retention_purge()

    with connection.cursor() as cursor:
        cursor.execute("SELECT relation, older_than FROM dropped")
        calls = cursor.fetchall()
    assert calls == [
        ("ingest_reading", timedelta(days=90)),
        ("aggregates_rollup_hour_cagg", timedelta(days=730)),
        ("aggregates_rollup_day_cagg", timedelta(days=730)),
    ]
    assert (outcome.chunks_dropped, outcome.partitions_dropped) == (3, [])
    assert partitions_list() == partitions_before
