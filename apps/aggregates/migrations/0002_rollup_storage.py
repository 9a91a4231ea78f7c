"""What Django's schema operations cannot express: the rollups' cascading foreign keys to sensors, the index
the refresh reads ingest batches by, and, where TimescaleDB is in use, the continuous aggregates."""

from django.conf import settings
from django.db import migrations

from apps.aggregates.timescale import continuous_aggregate_statements
from apps.ingest.timescale import timescaledb_enabled


def make_continuous_aggregates(apps, schema_editor):
    if not timescaledb_enabled(schema_editor.connection):
        return
    for statement in continuous_aggregate_statements(
        readings_retention_days=settings.READINGS_RETENTION_DAYS,
        rollups_retention_days=settings.ROLLUPS_RETENTION_DAYS,
        refresh_interval_s=settings.AGGREGATES_REFRESH_INTERVAL_S,
    ):
        schema_editor.execute(statement)


def foreign_key(table):
    return migrations.RunSQL(
        f"ALTER TABLE {table} ADD CONSTRAINT {table}_sensor_fk FOREIGN KEY (sensor_id)"
        " REFERENCES devices_sensor (id) ON DELETE CASCADE",
        f"ALTER TABLE {table} DROP CONSTRAINT {table}_sensor_fk",
    )


class Migration(migrations.Migration):
    dependencies = [("aggregates", "0001_initial"), ("ingest", "0003_batch_evaluation_bookkeeping")]

    operations = [
        foreign_key("aggregates_rolluphour"),
        foreign_key("aggregates_rollupday"),
        # The refresh and the aggregate reads look for done batches finished since the watermark; without
        # this they would scan every batch ever received. A partial index on the ingest table, kept here
        # because only the aggregation side reads batches this way.
        migrations.RunSQL(
            "CREATE INDEX IF NOT EXISTS aggregates_ingestbatch_finished ON ingest_ingestbatch (finished_at)"
            " WHERE status = 'done' AND stored > 0",
            "DROP INDEX IF EXISTS aggregates_ingestbatch_finished",
        ),
        migrations.RunPython(make_continuous_aggregates, migrations.RunPython.noop),
    ]
