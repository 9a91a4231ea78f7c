from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers, viewsets

from apps.accounts.roles import Role
from apps.anomaly.models import AnomalyRule
from apps.anomaly.selectors import rule_parameters
from apps.core.filters import FilterSet, TextFilter, sensor_filter, sensor_type_filter
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
