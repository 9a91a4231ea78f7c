from django.db import migrations


class Migration(migrations.Migration):
    """Maintenance windows moved to the notifications app, their only reader. The table and its rows stay:
    it is renamed here, with its index, to the names the model has there (notifications 0004 takes the model
    over without touching the database). Its other constraints and sequence keep their names; Django finds
    those by introspection."""

    dependencies = [("alerts", "0002_thresholdstate_storage")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RenameIndex(
                    model_name="maintenancewindow",
                    new_name="maintenancewindow_ends_at",
                    old_name="alerts_main_ends_at_056153_idx",
                ),
                migrations.AlterModelTable(name="maintenancewindow", table="notifications_maintenancewindow"),
            ],
            state_operations=[migrations.DeleteModel(name="MaintenanceWindow")],
        ),
    ]
