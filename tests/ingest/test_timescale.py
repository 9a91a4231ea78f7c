"""The readings' TimescaleDB path as far as it can run on plain PostgreSQL: the statements that make the
hypertable, and which storage this server gets (the hypertable's migration skip is in test_reading_migration)."""

from __future__ import annotations

import pytest
from django.db import connection

from apps.ingest.partitions import readings_partitioned
from apps.ingest.timescale import hypertable_statements, is_hypertable, timescaledb_enabled


def test_hypertable_statements():
    assert hypertable_statements(chunk_days=1, compress_after_days=7, retention_days=90) == [
        "CREATE EXTENSION IF NOT EXISTS timescaledb",
        "SELECT create_hypertable('ingest_reading', 'ts', chunk_time_interval => interval '1 days',"
        " migrate_data => true, if_not_exists => true)",
        "ALTER TABLE ingest_reading SET (timescaledb.compress, timescaledb.compress_segmentby = 'sensor_id',"
        " timescaledb.compress_orderby = 'ts DESC')",
        "SELECT add_compression_policy('ingest_reading', interval '7 days', if_not_exists => true)",
        "SELECT add_retention_policy('ingest_reading', interval '90 days', if_not_exists => true)",
    ]


@pytest.mark.django_db
def test_plain_postgresql_here_partitions_readings_itself():
    assert not timescaledb_enabled(connection)
    assert not is_hypertable(connection)
    assert readings_partitioned()
