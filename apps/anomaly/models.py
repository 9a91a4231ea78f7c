from __future__ import annotations

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from apps.devices.models import Sensor, SensorType


class Sensitivity(models.TextChoices):
    LOW = "low", "low (fewer, surer alerts)"
    MEDIUM = "medium"
    HIGH = "high", "high (earlier, more alerts)"


class Seasonality(models.TextChoices):
    AUTO = "auto", "auto (the hour-of-day profile when it fits the sensor clearly better)"
    DAILY = "daily", "daily (always the hour-of-day profile, once learned)"
    OFF = "off"


# The detector parameters a rule may set; empty means the default (a type's rule) or the type's value (a
# sensor's override). The defaults live in apps/anomaly/detectors.py (Settings).
PARAMETER_FIELDS = (
    "sensitivity",
    "warmup_readings",
    "warmup_s",
    "half_life_readings",
    "deviation_z",
    "rate_factor",
    "stuck_factor",
    "stuck_after_s",
    "seasonality",
    "min_readings",
    "min_duration_s",
    "clear_readings",
)
POSITIVE_FIELDS = ("half_life_readings", "deviation_z", "rate_factor", "stuck_factor", "stuck_after_s")
AT_LEAST_ONE_FIELDS = ("min_readings", "clear_readings")


def _positive() -> list:
    return [MinValueValidator(0.001, message="Must be greater than 0.")]


class AnomalyRule(models.Model):
    """Anomaly detection for every sensor of a type, or a sensor's override of its type's rule (set fields
    replace the type's, empty ones inherit; enabled=False switches detection off for that sensor, and an
    override without a type rule switches it on for that sensor alone)."""

    sensor_type = models.ForeignKey(
        SensorType, null=True, blank=True, on_delete=models.CASCADE, related_name="anomaly_rules"
    )
    sensor = models.ForeignKey(Sensor, null=True, blank=True, on_delete=models.CASCADE, related_name="anomaly_rules")
    enabled = models.BooleanField(default=True)
    # null, not "", for "inherit", like every other parameter: the API answers null for all of them.
    sensitivity = models.CharField(  # noqa: DJ001
        max_length=8, choices=Sensitivity.choices, null=True, blank=True, help_text="Default medium."
    )
    warmup_readings = models.PositiveIntegerField(
        null=True, blank=True, help_text="Readings learned before any alert (default 200)."
    )
    warmup_s = models.PositiveIntegerField(
        null=True, blank=True, help_text="Reading time (s) learned before any alert (default 86400, a day)."
    )
    half_life_readings = models.FloatField(
        null=True,
        blank=True,
        validators=_positive(),
        help_text="Readings after which an old reading weighs half in the baseline (default 60).",
    )
    deviation_z = models.FloatField(
        null=True,
        blank=True,
        validators=_positive(),
        help_text="Deviation threshold in robust standard deviations of the baseline, at medium sensitivity "
        "(default 6).",
    )
    rate_factor = models.FloatField(
        null=True,
        blank=True,
        validators=_positive(),
        help_text="A step fires beyond this many times the largest usual step (default 2.5).",
    )
    stuck_factor = models.FloatField(
        null=True,
        blank=True,
        validators=_positive(),
        help_text="A flat run fires beyond this many times the longest usual one (default 3).",
    )
    stuck_after_s = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="A fixed stuck period (s) instead of the learned one.",
    )
    seasonality = models.CharField(  # noqa: DJ001
        max_length=8, choices=Seasonality.choices, null=True, blank=True, help_text="Default auto."
    )
    min_readings = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Anomalous readings in a row before an alert opens (default 2; a jump counts as enough).",
    )
    min_duration_s = models.PositiveIntegerField(
        null=True, blank=True, help_text="How long (s) an anomaly must last before an alert opens (default 0)."
    )
    clear_readings = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Readings back inside the band before an alert resolves (default 6).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sensor_type__code", "sensor__key", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(sensor_type__isnull=False, sensor__isnull=True)
                | Q(sensor_type__isnull=True, sensor__isnull=False),
                name="anomalyrule_type_xor_sensor",
                violation_error_message="Give a sensor type or a sensor, not both.",
            ),
            models.UniqueConstraint(
                fields=["sensor_type"], condition=Q(sensor_type__isnull=False), name="anomalyrule_one_per_type"
            ),
            models.UniqueConstraint(
                fields=["sensor"], condition=Q(sensor__isnull=False), name="anomalyrule_one_per_sensor"
            ),
            *(
                models.CheckConstraint(
                    condition=Q(**{f"{field}__isnull": True}) | Q(**{f"{field}__gt": 0}),
                    name=f"anomalyrule_{field}_positive",
                )
                for field in POSITIVE_FIELDS
            ),
            *(
                models.CheckConstraint(
                    condition=Q(**{f"{field}__isnull": True}) | Q(**{f"{field}__gte": 1}),
                    name=f"anomalyrule_{field}_at_least_one",
                )
                for field in AT_LEAST_ONE_FIELDS
            ),
        ]

    def __str__(self) -> str:
        if self.sensor_id is not None:
            return f"{self.sensor.key} (override)"
        return f"{self.sensor_type.code if self.sensor_type_id else '?'}"

    @property
    def scope(self) -> str:
        return "sensor" if self.sensor_id is not None else "sensor_type"


class AnomalyState(models.Model):
    """What the detectors have learned about one sensor, kept between batches: a fixed-layout float64 vector
    (apps/anomaly/detectors.py) stored as bytes, loaded and written set-wise (apps/anomaly/states.py). The
    newest learned reading time is a column of its own, for people and queries."""

    sensor = models.OneToOneField(Sensor, primary_key=True, on_delete=models.CASCADE, related_name="+")
    version = models.PositiveSmallIntegerField()
    state = models.BinaryField()
    last_ts = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"anomaly state of sensor {self.sensor_id}"
