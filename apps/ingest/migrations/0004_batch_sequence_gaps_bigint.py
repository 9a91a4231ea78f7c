from django.db import migrations, models


class Migration(migrations.Migration):
    """A batch's sequence gaps are summed over its datagrams: more than an int4 can hold, for a large batch."""

    dependencies = [
        ("ingest", "0003_batch_evaluation_bookkeeping"),
    ]

    operations = [
        migrations.AlterField(
            model_name="ingestbatch",
            name="sequence_gaps",
            field=models.PositiveBigIntegerField(default=0),
        ),
    ]
