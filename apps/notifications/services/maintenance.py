"""Maintenance windows: planned periods whose notifications are recorded as suppressed (the fan-out reads
them through apps/notifications/selectors.py)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings

from apps.core.errors import ApplicationError
from apps.notifications.models import MaintenanceWindow


def maintenance_window_errors(window: MaintenanceWindow) -> dict[str, list[str]]:
    """What is wrong with a maintenance window, by field: it needs a scope (a location subtree or a device),
    must end after it starts, and may last at most MAINTENANCE_WINDOW_MAX_DAYS, since it silences every
    notification of its scope (the API and the admin both check this)."""
    errors: dict[str, list[str]] = {}
    if window.location_id is None and window.device_id is None:
        errors["location"] = ["Give a location or a device (the root location covers the whole plant)."]
    if window.starts_at and window.ends_at:
        max_days = settings.MAINTENANCE_WINDOW_MAX_DAYS
        if window.ends_at <= window.starts_at:
            errors["ends_at"] = ["Must be after starts_at."]
        elif window.ends_at - window.starts_at > timedelta(days=max_days):
            errors["ends_at"] = [f"A maintenance window may last at most {max_days} days; plan several."]
    return errors


def maintenance_window_save(*, window: MaintenanceWindow) -> MaintenanceWindow:
    """Create or update a maintenance window (see maintenance_window_errors for the rules)."""
    errors = maintenance_window_errors(window)
    if errors:
        raise ApplicationError("Invalid maintenance window.", errors=errors)
    window.save()
    return window
