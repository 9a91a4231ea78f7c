from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.devices.models import Device, Sensor, SensorType
from apps.locations.models import Location
from apps.thresholds.models import Threshold


class Severity(models.TextChoices):
    WARNING = "warning"
    CRITICAL = "critical"


# The evaluation ladder; "normal" is a level of the state machine, never the severity of an alert.
NORMAL = "normal"
LEVELS = {NORMAL: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


class ThresholdState(models.Model):
    """Where one sensor stands against one threshold, kept between batches so that a worker restart forgets
    nothing: the level after hysteresis, a breach still waiting out its minimum duration, the alert it
    opened, and the newest reading time evaluated (older readings never move the state back)."""

    sensor = models.ForeignKey(Sensor, on_delete=models.CASCADE, related_name="+")
    threshold = models.ForeignKey(Threshold, on_delete=models.CASCADE, related_name="+")
    level = models.CharField(max_length=16, default=NORMAL)
    breach_started_at = models.DateTimeField(null=True, blank=True)
    breach_first_value = models.FloatField(null=True, blank=True)
    breach_peak_value = models.FloatField(null=True, blank=True)
    breach_peak_at = models.DateTimeField(null=True, blank=True)
    breach_max_level = models.CharField(max_length=16, default=NORMAL)
    alert = models.ForeignKey("Alert", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    last_ts = models.DateTimeField(null=True, blank=True)
    last_value = models.FloatField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["sensor", "threshold"], name="thresholdstate_unique_sensor_threshold"),
        ]

    def __str__(self) -> str:
        return f"{self.sensor_id}/{self.threshold_id}: {self.level}"


class Alert(models.Model):
    """One breach episode: of one sensor against one threshold, or of one device that went silent."""

    class Kind(models.TextChoices):
        THRESHOLD = "threshold"
        DEVICE_OFFLINE = "device_offline"

    class State(models.TextChoices):
        OPEN = "open"
        ACKNOWLEDGED = "acknowledged"
        RESOLVED = "resolved"

    class Resolution(models.TextChoices):
        CLEARED = "cleared", "value back inside the band"
        MANUAL = "manual", "resolved by a person"
        THRESHOLD_REMOVED = "threshold_removed", "threshold disabled for the sensor"
        DEVICE_ONLINE = "device_online", "device reported again"

    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.THRESHOLD)
    sensor = models.ForeignKey(Sensor, null=True, blank=True, on_delete=models.CASCADE, related_name="alerts")
    # Thresholds with alert history cannot be deleted (disable them instead), so the history keeps its meaning.
    threshold = models.ForeignKey(Threshold, null=True, blank=True, on_delete=models.PROTECT, related_name="alerts")
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="alerts")
    # Copied when the alert opens, so scope filters and subscription matching need no joins through sensors.
    sensor_type = models.ForeignKey(SensorType, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    location = models.ForeignKey(Location, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    severity = models.CharField(max_length=16, choices=Severity.choices)
    max_severity = models.CharField(max_length=16, choices=Severity.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN)
    breach_started_at = models.DateTimeField(help_text="First breaching reading (or last sign of life).")
    opened_at = models.DateTimeField(help_text="When the breach had lasted its minimum duration.")
    first_value = models.FloatField(null=True, blank=True)
    value = models.FloatField(null=True, blank=True, help_text="The newest value evaluated.")
    value_at = models.DateTimeField(null=True, blank=True)
    peak_value = models.FloatField(null=True, blank=True, help_text="The value furthest outside the band.")
    peak_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    acknowledge_comment = models.TextField(blank=True, default="")
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolution = models.CharField(max_length=20, choices=Resolution.choices, blank=True, default="")
    resolution_reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            # Two workers evaluating the same sensor at once cannot both open an alert: the second INSERT fails.
            models.UniqueConstraint(
                fields=["sensor", "threshold"],
                condition=Q(kind="threshold") & ~Q(state="resolved"),
                name="alert_one_unresolved_per_sensor_threshold",
            ),
            models.UniqueConstraint(
                fields=["device"],
                condition=Q(kind="device_offline") & ~Q(state="resolved"),
                name="alert_one_unresolved_offline_per_device",
            ),
            models.CheckConstraint(
                condition=~Q(kind="threshold") | (Q(sensor__isnull=False) & Q(threshold__isnull=False)),
                name="alert_threshold_kind_has_sensor_and_threshold",
            ),
            models.CheckConstraint(
                condition=Q(state="resolved", resolved_at__isnull=False) | (~Q(state="resolved") & Q(resolved_at=None)),
                name="alert_resolved_at_iff_resolved",
            ),
        ]
        indexes = [
            models.Index(fields=["state", "-opened_at"]),
            models.Index(fields=["sensor", "-opened_at"]),
            models.Index(fields=["device", "-opened_at"]),
            models.Index(fields=["location"]),
        ]

    def __str__(self) -> str:
        subject = self.sensor.key if self.sensor_id else f"device {self.device}"
        return f"#{self.pk} {self.severity} {subject} ({self.state})"


class AlertEvent(models.Model):
    """One step of an alert's history. Events are what subscriptions are notified of."""

    class Kind(models.TextChoices):
        OPENED = "opened"
        ESCALATED = "escalated"
        DEESCALATED = "deescalated"
        ACKNOWLEDGED = "acknowledged"
        RESOLVED = "resolved"
        REMINDER = "reminder"

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    at = models.DateTimeField(help_text="When it happened: the reading's time, or the moment a person acted.")
    severity = models.CharField(max_length=16, choices=Severity.choices, help_text="The alert's severity after it.")
    value = models.FloatField(null=True, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    comment = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    # Set in the transaction that creates the event's notifications; a beat finds events left without them.
    fanned_out_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["at", "id"]
        indexes = [
            models.Index(fields=["alert", "at"]),
            models.Index(fields=["created_at"], condition=Q(fanned_out_at=None), name="alertevent_not_fanned_out"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} of alert {self.alert_id} at {self.at.isoformat()}"


class MaintenanceWindow(models.Model):
    """A planned period during which alerts of a device or of a location subtree are recorded but not
    notified."""

    name = models.CharField(max_length=200)
    location = models.ForeignKey(
        Location, null=True, blank=True, on_delete=models.CASCADE, related_name="+", help_text="Its whole subtree."
    )
    device = models.ForeignKey(Device, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reason = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-starts_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(location__isnull=False) | Q(device__isnull=False),
                name="maintenance_has_scope",
                violation_error_message="Give a location or a device (the root location covers the whole plant).",
            ),
            models.CheckConstraint(
                condition=Q(ends_at__gt=models.F("starts_at")),
                name="maintenance_ends_after_start",
                violation_error_message="The window must end after it starts.",
            ),
        ]
        indexes = [models.Index(fields=["ends_at"])]

    def __str__(self) -> str:
        return self.name
