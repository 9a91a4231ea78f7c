import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def carry_content_type(apps, schema_editor, *, old: str = "alerts", new: str = "notifications") -> None:
    """The model's content type changes app, so its permissions (and the groups and users holding them) and
    its admin history stay attached. Where the new one exists already, the old one is left to
    `remove_stale_contenttypes`."""
    content_types = apps.get_model("contenttypes", "ContentType").objects.using(schema_editor.connection.alias)
    if not content_types.filter(app_label=new, model="maintenancewindow").exists():
        content_types.filter(app_label=old, model="maintenancewindow").update(app_label=new)


def carry_content_type_back(apps, schema_editor) -> None:
    carry_content_type(apps, schema_editor, old="notifications", new="alerts")


class Migration(migrations.Migration):
    """Maintenance windows arrive from the alerts app: the model only, on the table alerts 0003 renamed."""

    dependencies = [
        ("alerts", "0003_maintenancewindow_to_notifications"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("devices", "0002_connectivity_and_ota"),
        ("locations", "0001_initial"),
        ("notifications", "0003_last_error_without_response_bodies"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="MaintenanceWindow",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("name", models.CharField(max_length=200)),
                        ("starts_at", models.DateTimeField()),
                        ("ends_at", models.DateTimeField()),
                        ("reason", models.TextField(blank=True, default="")),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("created_by", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to=settings.AUTH_USER_MODEL)),
                        ("device", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name="+", to="devices.device")),
                        ("location", models.ForeignKey(blank=True, help_text="Its whole subtree.", null=True, on_delete=django.db.models.deletion.CASCADE, related_name="+", to="locations.location")),
                    ],
                    options={
                        "ordering": ["-starts_at"],
                        "indexes": [models.Index(fields=["ends_at"], name="maintenancewindow_ends_at")],
                        "constraints": [
                            models.CheckConstraint(condition=models.Q(("location__isnull", False), ("device__isnull", False), _connector="OR"), name="maintenance_has_scope", violation_error_message="Give a location or a device (the root location covers the whole plant)."),
                            models.CheckConstraint(condition=models.Q(("ends_at__gt", models.F("starts_at"))), name="maintenance_ends_after_start", violation_error_message="The window must end after it starts."),
                        ],
                    },
                ),
            ],
        ),
        migrations.RunPython(carry_content_type, carry_content_type_back),
    ]
