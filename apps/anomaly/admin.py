from __future__ import annotations

from datetime import UTC, datetime

from django.contrib import admin

from apps.anomaly import detectors
from apps.anomaly.models import PARAMETER_FIELDS, AnomalyRule, AnomalyState
from apps.anomaly.states import decode_state


@admin.register(AnomalyRule)
class AnomalyRuleAdmin(admin.ModelAdmin):
    list_display = ["__str__", "sensor_type", "sensor", "enabled", "sensitivity", "seasonality", "updated_at"]
    list_filter = ["enabled", "sensitivity", "seasonality", "sensor_type"]
    list_select_related = ["sensor_type", "sensor"]
    search_fields = ["sensor_type__code", "sensor__key"]
    autocomplete_fields = ["sensor_type", "sensor"]
    fieldsets = [
        (None, {"fields": ["sensor_type", "sensor", "enabled"], "description": "A sensor type, or one sensor."}),
        ("Detectors (empty: the default, or for a sensor the type's value)", {"fields": list(PARAMETER_FIELDS)}),
    ]


def _time(epoch: float) -> str:
    return "-" if epoch != epoch else datetime.fromtimestamp(epoch, UTC).isoformat()


@admin.register(AnomalyState)
class AnomalyStateAdmin(admin.ModelAdmin):
    """What the detectors learned per sensor: for staff wondering why an anomaly alert did or did not open."""

    list_display = ["sensor", "last_ts", "readings_learned", "baseline", "episode", "updated_at"]
    list_select_related = ["sensor"]
    search_fields = ["sensor__key"]
    fields = ["sensor", "version", "last_ts", "updated_at", "learned"]
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @staticmethod
    def _vector(obj: AnomalyState):
        return decode_state(obj.state, obj.version)

    @admin.display(description="readings learned")
    def readings_learned(self, obj: AnomalyState) -> int:
        return int(self._vector(obj)[detectors.N])

    @admin.display(description="baseline (level ± spread)")
    def baseline(self, obj: AnomalyState) -> str:
        vector = self._vector(obj)
        return f"{vector[detectors.FLAT_LEVEL]:.4g} ± {vector[detectors.FLAT_SPREAD] * detectors.MAD_TO_SIGMA:.3g}"

    @admin.display(description="episode")
    def episode(self, obj: AnomalyState) -> str:
        vector = self._vector(obj)
        if vector[detectors.OPEN]:
            return f"open since {_time(vector[detectors.OPENED_AT])}"
        if vector[detectors.PENDING_SINCE] == vector[detectors.PENDING_SINCE]:
            return f"pending since {_time(vector[detectors.PENDING_SINCE])}"
        return "none"

    @admin.display(description="learned state")
    def learned(self, obj: AnomalyState) -> str:
        vector = self._vector(obj)
        names = [
            "N", "FIRST_TS", "LAST_TS", "LAST_VALUE", "INTERVAL", "FLAT_LEVEL", "FLAT_SPREAD", "LEVEL",
            "SEASON_SPREAD", "STEP_PEAK", "STEP_MEAN", "RUN_SINCE", "RUN_VALUE", "RUN_LONGEST", "PENDING_SINCE",
            "PENDING_COUNT", "OPEN", "OPENED_AT", "CALM_COUNT", "PEAK_SCORE", "PEAK_AT", "DETECTORS_SEEN",
        ]  # fmt: skip
        lines = [f"{name.lower()}: {vector[getattr(detectors, name)]:.6g}" for name in names]
        profile = vector[detectors.PROFILE : detectors.PROFILE + detectors.SEASON_SLOTS]
        lines.append("hour-of-day profile: " + ", ".join(f"{value:.3g}" for value in profile))
        return "\n".join(lines)
