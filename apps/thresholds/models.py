from __future__ import annotations

from django.db import models
from django.db.models import F, Q

from apps.devices.models import Sensor, SensorType

BAND_FIELDS = ("critical_low", "warning_low", "warning_high", "critical_high")
# (lower field, upper field, must be strictly below): checked by the database constraints and, with messages
# naming the field, by apps/thresholds/validation.py.
BAND_ORDER = (
    ("critical_low", "warning_low", False),
    ("warning_low", "warning_high", True),
    ("warning_high", "critical_high", False),
    ("critical_low", "critical_high", True),
    ("critical_low", "warning_high", True),
    ("warning_low", "critical_high", True),
)


def _ordered(lower: str, upper: str, *, strict: bool) -> Q:
    bound = Q(**{f"{lower}__lt" if strict else f"{lower}__lte": F(upper)})
    return Q(**{f"{lower}__isnull": True}) | Q(**{f"{upper}__isnull": True}) | bound


def band_order_constraints(prefix: str) -> list[models.CheckConstraint]:
    """critical_low <= warning_low < warning_high <= critical_high, wherever both ends are set."""
    return [
        models.CheckConstraint(
            condition=_ordered(low, high, strict=strict), name=f"{prefix}_{low}_{'lt' if strict else 'le'}_{high}"
        )
        for low, high, strict in BAND_ORDER
    ]


class Threshold(models.Model):
    """Default alert bands for every sensor of a type. Any band end may be empty (no limit that side)."""

    sensor_type = models.ForeignKey(SensorType, on_delete=models.CASCADE, related_name="thresholds")
    name = models.CharField(max_length=100, default="default")
    warning_low = models.FloatField(null=True, blank=True)
    warning_high = models.FloatField(null=True, blank=True)
    critical_low = models.FloatField(null=True, blank=True)
    critical_high = models.FloatField(null=True, blank=True)
    hysteresis = models.FloatField(default=0, help_text="A breach clears only this far back inside the band.")
    min_duration_s = models.PositiveIntegerField(default=0, help_text="A breach must last this long to open an alert.")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sensor_type__code", "name"]
        constraints = [
            models.UniqueConstraint(fields=["sensor_type", "name"], name="threshold_unique_name_per_type"),
            models.CheckConstraint(condition=Q(hysteresis__gte=0), name="threshold_hysteresis_not_negative"),
            *band_order_constraints("threshold"),
        ]

    def __str__(self) -> str:
        return f"{self.sensor_type.code}:{self.name}"


class SensorThresholdMapping(models.Model):
    """Per-sensor override of one threshold: set band fields replace the type's, empty ones inherit;
    enabled=False switches the threshold off for this sensor."""

    sensor = models.ForeignKey(Sensor, on_delete=models.CASCADE, related_name="threshold_mappings")
    threshold = models.ForeignKey(Threshold, on_delete=models.CASCADE, related_name="mappings")
    warning_low = models.FloatField(null=True, blank=True)
    warning_high = models.FloatField(null=True, blank=True)
    critical_low = models.FloatField(null=True, blank=True)
    critical_high = models.FloatField(null=True, blank=True)
    hysteresis = models.FloatField(null=True, blank=True)
    min_duration_s = models.PositiveIntegerField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sensor__key", "threshold__name"]
        constraints = [
            models.UniqueConstraint(fields=["sensor", "threshold"], name="mapping_unique_sensor_threshold"),
            models.CheckConstraint(
                condition=Q(hysteresis__isnull=True) | Q(hysteresis__gte=0), name="mapping_hysteresis_not_negative"
            ),
            *band_order_constraints("mapping"),
        ]

    def __str__(self) -> str:
        return f"{self.sensor.key} → {self.threshold}"
