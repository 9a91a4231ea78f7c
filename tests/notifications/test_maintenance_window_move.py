"""The move of maintenance windows from the alerts app to notifications (alerts 0003, notifications 0004):
a window planned before it is found after it, and the model's content type, permissions and the groups that
hold them come along. The test database is migrated back before the move and forward again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from apps.notifications.models import MaintenanceWindow

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("alerts", "0002_thresholdstate_storage"), ("notifications", "0003_last_error_without_response_bodies")]
AFTER = [("alerts", "0003_maintenancewindow_to_notifications"), ("notifications", "0004_maintenancewindow")]
STARTS = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)


def migrate(targets: list[tuple[str, str]]):
    """Migrate the test database to `targets`; returns the historical models there."""
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    ContentType.objects.clear_cache()
    return MigrationExecutor(connection).loader.project_state(targets).apps


def tables() -> set[str]:
    with connection.cursor() as cursor:
        return set(connection.introspection.table_names(cursor))


@pytest.fixture
def before_the_move(world):
    """The database as it was before the move (migrated forward again afterwards, whatever the test did: to
    the newest migrations, not just past the move, or later tests would miss the columns added since)."""
    try:
        yield migrate(BEFORE)
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


def test_a_window_planned_before_the_move_is_found_after_it_with_its_permissions(world, before_the_move):
    old_window_model = before_the_move.get_model("alerts", "MaintenanceWindow")
    old_window_model.objects.create(
        name="Line 3 retrofit",
        device_id=world.devices["env-001"].pk,
        starts_at=STARTS,
        ends_at=STARTS + timedelta(hours=8),
        reason="New conveyor",
    )
    # Before the move the content type is the alerts app's, with its permissions.
    old_type = ContentType.objects.get(app_label="alerts", model="maintenancewindow")
    delete = Permission.objects.get(content_type=old_type, codename="delete_maintenancewindow")
    planners = Group.objects.create(name="planners")
    planners.permissions.add(delete)
    assert "alerts_maintenancewindow" in tables()

    migrate(AFTER)

    window = MaintenanceWindow.objects.get()
    assert (window.name, window.device_id, window.starts_at, window.ends_at, window.reason) == (
        "Line 3 retrofit",
        world.devices["env-001"].pk,
        STARTS,
        STARTS + timedelta(hours=8),
        "New conveyor",
    )
    assert "notifications_maintenancewindow" in tables() and "alerts_maintenancewindow" not in tables()
    moved_type = ContentType.objects.get_for_model(MaintenanceWindow)
    assert (moved_type.pk, moved_type.app_label) == (old_type.pk, "notifications")
    assert not ContentType.objects.filter(app_label="alerts", model="maintenancewindow").exists()
    assert list(planners.permissions.all()) == [delete]
    assert Permission.objects.get(pk=delete.pk).content_type_id == moved_type.pk
    # New windows still get ids after the old ones (the table's sequence came along).
    later = MaintenanceWindow.objects.create(
        name="Line 4", device=world.devices["env-002"], starts_at=STARTS, ends_at=STARTS + timedelta(hours=1)
    )
    assert later.pk > window.pk


def test_the_move_can_be_undone_without_losing_the_windows(world, before_the_move):
    migrate(AFTER)
    MaintenanceWindow.objects.create(
        name="Hall B shutdown", location=world.building_b, starts_at=STARTS, ends_at=STARTS + timedelta(days=2)
    )

    old_apps = migrate(BEFORE)

    window = old_apps.get_model("alerts", "MaintenanceWindow").objects.get()
    assert (window.name, window.location_id) == ("Hall B shutdown", world.building_b.pk)
    assert ContentType.objects.filter(app_label="alerts", model="maintenancewindow").exists()
    assert not ContentType.objects.filter(app_label="notifications", model="maintenancewindow").exists()
