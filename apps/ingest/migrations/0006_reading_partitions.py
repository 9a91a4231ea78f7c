"""Readings partitioned by range of ts on plain PostgreSQL (apps/ingest/partitions.py, docs/ingest.md); a
TimescaleDB hypertable is left as it is.

Forward, without copying a row:
1. An empty table is replaced by the partitioned one at once.
2. Otherwise a constraint `ts < bound` is added NOT VALID (a moment's lock) and validated in a transaction of
   its own, which reads the whole table but lets reads and writes go on. The bound is two UTC days past the
   newest reading or today, whichever is later, so readings arriving meanwhile still fit.
3. In one short transaction the table is renamed, with its key, index and foreign key, to become the first
   partition (MINVALUE to the bound), the partitioned parent is created under the old name with the same
   columns, key (now with fillfactor 100), BRIN index and foreign key, and the old table is attached: its
   indexes and foreign key are taken over as the partition's own, and the validated constraint spares the
   attach another scan. Day partitions follow from the bound on, made by the store step and the beat.

Backward copies every reading into a plain table of the earlier shape (for small installations and tests).
"""

from django.db import migrations, transaction

TABLE = "ingest_reading"
BOUND_CONSTRAINT = "ingest_reading_bounds"
# Oldest and newest reading over all sensors, one primary-key probe per sensor each rather than a table scan.
SPAN_SQL = f"""
SELECT min(first.ts), max(last.ts)
  FROM devices_sensor s
 CROSS JOIN LATERAL (SELECT ts FROM {TABLE} r WHERE r.sensor_id = s.id ORDER BY ts LIMIT 1) first
 CROSS JOIN LATERAL (SELECT ts FROM {TABLE} r WHERE r.sensor_id = s.id ORDER BY ts DESC LIMIT 1) last
"""


def _relkind(cursor, name):
    cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [name])
    row = cursor.fetchone()
    return row[0] if row else None


def _is_hypertable(cursor):
    cursor.execute("SELECT to_regclass('timescaledb_information.hypertables') IS NOT NULL")
    if not cursor.fetchone()[0]:
        return False
    cursor.execute("SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = %s)", [TABLE])
    return cursor.fetchone()[0]


def _create_parent(cursor, *, like):
    cursor.execute(f"CREATE TABLE {TABLE} (LIKE {like}) PARTITION BY RANGE (ts)")
    # Readings arrive in time order, so each sensor's new entries go at the end of its run of the key: a page
    # split keeps the full page full (fillfactor 100) instead of leaving a tenth of every page empty.
    cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY (sensor_id, ts) WITH (fillfactor = 100)")
    cursor.execute(f"CREATE INDEX reading_ts_brin ON {TABLE} USING brin (ts) WITH (pages_per_range = 32)")
    cursor.execute(
        f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_sensor_fk FOREIGN KEY (sensor_id)"
        " REFERENCES devices_sensor (id) ON DELETE CASCADE"
    )


def partition_readings(apps, schema_editor):
    alias = schema_editor.connection.alias
    with schema_editor.connection.cursor() as cursor:
        if _relkind(cursor, TABLE) != "r" or _is_hypertable(cursor):
            return
        cursor.execute(SPAN_SQL)
        oldest, newest = cursor.fetchone()
        cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {TABLE})")
        if not cursor.fetchone()[0]:
            with transaction.atomic(using=alias):
                cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {TABLE}_unpartitioned")
                for old in ("pkey", "sensor_fk"):
                    cursor.execute(f"ALTER TABLE {TABLE}_unpartitioned RENAME CONSTRAINT {TABLE}_{old} TO unpartitioned_{old}")
                cursor.execute("ALTER INDEX reading_ts_brin RENAME TO unpartitioned_ts_brin")
                _create_parent(cursor, like=f"{TABLE}_unpartitioned")
                cursor.execute(f"DROP TABLE {TABLE}_unpartitioned")
            return
        cursor.execute(
            "SELECT date_trunc('day', greatest(%s, now()), 'UTC') + interval '2 days'", [newest or oldest]
        )
        bound = cursor.fetchone()[0]
        with transaction.atomic(using=alias):
            cursor.execute(f"ALTER TABLE {TABLE} DROP CONSTRAINT IF EXISTS {BOUND_CONSTRAINT}")
            cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {BOUND_CONSTRAINT} CHECK (ts < %s) NOT VALID", [bound])
        with transaction.atomic(using=alias):
            cursor.execute(f"ALTER TABLE {TABLE} VALIDATE CONSTRAINT {BOUND_CONSTRAINT}")
        first = f"{TABLE}_p_before_{bound:%Y%m%d}"
        with transaction.atomic(using=alias):
            cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {first}")
            cursor.execute(f"ALTER TABLE {first} RENAME CONSTRAINT {TABLE}_pkey TO {first}_pkey")
            cursor.execute(f"ALTER TABLE {first} RENAME CONSTRAINT {TABLE}_sensor_fk TO {first}_sensor_fk")
            cursor.execute(f"ALTER INDEX reading_ts_brin RENAME TO {first}_ts_brin")
            _create_parent(cursor, like=first)
            cursor.execute(f"ALTER TABLE {TABLE} ATTACH PARTITION {first} FOR VALUES FROM (MINVALUE) TO (%s)", [bound])
            cursor.execute(f"ALTER TABLE {first} DROP CONSTRAINT {BOUND_CONSTRAINT}")


def unpartition_readings(apps, schema_editor):
    alias = schema_editor.connection.alias
    with schema_editor.connection.cursor() as cursor:
        if _relkind(cursor, TABLE) != "p":
            return
        with transaction.atomic(using=alias):
            cursor.execute(f"CREATE TABLE {TABLE}_plain (LIKE {TABLE})")
            cursor.execute(f"INSERT INTO {TABLE}_plain SELECT * FROM {TABLE} ORDER BY ts, sensor_id")
            cursor.execute(f"DROP TABLE {TABLE}")
            cursor.execute(f"ALTER TABLE {TABLE}_plain RENAME TO {TABLE}")
            cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY (sensor_id, ts)")
            cursor.execute(f"CREATE INDEX reading_ts_brin ON {TABLE} USING brin (ts) WITH (pages_per_range = 32)")
            cursor.execute(
                f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_sensor_fk FOREIGN KEY (sensor_id)"
                " REFERENCES devices_sensor (id) ON DELETE CASCADE"
            )


class Migration(migrations.Migration):
    # Each step commits on its own, so the long validation does not hold the table locked (see above).
    atomic = False

    dependencies = [("ingest", "0005_idempotency_keys")]

    operations = [migrations.RunPython(partition_readings, unpartition_readings, atomic=False)]
