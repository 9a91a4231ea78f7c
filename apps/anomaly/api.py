from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import django_filters
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.roles import Role
from apps.anomaly.detectors import P_DEVIATION_Z
from apps.anomaly.models import AnomalyRule
from apps.anomaly.selectors import (
    MAX_BAND_POINTS,
    BandStatus,
    SensorBand,
    band_point_count,
    band_times,
    default_band_step,
    rule_parameters,
    sensor_band,
)
from apps.core.errors import ApplicationError
from apps.core.fields import FlexibleTimeField, IdOrKeyListField, IntegerQueryField
from apps.core.filters import FilterSet, TextFilter, sensor_filter, sensor_type_filter
from apps.core.query import QueryMixin
from apps.locations.api import SubtreeFilter


def _current(serializer: serializers.ModelSerializer, attrs: dict, field: str):
    if field in attrs:
        return attrs[field]
    return getattr(serializer.instance, field, None) if serializer.instance is not None else None


class EffectiveParametersSerializer(serializers.Serializer):
    sensitivity = serializers.CharField()
    warmup_readings = serializers.IntegerField()
    warmup_s = serializers.FloatField()
    half_life_readings = serializers.FloatField()
    deviation_z = serializers.FloatField()
    rate_factor = serializers.FloatField()
    stuck_factor = serializers.FloatField()
    stuck_after_s = serializers.FloatField(allow_null=True)
    seasonality = serializers.CharField()
    min_readings = serializers.IntegerField()
    min_duration_s = serializers.FloatField()
    clear_readings = serializers.IntegerField()


class AnomalyRuleSerializer(serializers.ModelSerializer):
    scope = serializers.CharField(read_only=True, help_text="sensor_type (a type's rule) or sensor (an override).")
    sensor_type_code = serializers.CharField(
        source="sensor_type.code", read_only=True, default=None, help_text="Sensor type code (a type's rule)."
    )
    # `sensor` is the writable reference of an override, an id, as in threshold mappings.
    sensor_id = serializers.IntegerField(read_only=True, allow_null=True, help_text="Sensor id (an override).")
    sensor_key = serializers.CharField(source="sensor.key", read_only=True, default=None, help_text="Sensor key.")
    effective = serializers.SerializerMethodField(
        help_text="The parameters in force: defaults, then the type's rule, then the override."
    )

    class Meta:
        model = AnomalyRule
        fields = [
            "id",
            "scope",
            "sensor_type",
            "sensor_type_code",
            "sensor",
            "sensor_id",
            "sensor_key",
            "enabled",
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
            "effective",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]
        extra_kwargs = {
            "sensor_type": {"help_text": "Sensor type id (a type's rule)."},
            "sensor": {"help_text": "Sensor id (an override): the writable reference (its key is `sensor_key`)."},
        }
        validators: list = []  # the one-rule-per-type/sensor constraints are checked in validate() to name the field

    @extend_schema_field(EffectiveParametersSerializer)
    def get_effective(self, rule: AnomalyRule) -> dict:
        type_rule = None
        if rule.sensor_id is not None:
            # Prefetched by the viewset: a sensor type has at most one type rule.
            type_rule = next(iter(rule.sensor.sensor_type.anomaly_rules.all()), None)
        return rule_parameters(rule, type_rule)

    def validate(self, attrs):
        sensor_type, sensor = _current(self, attrs, "sensor_type"), _current(self, attrs, "sensor")
        if (sensor_type is None) == (sensor is None):
            message = "Give a sensor type or a sensor, not both." if sensor_type else "Give a sensor type or a sensor."
            raise serializers.ValidationError({"sensor_type": [message], "sensor": [message]})
        clash = (
            AnomalyRule.objects.filter(sensor_type=sensor_type)
            if sensor_type
            else AnomalyRule.objects.filter(sensor=sensor)
        )
        if self.instance is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            if sensor_type:
                raise serializers.ValidationError({"sensor_type": ["This sensor type already has an anomaly rule."]})
            raise serializers.ValidationError({"sensor": ["This sensor already has an anomaly rule override."]})
        return attrs


