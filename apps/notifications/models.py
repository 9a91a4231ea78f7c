from __future__ import annotations

import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from apps.alerts.models import Alert, AlertEvent, Severity
from apps.devices.models import Device, SensorType
from apps.locations.models import Location


class Channel(models.TextChoices):
    EMAIL = "email"
    WEBHOOK = "webhook"
    SMS = "sms"
    PUSH = "push"


def validate_time_zone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"{value!r} is not a known time zone (e.g. UTC, Europe/Berlin).") from None


def default_time_zone() -> str:
    """The server's TIME_ZONE: where the plant is, unless a subscriber says otherwise."""
    return settings.TIME_ZONE


class Subscription(models.Model):
    """Who is told about which alerts, and how. Empty scope fields match everything."""

    name = models.CharField(max_length=200)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="alert_subscriptions",
        help_text="The person this is for; empty for an external contact or a system.",
    )
    contact = models.CharField(max_length=200, blank=True, default="", help_text="An external contact's name.")
    location = models.ForeignKey(
        Location, null=True, blank=True, on_delete=models.CASCADE, related_name="+", help_text="Its whole subtree."
    )
    sensor_type = models.ForeignKey(SensorType, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    min_severity = models.CharField(max_length=16, choices=Severity.choices, default=Severity.WARNING)
    include_anomalies = models.BooleanField(
        default=True, help_text="Also anomaly alerts (readings unlike the sensor's usual behaviour)."
    )
    # [{"type": "email" | "webhook" | "sms" | "push", "target": "..."}]
    channels = models.JSONField(default=list)
    notify_on_resolve = models.BooleanField(default=True)
    notify_on_acknowledge = models.BooleanField(default=False)
    renotify_minutes = models.PositiveIntegerField(
        null=True, blank=True, help_text="Remind every this many minutes while an alert is unacknowledged."
    )
    quiet_hours_start = models.TimeField(null=True, blank=True)
    quiet_hours_end = models.TimeField(null=True, blank=True)
    time_zone = models.CharField(
        max_length=64, default=default_time_zone, validators=[validate_time_zone], help_text="For the quiet hours."
    )
    quiet_hours_bypass_critical = models.BooleanField(default=True)
    storm_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="At most this many notifications per window (empty: the default)."
    )
    storm_window_s = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: the default.")
    # The key webhooks are signed with. HMAC needs the key itself, so it is stored as is; the API shows it only
    # in the answer that sets it.
    secret = models.CharField(max_length=128, blank=True, default="")
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(quiet_hours_start__isnull=True) & Q(quiet_hours_end__isnull=True))
                | (Q(quiet_hours_start__isnull=False) & Q(quiet_hours_end__isnull=False)),
                name="subscription_quiet_hours_both_or_neither",
                violation_error_message="Give both ends of the quiet hours, or neither.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def effective_storm_limit(self) -> int:
        return self.storm_limit if self.storm_limit is not None else settings.NOTIFY_STORM_LIMIT

    @property
    def effective_storm_window_s(self) -> int:
        return self.storm_window_s or settings.NOTIFY_STORM_WINDOW_S


class Notification(models.Model):
    """One delivery of one alert event to one subscription over one channel, or of one digest."""

    class Kind(models.TextChoices):
        EVENT = "event"
        DIGEST = "digest"

    class Status(models.TextChoices):
        PENDING = "pending"
        SENDING = "sending", "sending (claimed by a worker)"
        SENT = "sent"
        FAILED = "failed"
        HELD = "held", "held back by storm control (goes out in a digest)"
        SUPPRESSED = "suppressed", "not sent: quiet hours or maintenance"

    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.EVENT)
    event = models.ForeignKey(AlertEvent, null=True, blank=True, on_delete=models.CASCADE, related_name="notifications")
    alert = models.ForeignKey(Alert, null=True, blank=True, on_delete=models.CASCADE, related_name="notifications")
    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="notifications")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    target = models.CharField(max_length=1000)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    detail = models.TextField(blank=True, default="", help_text="Why it was held back or suppressed.")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True, editable=False)
    sent_at = models.DateTimeField(null=True, blank=True)
    digest = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="held",
        help_text="The digest it went out in.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # Fanning an event out again (a redelivered task, the requeue beat) can never double a delivery.
            models.UniqueConstraint(
                fields=["event", "subscription", "channel", "target"],
                condition=Q(event__isnull=False),
                name="notification_once_per_event_subscription_channel",
            ),
            models.CheckConstraint(
                condition=Q(kind="digest") | Q(event__isnull=False), name="notification_event_kind_has_event"
            ),
        ]
        indexes = [
            models.Index(fields=["subscription", "-created_at"]),
            models.Index(fields=["alert", "subscription"]),
            models.Index(fields=["status", "next_attempt_at"]),
            models.Index(
                fields=["subscription", "created_at"],
                condition=Q(status="held", digest=None),
                name="notification_held_undigested",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.channel} to {self.target} ({self.status})"


class MaintenanceWindow(models.Model):
    """A planned period during which alerts of a device or of a location subtree are recorded but not
    notified. (Alerting never reads these: only the fan-out does.)"""

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
        indexes = [models.Index(fields=["ends_at"], name="maintenancewindow_ends_at")]

    def __str__(self) -> str:
        return self.name
