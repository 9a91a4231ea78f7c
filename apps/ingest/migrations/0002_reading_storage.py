"""Readings storage that Django's schema operations cannot express: the cascading foreign key to sensors,
and, where TimescaleDB is present, the hypertable."""

from django.conf import settings
from django.db import migrations

from apps.ingest.timescale import hypertable_statements, timescaledb_enabled


def make_hypertable(apps, schema_editor):
    if not timescaledb_enabled(schema_editor.connection):
        return
    for statement in hypertable_statements(
        chunk_days=settings.TIMESCALEDB_CHUNK_DAYS,
        compress_after_days=settings.TIMESCALEDB_COMPRESS_AFTER_DAYS,
        retention_days=settings.READINGS_RETENTION_DAYS,
    ):
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("ingest", "0001_initial"), ("devices", "0001_initial")]

    operations = [
        migrations.RunSQL(
            "ALTER TABLE ingest_reading ADD CONSTRAINT ingest_reading_sensor_fk FOREIGN KEY (sensor_id)"
            " REFERENCES devices_sensor (id) ON DELETE CASCADE",
            "ALTER TABLE ingest_reading DROP CONSTRAINT ingest_reading_sensor_fk",
        ),
        migrations.RunPython(make_hypertable, migrations.RunPython.noop),
    ]
