"""TimescaleDB, where the readings table is a hypertable: continuous aggregates replace the rollup tables.

Hourly and daily continuous aggregates with the rollup tables' columns, kept by TimescaleDB refresh policies
(late data inside the refresh window is re-materialised from TimescaleDB's invalidation log), real-time so
the hours not materialised yet are computed from readings at query time, and retention policies for the
rollup retention. The selectors read them instead of the tables when they exist; the beat refresh then has
nothing to do, and the retention purge drops whole chunks.

On plain PostgreSQL nothing here runs. The SELECT bodies are tested there against the rollup tables, with a
`time_bucket` stand-in built from `date_bin`.
"""

from __future__ import annotations

from django.db.backends.base.base import BaseDatabaseWrapper

from apps.ingest.timescale import READINGS_TABLE

HOUR_VIEW = "aggregates_rollup_hour_cagg"
DAY_VIEW = "aggregates_rollup_day_cagg"

HOUR_SELECT = f"""SELECT sensor_id, time_bucket(INTERVAL '1 hour', ts) AS bucket,
       min(value) AS min, max(value) AS max, sum(value) AS sum, count(*) AS count,
       min(ts) AS first_ts, max(ts) AS last_ts
  FROM {READINGS_TABLE}
 GROUP BY sensor_id, time_bucket(INTERVAL '1 hour', ts)"""

# A hierarchical continuous aggregate (TimescaleDB 2.9+): days from the hourly one, not from readings.
DAY_SELECT = f"""SELECT sensor_id, time_bucket(INTERVAL '1 day', bucket) AS bucket,
       min(min) AS min, max(max) AS max, sum(sum) AS sum, sum(count)::bigint AS count,
       min(first_ts) AS first_ts, max(last_ts) AS last_ts
  FROM {HOUR_VIEW}
 GROUP BY sensor_id, time_bucket(INTERVAL '1 day', bucket)"""


def continuous_aggregate_statements(
    *, readings_retention_days: int, rollups_retention_days: int, refresh_interval_s: int
) -> list[str]:
    """The SQL that creates both continuous aggregates with their refresh and retention policies.

    The refresh window reaches back as far as raw readings are kept, so late data anywhere in it is
    folded in; the newest bucket is left to real-time aggregation (end_offset)."""
    schedule = f"INTERVAL '{int(refresh_interval_s)} seconds'"
    reach = f"INTERVAL '{int(readings_retention_days)} days'"
    keep = f"INTERVAL '{int(rollups_retention_days)} days'"
    statements = []
    for view, select, end_offset in ((HOUR_VIEW, HOUR_SELECT, "1 hour"), (DAY_VIEW, DAY_SELECT, "1 day")):
        statements += [
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {view}"
            " WITH (timescaledb.continuous, timescaledb.materialized_only = false)"
            f" AS {select} WITH NO DATA",
            f"SELECT add_continuous_aggregate_policy('{view}', start_offset => {reach},"
            f" end_offset => INTERVAL '{end_offset}', schedule_interval => {schedule}, if_not_exists => true)",
            f"SELECT add_retention_policy('{view}', {keep}, if_not_exists => true)",
        ]
    return statements


def drop_chunks_statements(*, readings_retention_days: int, rollups_retention_days: int) -> list[tuple[str, str]]:
    """(what, SQL) for the retention purge on TimescaleDB: each returns the names of the chunks it dropped."""
    return [
        (
            "readings",
            f"SELECT drop_chunks('{READINGS_TABLE}', older_than => INTERVAL '{int(readings_retention_days)} days')",
        ),
        (
            "hour_rollups",
            f"SELECT drop_chunks('{HOUR_VIEW}', older_than => INTERVAL '{int(rollups_retention_days)} days')",
        ),
        (
            "day_rollups",
            f"SELECT drop_chunks('{DAY_VIEW}', older_than => INTERVAL '{int(rollups_retention_days)} days')",
        ),
    ]


def continuous_aggregates_exist(connection: BaseDatabaseWrapper) -> bool:
    """True where the migration created the continuous aggregates (TimescaleDB in use)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [HOUR_VIEW])
        return bool(cursor.fetchone()[0])
