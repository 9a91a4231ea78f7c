"""Room on each page of the rollup tables for the next version of a row: the refresh rewrites every active
sensor's current hour and day each minute, and with free space on the page those updates stay HOT (no new
index entries, no new page)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("aggregates", "0002_rollup_storage")]

    operations = [
        migrations.RunSQL(
            f"ALTER TABLE {table} SET (fillfactor = 80)",
            f"ALTER TABLE {table} RESET (fillfactor)",
        )
        for table in ("aggregates_rolluphour", "aggregates_rollupday")
    ]