class AnomalyRuleFilter(FilterSet):
    scope = django_filters.ChoiceFilter(
        choices=[("sensor_type", "sensor_type"), ("sensor", "sensor")],
        method="filter_scope",
        help_text="sensor_type: the types' rules; sensor: the sensors' overrides.",
    )
    sensor_type = sensor_type_filter()
    sensor_type_code = TextFilter(field_name="sensor_type__code", help_text="Sensor type code (as in `sensor_type`).")
    sensor = sensor_filter()
    sensor_key = TextFilter(field_name="sensor__key", help_text="Sensor key (as in `sensor`).")
    location = SubtreeFilter(field="sensor__location")

    class Meta:
        model = AnomalyRule
        fields = ["enabled", "sensitivity", "seasonality"]

    def filter_scope(self, qs, name, value):
        return qs.filter(sensor__isnull=value == "sensor_type") if value else qs


class AnomalyRuleViewSet(viewsets.ModelViewSet):
    queryset = AnomalyRule.objects.select_related("sensor_type", "sensor").prefetch_related(
        "sensor__sensor_type__anomaly_rules"
    )
    serializer_class = AnomalyRuleSerializer
    filterset_class = AnomalyRuleFilter
    search_fields = ["sensor_type__code", "sensor__key"]
    ordering_fields = ["id", "updated_at", "sensor_type", "sensor"]
    write_role = Role.OPERATOR


# --- The expected band -------------------------------------------------------------------------------------------

