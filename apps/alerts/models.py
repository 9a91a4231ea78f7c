from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.core.errors import ApplicationError
from apps.devices.models import Device, Sensor, SensorType
from apps.locations.models import Location
from apps.thresholds.models import Threshold


class Severity(models.TextChoices):
    WARNING = "warning"
    CRITICAL = "critical"


# The evaluation ladder; "normal" is a level of the state machine, never the severity of an alert.
NORMAL = "normal"
LEVELS = {NORMAL: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


def worse(first: str, second: str) -> str:
    """The higher of two levels."""
    return first if LEVELS[first] >= LEVELS[second] else second


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

    # What start_afresh() changes, for save(update_fields=...).
    AFRESH_FIELDS = (
        "level",
        "alert",
        "breach_started_at",
        "breach_first_value",
        "breach_peak_value",
        "breach_peak_at",
        "breach_max_level",
        "updated_at",
    )

    def start_afresh(self) -> None:
        """Normal, without a pending breach or an alert: a value still out of its band starts a new breach,
        which opens a new alert once it has lasted the minimum duration. The newest reading time evaluated
        stays, so older readings still cannot move the state."""
        self.level = NORMAL
        self.alert = None
        self.breach_started_at = self.breach_first_value = None
        self.breach_peak_value = self.breach_peak_at = None
        self.breach_max_level = NORMAL


class AlertStateError(ApplicationError):
    """A lifecycle step the alert's state does not allow (a 409 in the API, naming the state)."""

    def __init__(self, alert: Alert, message: str) -> None:
        super().__init__(message, errors={"state": [f"The alert is {alert.state}."]}, status_code=409)


class Alert(models.Model):
    """One breach episode: of one sensor against one threshold, or of one device that went silent."""

    class Kind(models.TextChoices):
        THRESHOLD = "threshold"
        DEVICE_OFFLINE = "device_offline"
        ANOMALY = "anomaly"

    class State(models.TextChoices):
        OPEN = "open"
        ACKNOWLEDGED = "acknowledged"
        RESOLVED = "resolved"

    class Resolution(models.TextChoices):
        CLEARED = "cleared", "value back inside the band"
        MANUAL = "manual", "resolved by a person"
        THRESHOLD_REMOVED = "threshold_removed", "threshold disabled for the sensor"
        DEVICE_ONLINE = "device_online", "device reported again"
        BASELINE = "baseline", "readings back to their usual behaviour"

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
    # Anomaly alerts: the band the readings were expected in and the detectors' score (1 is the threshold), as
    # of the newest reading evaluated; peak_score is the episode's highest.
    expected_low = models.FloatField(null=True, blank=True)
    expected_high = models.FloatField(null=True, blank=True)
    score = models.FloatField(null=True, blank=True)
    peak_score = models.FloatField(null=True, blank=True)
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
            models.UniqueConstraint(
                fields=["sensor"],
                condition=Q(kind="anomaly") & ~Q(state="resolved"),
                name="alert_one_unresolved_anomaly_per_sensor",
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

    # The lifecycle: single-row rules, applied to the instance only (no queries), so that the database-free
    # evaluation (apps/alerts/evaluation.py) and the services share them. Each step returns its event, unsaved;
    # the caller saves the alert and the event (set-wise in evaluation, one by one for people's actions).

    # What acknowledge() and resolve() change, for save(update_fields=...).
    ACKNOWLEDGE_FIELDS = ("state", "acknowledged_at", "acknowledged_by", "acknowledge_comment", "updated_at")
    RESOLVE_FIELDS = ("state", "resolved_at", "resolution", "resolution_reason", "resolved_by", "updated_at")

    @classmethod
    def opened(
        cls,
        kind: str,
        *,
        at: datetime,
        severity: str,
        device_id: int,
        location_id: int | None,
        sensor_id: int | None = None,
        sensor_type_id: int | None = None,
        threshold_id: int | None = None,
        value: float | None = None,
        breach_started_at: datetime | None = None,
        first_value: float | None = None,
        peak_value: float | None = None,
        peak_at: datetime | None = None,
        max_severity: str | None = None,
    ) -> Alert:
        """A new episode, open from `at` (unsaved; its `opened` event is `alert.event(AlertEvent.Kind.OPENED,
        at=at)`). The breach may have begun earlier (a minimum duration, a device's last sign of life) and
        been worse or further out on the way there: pass where it began, its first and peak values and its
        worst severity. Each defaults to the value at `at`."""
        return cls(
            kind=kind,
            sensor_id=sensor_id,
            threshold_id=threshold_id,
            device_id=device_id,
            sensor_type_id=sensor_type_id,
            location_id=location_id,
            severity=severity,
            max_severity=worse(severity, max_severity or severity),
            state=cls.State.OPEN,
            breach_started_at=breach_started_at or at,
            opened_at=at,
            first_value=first_value if first_value is not None else value,
            value=value,
            value_at=at if value is not None else None,
            peak_value=peak_value if peak_value is not None else value,
            peak_at=peak_at or (at if value is not None else None),
        )

    def event(self, kind: str, *, at: datetime, user=None, comment: str = "") -> AlertEvent:
        """An event of this alert (unsaved), with the alert's severity after the step and its newest value."""
        return AlertEvent(
            alert=self,
            kind=kind,
            at=at,
            severity=self.severity,
            value=self.value,
            expected_low=self.expected_low,
            expected_high=self.expected_high,
            score=self.score,
            user=user,
            comment=comment,
        )

    def observe(self, value: float, *, at: datetime, peak: bool) -> None:
        """A newer value evaluated; `peak` when it lies further outside the band than the peak so far (what
        "further" means is the evaluation's: distance from a threshold's band)."""
        self.value, self.value_at = value, at
        if peak or self.peak_value is None:
            self.peak_value, self.peak_at = value, at

    def change_severity(self, severity: str, *, at: datetime) -> AlertEvent | None:
        """Escalate or de-escalate within the same episode; None when the severity stays. An escalation of
        an acknowledged alert opens it again: the acknowledgement was given for the lesser severity, and the
        worse one needs its own (reminders start again)."""
        if severity not in Severity.values:
            raise ValueError(f"{severity!r} is not an alert severity (a return to normal resolves the alert).")
        if self.state == self.State.RESOLVED:
            raise AlertStateError(self, "A resolved alert keeps the severity it ended with.")
        if severity == self.severity:
            return None
        escalated = LEVELS[severity] > LEVELS[self.severity]
        self.severity = severity
        if escalated:
            self.max_severity = worse(self.max_severity, severity)
            if self.state == self.State.ACKNOWLEDGED:
                self.state = self.State.OPEN
        return self.event(AlertEvent.Kind.ESCALATED if escalated else AlertEvent.Kind.DEESCALATED, at=at)

    def acknowledge(self, *, at: datetime, user, comment: str = "") -> AlertEvent:
        """Someone has seen the alert and is on it: who, when and why. Refused once acknowledged (the first
        acknowledgement stands) or resolved."""
        if self.state == self.State.RESOLVED:
            raise AlertStateError(self, "A resolved alert cannot be acknowledged.")
        if self.state == self.State.ACKNOWLEDGED:
            who = self.acknowledged_by.get_username() if self.acknowledged_by_id else "someone"
            raise AlertStateError(self, f"Already acknowledged by {who} at {self.acknowledged_at.isoformat()}.")
        self.state = self.State.ACKNOWLEDGED
        self.acknowledged_at, self.acknowledged_by, self.acknowledge_comment = at, user, comment
        return self.event(AlertEvent.Kind.ACKNOWLEDGED, at=at, user=user, comment=comment)

    def resolve(self, resolution: str, *, at: datetime, reason: str = "", user=None) -> AlertEvent:
        """End the episode: the value is back (cleared), its threshold went away, its device reported again,
        or a person closed it (with a reason, which the event carries as its comment). Refused when resolved
        already."""
        if self.state == self.State.RESOLVED:
            raise AlertStateError(self, "The alert is already resolved.")
        self.state = self.State.RESOLVED
        self.resolved_at, self.resolution, self.resolution_reason, self.resolved_by = at, resolution, reason, user
        return self.event(AlertEvent.Kind.RESOLVED, at=at, user=user, comment=reason)


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
    # Anomaly alerts: the expected band and the score at the event's reading.
    expected_low = models.FloatField(null=True, blank=True)
    expected_high = models.FloatField(null=True, blank=True)
    score = models.FloatField(null=True, blank=True)
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
