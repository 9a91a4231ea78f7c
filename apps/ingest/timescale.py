"""TimescaleDB, where the extension exists: the readings table becomes a hypertable with compression and a
retention policy. On plain PostgreSQL nothing here runs and the same table is an ordinary one.

Whether it is used is decided by TIMESCALEDB (auto, on, off): auto uses it when the server offers the
extension and has it preloaded.
"""

from __future__ import annotations

from django.conf import settings
from django.db.backends.base.base import BaseDatabaseWrapper

READINGS_TABLE = "ingest_reading"


def timescaledb_available(connection: BaseDatabaseWrapper) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'),"
            " current_setting('shared_preload_libraries', true)"
        )
        offered, preloaded = cursor.fetchone()
    return bool(offered) and "timescaledb" in (preloaded or "")


def timescaledb_enabled(connection: BaseDatabaseWrapper) -> bool:
    """True when the readings table is (or should become) a hypertable."""
    mode = settings.TIMESCALEDB
    if mode == "off":
        return False
    available = timescaledb_available(connection)
    if mode == "on" and not available:
        raise RuntimeError("TIMESCALEDB=on but the server does not offer a preloaded timescaledb extension.")
    return available


def hypertable_statements(*, chunk_days: int, compress_after_days: int, retention_days: int) -> list[str]:
    """The SQL that turns the readings table into a compressed hypertable with a retention policy."""
    table = READINGS_TABLE
    return [
        "CREATE EXTENSION IF NOT EXISTS timescaledb",
        f"SELECT create_hypertable('{table}', 'ts', chunk_time_interval => interval '{int(chunk_days)} days',"
        " migrate_data => true, if_not_exists => true)",
        f"ALTER TABLE {table} SET (timescaledb.compress, timescaledb.compress_segmentby = 'sensor_id',"
        " timescaledb.compress_orderby = 'ts DESC')",
        f"SELECT add_compression_policy('{table}', interval '{int(compress_after_days)} days', if_not_exists => true)",
        f"SELECT add_retention_policy('{table}', interval '{int(retention_days)} days', if_not_exists => true)",
    ]


def is_hypertable(connection: BaseDatabaseWrapper, table: str = READINGS_TABLE) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('timescaledb_information.hypertables') IS NOT NULL")
        if not cursor.fetchone()[0]:
            return False
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = %s)", [table]
        )
        return bool(cursor.fetchone()[0])