# Readings live well inside these years; outside them a date is a typo (as for the aggregates).
EARLIEST = datetime(1970, 1, 2, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
DEFAULT_SPAN = timedelta(days=1)
MIN_STEP_S = 60
MAX_STEP_S = 366 * 86400


class BandQuery(serializers.Serializer):
    """One sensor and a time range. Without `start`, a day before `end`; without `end`, a day after `start`, or
    now when both are missing."""

    sensor = IdOrKeyListField(help_text="The sensor: its key or its id (one sensor).")
    start = FlexibleTimeField(help_text="From: ISO 8601 or YYYYMMDD (midnight UTC). Default: a day before `end`.")
    end = FlexibleTimeField(help_text="To: ISO 8601 or YYYYMMDD (midnight UTC). Default: a day after `start`, or now.")
    step = IntegerQueryField(
        min_value=MIN_STEP_S,
        max_value=MAX_STEP_S,
        help_text=f"Seconds between points (from {MIN_STEP_S}). Default an hour, or the shortest whole number of "
        f"hours that keeps the answer within {MAX_BAND_POINTS} points.",
    )

    def validate(self, attrs):
        named = attrs["sensor"]
        if not named:
            raise serializers.ValidationError({"sensor": ["Give the sensor's key or id."]})
        if len(named.names()) > 1:
            raise serializers.ValidationError({"sensor": ["Give one sensor: its key or its id."]})
        for name in ("start", "end"):
            if attrs[name] is not None and not EARLIEST <= attrs[name] < LATEST:
                raw = self.initial_data.get(name)
                raise serializers.ValidationError({name: [f"'{raw}' is outside the years 1970 to 2199."]})
        start, end = attrs["start"], attrs["end"]
        if end is None:
            end = min(start + DEFAULT_SPAN, LATEST) if start else timezone.now()
        if start is None:
            start = max(end - DEFAULT_SPAN, EARLIEST)
        if end <= start:
            raise serializers.ValidationError({"end": ["end must be after start."]})
        start_s, end_s = start.timestamp(), end.timestamp()
        step = attrs["step"]
        if step is None:
            step = default_band_step(start_s, end_s)
        elif band_point_count(start_s, end_s, step) > MAX_BAND_POINTS:
            shortest = math.ceil((end_s - start_s) / (MAX_BAND_POINTS - 2))
            raise serializers.ValidationError(
                {"step": [f"At most {MAX_BAND_POINTS} points: use a step of at least {shortest} s for this range."]}
            )
        return {**attrs, "start": start, "end": end, "step": step}


class BandPointSerializer(serializers.Serializer):
    ts = serializers.DateTimeField(help_text="From this moment until the next point's.")
    expected = serializers.FloatField(allow_null=True, help_text="The baseline's value.")
    low = serializers.FloatField(allow_null=True, help_text="expected - band_z robust standard deviations.")
    high = serializers.FloatField(allow_null=True, help_text="expected + band_z robust standard deviations.")
    seasonal = serializers.BooleanField(help_text="Shaped by the hour-of-day profile (else the flat level).")


class BandAnswerSerializer(serializers.Serializer):
    sensor = serializers.CharField(help_text="Sensor key.")
    sensor_id = serializers.IntegerField()
    status = serializers.ChoiceField(
        choices=[BandStatus.READY, BandStatus.WARMING_UP, BandStatus.NO_RULE],
        help_text="ready: points follow. warming_up: the sensor's state has not learned its warm-up yet. "
        "no_rule: no enabled anomaly rule applies to the sensor. Only `ready` has points.",
    )
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    step_s = serializers.IntegerField()
    learned_readings = serializers.IntegerField(help_text="Readings the sensor's state has learned.")
    learned_from = serializers.DateTimeField(allow_null=True, help_text="Its first learned reading's time.")
    learned_until = serializers.DateTimeField(allow_null=True, help_text="Its newest learned reading's time.")
    warmup_readings = serializers.IntegerField(allow_null=True, help_text="The rule's warm-up (null: no rule).")
    warmup_s = serializers.FloatField(allow_null=True, help_text="The rule's warm-up in reading time.")
    band_z = serializers.FloatField(
        allow_null=True,
        help_text="Half-width of the band in robust standard deviations: the rule's deviation_z scaled by its "
        "sensitivity (null: no rule).",
    )
    points = BandPointSerializer(many=True)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def _number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def band_answer(band: SensorBand, *, start: datetime, end: datetime, step_s: int) -> dict:
    settings = band.settings
    points = [
        {
            "ts": _iso(datetime.fromtimestamp(ts, UTC)),
            "expected": _number(mid),
            "low": _number(low),
            "high": _number(high),
            "seasonal": bool(seasonal),
        }
        for ts, mid, low, high, seasonal in zip(
            band.ts.tolist(),
            band.expected.tolist(),
            band.low.tolist(),
            band.high.tolist(),
            band.seasonal.tolist(),
            strict=True,
        )
    ]
    return {
        "sensor": band.sensor_key,
        "sensor_id": band.sensor_id,
        "status": band.status,
        "start": _iso(start),
        "end": _iso(end),
        "step_s": step_s,
        "learned_readings": band.learned_readings,
        "learned_from": _iso(band.learned_from),
        "learned_until": _iso(band.learned_until),
        "warmup_readings": settings.warmup_readings if settings else None,
        "warmup_s": float(settings.warmup_s) if settings else None,
        "band_z": float(settings.vector()[P_DEVIATION_Z]) if settings else None,
        "points": points,
    }


class AnomalyBandView(QueryMixin, APIView):
    query_serializer_class = BandQuery

    @extend_schema(
        responses={200: BandAnswerSerializer},
        summary="The band a sensor's readings are expected in, by its anomaly model",
        description=(
            "The sensor's current learned state projected over [start, end]: for each point, the band a reading "
            "at that time would be scored against now (the same computation as the anomaly alerts' expected "
            "range). Hour-of-day shaped where the seasonal model is in force, flat elsewhere. It is today's "
            "model over the whole range, not a history of the bands of the past. Points at `start`, at every "
            "multiple of `step` seconds since the epoch in between, and at `end`."
        ),
        tags=["anomaly"],
    )
    def get(self, request):
        query = self.query
        start, end, step = query["start"], query["end"], query["step"]
        named = query["sensor"]
        times = band_times(start.timestamp(), end.timestamp(), step)
        if named.ids:
            band = sensor_band(sensor_id=named.ids[0], ts=times)
        else:
            band = sensor_band(sensor_key=named.keys[0], ts=times)
        if band is None:
            message = f"Unknown sensor: {named.names()[0]}."
            raise ApplicationError(message, errors={"sensor": [message]})
        return Response(band_answer(band, start=start, end=end, step_s=step))
