from django.db import migrations


def create_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.get_or_create(name="ingest")


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_role_groups")]
    operations = [migrations.RunPython(create_group, migrations.RunPython.noop)]
