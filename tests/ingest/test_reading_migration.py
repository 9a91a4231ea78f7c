"""Migration ingest.0006: an existing readings table becomes partitioned without losing or copying a row, an
empty one is simply replaced, a TimescaleDB hypertable is left alone, and migrating back copies the rows
into a plain table again."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from apps.ingest.models import Reading
from apps.ingest.partitions import partitions_ensure_range, partitions_forget, partitions_list
from tests.ingest.helpers import ingest, partition_covering

pytestmark = pytest.mark.django_db(transaction=True)

UNPARTITIONED = [("ingest", "0005_idempotency_keys")]
PARTITIONED = [("ingest", "0006_reading_partitions")]
LATEST = [("ingest", "0008_reading_sensor_delete_trigger")]


def migrate(targets) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    partitions_forget()


def relkind() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = 'ingest_reading'::regclass")
        return cursor.fetchone()[0]


def fingerprint() -> tuple:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), sum(value), min(ts), max(ts), count(DISTINCT sensor_id) FROM ingest_reading")
        return cursor.fetchone()


@pytest.fixture
def unpartitioned(world):
    """The readings table as it was before 0004; afterwards, the partitioned table with no partition again."""
    migrate(UNPARTITIONED)
    assert relkind() == "r"
    yield world
    migrate(UNPARTITIONED)
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE ingest_reading")
        cursor.execute("DROP VIEW IF EXISTS timescaledb_information.hypertables")
        cursor.execute("DROP SCHEMA IF EXISTS timescaledb_information")
    migrate(LATEST)
    assert relkind() == "p" and partitions_list() == []


def _insert_history(world, *, days: int) -> None:
    """Hourly readings of every sensor over the last `days` days, written straight into the plain table."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO ingest_reading (sensor_id, ts, value)"
            " SELECT s.id, date_trunc('hour', now()) - n * interval '1 hour', s.id * 1000 + n"
            " FROM devices_sensor s, generate_series(0, %s * 24 - 1) AS n",
            [days],
        )


def test_an_existing_table_becomes_the_first_partition_with_every_row(unpartitioned):
    _insert_history(unpartitioned, days=40)
    before = fingerprint()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 'ingest_reading_pkey'::regclass::oid")
        old_key = cursor.fetchone()[0]

    migrate(PARTITIONED)

    assert relkind() == "p"
    assert fingerprint() == before and before[0] == 40 * 24 * len(unpartitioned.sensors)
    [first] = partitions_list()
    bound = (timezone.now() + timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert (first.name, first.start, first.end) == (f"ingest_reading_p_before_{bound:%Y%m%d}", None, bound)
    with connection.cursor() as cursor:
        # The old primary key's index was taken over as the partition's own, not rebuilt.
        cursor.execute("SELECT indexrelid FROM pg_index WHERE indrelid = %s::regclass AND indisprimary", [first.name])
        assert cursor.fetchone()[0] == old_key
        cursor.execute("SELECT count(*) FROM pg_constraint WHERE conname = 'ingest_reading_bounds'")
        assert cursor.fetchone()[0] == 0  # the helper constraint is gone
        # The key still refuses duplicates and the foreign key unknown sensors, through the parent.
        cursor.execute(
            "INSERT INTO ingest_reading (sensor_id, ts, value) SELECT sensor_id, ts, 0 FROM ingest_reading LIMIT 1"
            " ON CONFLICT DO NOTHING"
        )
        assert cursor.rowcount == 0
        with pytest.raises(IntegrityError), transaction.atomic():
            cursor.execute("INSERT INTO ingest_reading (sensor_id, ts, value) VALUES (-1, now(), 1)")


def test_after_the_migration_new_days_get_partitions_of_their_own(unpartitioned, admin_api):
    _insert_history(unpartitioned, days=2)
    migrate(PARTITIONED)
    [first] = partitions_list()
    sensor = unpartitioned.sensors["env-001/temperature"]
    inside, after = timezone.now().replace(microsecond=0) - timedelta(minutes=30), first.end + timedelta(hours=3)

    assert ingest(admin_api, {"sensor": sensor.key, "ts": inside.isoformat(), "value": 1.0}).stored == 1
    # Past the first partition (later than the ingest API accepts today), written as a bulk load would be.
    partitions_ensure_range(after, after + timedelta(microseconds=1))
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO ingest_reading (sensor_id, ts, value) VALUES (%s, %s, 2.0)", [sensor.pk, after])

    assert partition_covering(inside).name == first.name
    covering = partition_covering(after)
    assert (covering.start, covering.end) == (first.end, first.end + timedelta(days=1))
    assert Reading.objects.filter(sensor=sensor, ts__in=[inside, after]).count() == 2


def test_an_empty_table_is_replaced_by_a_partitioned_one(unpartitioned):
    migrate(PARTITIONED)

    assert relkind() == "p"
    assert partitions_list() == []
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'ingest_reading' ORDER BY 1")
        assert [row[0] for row in cursor.fetchall()] == ["ingest_reading_pkey", "reading_ts_brin"]


def test_migrating_back_copies_the_readings_into_a_plain_table(unpartitioned):
    _insert_history(unpartitioned, days=3)
    migrate(PARTITIONED)
    before = fingerprint()

    migrate(UNPARTITIONED)

    assert relkind() == "r"
    assert fingerprint() == before
    with connection.cursor() as cursor:
        cursor.execute("SELECT conname FROM pg_constraint WHERE conrelid = 'ingest_reading'::regclass ORDER BY 1")
        assert [row[0] for row in cursor.fetchall()] == ["ingest_reading_pkey", "ingest_reading_sensor_fk"]


def test_a_timescaledb_hypertable_is_left_as_it_is(unpartitioned):
    """TimescaleDB cannot be installed here: its catalogue view that names hypertables is stood in for."""
    _insert_history(unpartitioned, days=1)
    with connection.cursor() as cursor:
        cursor.execute("CREATE SCHEMA timescaledb_information")
        cursor.execute(
            "CREATE VIEW timescaledb_information.hypertables AS SELECT 'ingest_reading'::name AS hypertable_name"
        )

    migrate(PARTITIONED)

    assert relkind() == "r"
    assert fingerprint()[0] == 24 * len(unpartitioned.sensors)
