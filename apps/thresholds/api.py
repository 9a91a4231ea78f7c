from __future__ import annotations

from rest_framework import serializers, viewsets

from apps.accounts.roles import Role
from apps.core.filters import FilterSet, TextFilter, sensor_filter, sensor_type_filter
from apps.locations.api import SubtreeFilter
from apps.thresholds.models import SensorThresholdMapping, Threshold
from apps.thresholds.selectors import OVERRIDABLE_FIELDS, merge_bands
from apps.thresholds.services import mapping_create, mapping_update, threshold_create, threshold_update


class ThresholdSerializer(serializers.ModelSerializer):
    sensor_type_code = serializers.CharField(source="sensor_type.code", read_only=True, help_text="Sensor type code.")

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
        extra_kwargs = {"sensor_type": {"help_text": "Sensor type id."}}
        validators: list = []  # (sensor_type, name) uniqueness: threshold_create/update check it, naming the field


class ThresholdFilter(FilterSet):
    sensor_type = sensor_type_filter()
    sensor_type_code = TextFilter(field_name="sensor_type__code", help_text="Sensor type code (as in `sensor_type`).")

    class Meta:
        model = Threshold
        fields = ["enabled", "name"]


class ThresholdViewSet(viewsets.ModelViewSet):
    queryset = Threshold.objects.select_related("sensor_type")
    serializer_class = ThresholdSerializer
    filterset_class = ThresholdFilter
    search_fields = ["name", "sensor_type__code"]
    ordering_fields = ["id", "name", "sensor_type", "updated_at"]
    write_role = Role.OPERATOR

    def perform_create(self, serializer):
        serializer.instance = threshold_create(**serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = threshold_update(threshold=serializer.instance, data=serializer.validated_data)


class ThresholdMappingSerializer(serializers.ModelSerializer):
    # `sensor` is the writable reference, an id, as clients have written and read it from the start.
    sensor_id = serializers.IntegerField(read_only=True, help_text="Sensor id (the same as `sensor`).")
    sensor_key = serializers.CharField(source="sensor.key", read_only=True, help_text="Sensor key.")
    effective = serializers.SerializerMethodField(help_text="The bands in force for this sensor after the override.")

    class Meta:
        model = SensorThresholdMapping
        fields = [
            "id",
            "sensor",
            "sensor_id",
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
        extra_kwargs = {
            "sensor": {"help_text": "Sensor id: the writable reference (its key is `sensor_key`)."},
            "threshold": {"help_text": "Threshold id."},
        }
        validators: list = []  # (sensor, threshold) uniqueness: mapping_create/update check it, naming the field

    def get_effective(self, mapping: SensorThresholdMapping) -> dict:
        threshold = {field: getattr(mapping.threshold, field) for field in OVERRIDABLE_FIELDS}
        return merge_bands(threshold, {field: getattr(mapping, field) for field in OVERRIDABLE_FIELDS})


class ThresholdMappingFilter(FilterSet):
    location = SubtreeFilter(field="sensor__location")
    sensor = sensor_filter()
    sensor_key = TextFilter(field_name="sensor__key", help_text="Sensor key (as in `sensor`).")

    class Meta:
        model = SensorThresholdMapping
        fields = ["threshold", "enabled"]


class ThresholdMappingViewSet(viewsets.ModelViewSet):
    queryset = SensorThresholdMapping.objects.select_related("sensor", "threshold")
    serializer_class = ThresholdMappingSerializer
    filterset_class = ThresholdMappingFilter
    search_fields = ["sensor__key"]
    ordering_fields = ["id", "updated_at"]
    write_role = Role.OPERATOR

    def perform_create(self, serializer):
        serializer.instance = mapping_create(**serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = mapping_update(mapping=serializer.instance, data=serializer.validated_data)
