from __future__ import annotations

import django_filters
from rest_framework import serializers, viewsets

from apps.accounts.roles import Role
from apps.locations.api import SubtreeFilter
from apps.thresholds.models import SensorThresholdMapping, Threshold
from apps.thresholds.selectors import OVERRIDABLE_FIELDS, merge_bands
from apps.thresholds.validation import band_order_errors


def _current(serializer: serializers.ModelSerializer, attrs: dict, field: str):
    if field in attrs:
        return attrs[field]
    return getattr(serializer.instance, field, None) if serializer.instance is not None else None


class ThresholdSerializer(serializers.ModelSerializer):
    sensor_type_code = serializers.CharField(source="sensor_type.code", read_only=True)
    hysteresis = serializers.FloatField(min_value=0, required=False)

    class Meta:
        model = Threshold
        fields = [
            "id",
            "sensor_type",
            "sensor_type_code",
            "name",
            "warning_low",
            "warning_high",
            "critical_low",
            "critical_high",
            "hysteresis",
            "min_duration_s",
            "enabled",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]
        validators: list = []  # (sensor_type, name) uniqueness is checked in validate() to name the field

    def validate(self, attrs):
        sensor_type = _current(self, attrs, "sensor_type")
        name = _current(self, attrs, "name") or Threshold._meta.get_field("name").get_default()
        clash = Threshold.objects.filter(sensor_type=sensor_type, name=name)
        if self.instance is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise serializers.ValidationError({"name": [f"This sensor type already has a threshold named {name!r}."]})
        bands = {field: _current(self, attrs, field) for field in OVERRIDABLE_FIELDS}
        errors = band_order_errors(bands)
        if errors:
            raise serializers.ValidationError(errors)
        if self.instance is not None:
            self._validate_against_mappings(sensor_type, bands)
        return attrs

    def _validate_against_mappings(self, sensor_type, bands: dict) -> None:
        """A mapping was checked against the bands it inherited when it was written; changing those bands (or
        the type) must not leave a sensor with overlapping bands or a mapping to a threshold of another type."""
        mappings = list(self.instance.mappings.select_related("sensor").order_by("sensor__key"))
        if mappings and sensor_type.pk != self.instance.sensor_type_id:
            raise serializers.ValidationError(
                {"sensor_type": ["Sensors are mapped to this threshold; delete their mappings before moving it."]}
            )
        for mapping in mappings:
            overrides = {field: getattr(mapping, field) for field in OVERRIDABLE_FIELDS}
            errors = band_order_errors(merge_bands(bands, overrides))
            if errors:
                raise serializers.ValidationError(
                    {
                        field: [f"With the override for sensor {mapping.sensor.key}: {message}" for message in messages]
                        for field, messages in errors.items()
                    }
                )


class ThresholdFilter(django_filters.FilterSet):
    sensor_type_code = django_filters.CharFilter(field_name="sensor_type__code")

    class Meta:
        model = Threshold
        fields = ["sensor_type", "enabled", "name"]


class ThresholdViewSet(viewsets.ModelViewSet):
    queryset = Threshold.objects.select_related("sensor_type")
    serializer_class = ThresholdSerializer
    filterset_class = ThresholdFilter
    search_fields = ["name", "sensor_type__code"]
    ordering_fields = ["id", "name", "sensor_type", "updated_at"]
    write_role = Role.OPERATOR


class ThresholdMappingSerializer(serializers.ModelSerializer):
    sensor_key = serializers.CharField(source="sensor.key", read_only=True)
    hysteresis = serializers.FloatField(min_value=0, required=False, allow_null=True)
    effective = serializers.SerializerMethodField(help_text="The bands in force for this sensor after the override.")

    class Meta:
        model = SensorThresholdMapping
        fields = [
            "id",
            "sensor",
            "sensor_key",
            "threshold",
            "warning_low",
            "warning_high",
            "critical_low",
            "critical_high",
            "hysteresis",
            "min_duration_s",
            "enabled",
            "effective",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]
        validators: list = []  # (sensor, threshold) uniqueness is checked in validate() to name the field

    def get_effective(self, mapping: SensorThresholdMapping) -> dict:
        threshold = {field: getattr(mapping.threshold, field) for field in OVERRIDABLE_FIELDS}
        return merge_bands(threshold, {field: getattr(mapping, field) for field in OVERRIDABLE_FIELDS})

    def validate(self, attrs):
        sensor = _current(self, attrs, "sensor")
        threshold = _current(self, attrs, "threshold")
        if sensor.sensor_type_id != threshold.sensor_type_id:
            raise serializers.ValidationError(
                {"threshold": [f"Threshold belongs to another sensor type than sensor {sensor.key}."]}
            )
        clash = SensorThresholdMapping.objects.filter(sensor=sensor, threshold=threshold)
        if self.instance is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise serializers.ValidationError({"threshold": ["This sensor already has a mapping for this threshold."]})
        overrides = {field: _current(self, attrs, field) for field in OVERRIDABLE_FIELDS}
        errors = band_order_errors(overrides) or band_order_errors(
            merge_bands({field: getattr(threshold, field) for field in OVERRIDABLE_FIELDS}, overrides)
        )
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class ThresholdMappingFilter(django_filters.FilterSet):
    location = SubtreeFilter(field="sensor__location")
    sensor_key = django_filters.CharFilter(field_name="sensor__key")

    class Meta:
        model = SensorThresholdMapping
        fields = ["sensor", "threshold", "enabled"]


class ThresholdMappingViewSet(viewsets.ModelViewSet):
    queryset = SensorThresholdMapping.objects.select_related("sensor", "threshold")
    serializer_class = ThresholdMappingSerializer
    filterset_class = ThresholdMappingFilter
    search_fields = ["sensor__key"]
    ordering_fields = ["id", "updated_at"]
    write_role = Role.OPERATOR
