"""Alerting comes before notifications in the flow of data (STYLE.md, "Direction of dependencies"): no module
of apps/alerts imports the notifications side, which picks events up by task name. Maintenance windows, which
only the fan-out reads, live there."""

from __future__ import annotations

from tests.core.test_import_direction import APPS_DIR, imported_modules


def test_alerting_imports_nothing_of_the_notifications_side():
    reaching_forward = {
        str(path.relative_to(APPS_DIR.parent)): names
        for path in sorted((APPS_DIR / "alerts").rglob("*.py"))
        if (names := {name for name in imported_modules(path) if name.startswith("apps.notifications")})
    }

    assert reaching_forward == {}


def test_the_check_sees_the_notifications_side_importing_alerting():
    """So an empty answer above means clean code, not a walk that found nothing."""
    assert "apps.alerts.models" in imported_modules(APPS_DIR / "notifications" / "models.py")
