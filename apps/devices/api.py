from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.accounts.permissions import request_device
from apps.accounts.roles import Role
from apps.core.errors import ApplicationError
from apps.core.filters import FilterSet, TextFilter, device_filter, sensor_type_filter
from apps.core.schema import ErrorSerializer
from apps.devices.connectivity import device_record_heartbeat
from apps.devices.models import Device, Sensor, SensorType
from apps.devices.services import device_create, device_rotate_key, sensor_create
from apps.locations.api import SubtreeFilter
from apps.locations.models import Location


def _contains_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_contains_nul(key) or _contains_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_contains_nul(item) for item in value)
    return False


class SensorTypeSerializer(serializers.ModelSerializer):
    class Meta:
        model = SensorType
        fields = ["id", "code", "name", "unit", "description", "plausible_min", "plausible_max", "aliases"]

    def validate_aliases(self, value):
        if not isinstance(value, list) or not all(isinstance(alias, str) and 0 < len(alias) <= 100 for alias in value):
            raise serializers.ValidationError("Must be a list of names (1 to 100 characters each).")
        return value

    def validate(self, attrs):
        low = attrs.get("plausible_min", getattr(self.instance, "plausible_min", None))
        high = attrs.get("plausible_max", getattr(self.instance, "plausible_max", None))
        if low is not None and high is not None and low >= high:
            raise serializers.ValidationError({"plausible_max": ["Must be greater than plausible_min."]})
        return attrs


class SensorTypeViewSet(viewsets.ModelViewSet):
    queryset = SensorType.objects.all()
    serializer_class = SensorTypeSerializer
    filterset_fields = ["code", "unit"]
    search_fields = ["code", "name"]
    ordering_fields = ["id", "code", "name"]


class DeviceSerializer(serializers.ModelSerializer):
    location = serializers.PrimaryKeyRelatedField(queryset=Location.objects.all(), allow_null=True, required=False)
    # No default: DRF skips a default in partial updates, which would drop the field from PATCH answers.
    location_path = serializers.CharField(source="location.full_path", read_only=True, allow_null=True)
    ingest_key_prefix = serializers.CharField(read_only=True, help_text="First characters of the current key.")

    class Meta:
        model = Device
        fields = [
            "id",
            "device_id",
            "name",
            "manufacturer",
            "model",
            "location",
            "location_path",
            "status",
            "connection_status",
            "last_seen",
            "fw_version",
            "metadata",
            "payload_adapter",
            "offline_after_s",
            "ingest_key_prefix",
            "ingest_key_rotated_at",
            "last_seq",
            "seq_gaps",
            "offline_since",
            "ota_status",
            "ota_updated_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "connection_status",
            "last_seen",
            "ingest_key_rotated_at",
            "last_seq",
            "seq_gaps",
            "offline_since",
            "ota_status",
            "ota_updated_at",
            "created_at",
            "updated_at",
        ]

    def validate_metadata(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be a JSON object.")
        if _contains_nul(value):
            # PostgreSQL's jsonb cannot store U+0000; left to the database it is a 500.
            raise serializers.ValidationError("Strings may not contain the NUL character (\\u0000).")
        return value


class DeviceWithKeySerializer(DeviceSerializer):
    ingest_key = serializers.CharField(read_only=True, help_text="Shown only in this response; store it now.")

    class Meta(DeviceSerializer.Meta):
        fields = DeviceSerializer.Meta.fields + ["ingest_key"]


class HeartbeatSerializer(serializers.Serializer):
    fw_version = serializers.CharField(max_length=64, required=False, allow_blank=True)


class DeviceFilter(FilterSet):
    location = SubtreeFilter(field="location")
    has_sensor_type = sensor_type_filter("sensors__sensor_type", distinct=True)

    class Meta:
        model = Device
        fields = ["status", "connection_status", "manufacturer", "model", "fw_version"]


class DeviceViewSet(viewsets.ModelViewSet):
    queryset = Device.objects.select_related("location")
    serializer_class = DeviceSerializer
    filterset_class = DeviceFilter
    search_fields = ["device_id", "name", "manufacturer", "model"]
    ordering_fields = ["id", "device_id", "name", "last_seen", "status", "connection_status", "created_at"]
    device_actions = ("heartbeat",)
    ingest_actions = ("heartbeat",)
    action_roles = {"heartbeat": Role.OPERATOR}

    @extend_schema(responses={201: DeviceWithKeySerializer})
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        device, key = device_create(**serializer.validated_data)
        device.ingest_key = key
        return Response(DeviceWithKeySerializer(device).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: DeviceWithKeySerializer}, summary="Issue a new ingest key")
    @action(detail=True, methods=["post"], url_path="rotate-key")
    def rotate_key(self, request, pk=None):
        device = self.get_object()
        device.ingest_key = device_rotate_key(device=device)
        return Response(DeviceWithKeySerializer(device).data)

    @extend_schema(
        request=HeartbeatSerializer,
        responses={
            200: DeviceSerializer,
            403: OpenApiResponse(ErrorSerializer, description="A device key for another device, or a viewer."),
        },
        summary="Record a heartbeat (device key of this device, the ingest role, or an operator)",
    )
    @action(detail=True, methods=["post"])
    def heartbeat(self, request, pk=None):
        device = self.get_object()
        caller = request_device(request)
        if caller is not None and caller.pk != device.pk:
            raise ApplicationError("A device key may only send heartbeats for its own device.", status_code=403)
        serializer = HeartbeatSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        device = device_record_heartbeat(device=device, fw_version=serializer.validated_data.get("fw_version"))
        return Response(DeviceSerializer(device).data)


class SensorSerializer(serializers.ModelSerializer):
    key = serializers.CharField(
        max_length=300, required=False, help_text="Defaults to device_id/type_code[/channel]; fixed at creation."
    )
    device = serializers.PrimaryKeyRelatedField(queryset=Device.objects.all(), help_text="Device id.")
    device_id = serializers.CharField(source="device.device_id", read_only=True, help_text="Device external id.")
    device_external_id = serializers.CharField(
        source="device.device_id", read_only=True, help_text="Device external id (the same as `device_id`)."
    )
    sensor_type = serializers.PrimaryKeyRelatedField(queryset=SensorType.objects.all(), help_text="Sensor type id.")
    sensor_type_code = serializers.CharField(source="sensor_type.code", read_only=True, help_text="Sensor type code.")
    location = serializers.PrimaryKeyRelatedField(
        queryset=Location.objects.all(), allow_null=True, required=False, help_text="Location id."
    )
    unit = serializers.CharField(source="sensor_type.unit", read_only=True)

    class Meta:
        model = Sensor
        fields = [
            "id",
            "key",
            "device",
            "device_id",
            "device_external_id",
            "sensor_type",
            "sensor_type_code",
            "unit",
            "channel",
            "name",
            "location",
            "created_at",
        ]
        read_only_fields = ["created_at"]
        validators: list = []  # uniqueness is checked in validate() so the error names a field

    # What a sensor is (and the key payloads name it by) is fixed at creation: renaming it would silently
    # turn every device payload for it into "unknown sensor". Make a new sensor instead.
    IDENTITY_FIELDS = ("key", "device", "sensor_type", "channel")

    def validate(self, attrs):
        if self.instance is not None:
            changed = {
                field: ["Fixed at creation; create a new sensor instead."]
                for field in self.IDENTITY_FIELDS
                if field in attrs and attrs[field] != getattr(self.instance, field)
            }
            if changed:
                raise serializers.ValidationError(changed)
        device = attrs.get("device", getattr(self.instance, "device", None))
        sensor_type = attrs.get("sensor_type", getattr(self.instance, "sensor_type", None))
        channel = attrs.get("channel", getattr(self.instance, "channel", ""))
        clash = Sensor.objects.filter(device=device, sensor_type=sensor_type, channel=channel)
        if self.instance is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise serializers.ValidationError(
                {"channel": ["This device already has a sensor of this type and channel."]}
            )
        if "key" in attrs:
            taken = Sensor.objects.filter(key=attrs["key"])
            if self.instance is not None:
                taken = taken.exclude(pk=self.instance.pk)
            if taken.exists():
                raise serializers.ValidationError({"key": [f"'{attrs['key']}' is taken."]})
        return attrs


class SensorFilter(FilterSet):
    location = SubtreeFilter(field="location")
    device = device_filter()
    device_external_id = TextFilter(field_name="device__device_id", help_text="Device external id (as in `device`).")
    sensor_type = sensor_type_filter()
    sensor_type_code = TextFilter(field_name="sensor_type__code", help_text="Sensor type code (as in `sensor_type`).")

    class Meta:
        model = Sensor
        fields = ["channel", "key"]


class SensorViewSet(viewsets.ModelViewSet):
    queryset = Sensor.objects.select_related("device", "sensor_type")
    serializer_class = SensorSerializer
    filterset_class = SensorFilter
    search_fields = ["key", "name", "device__device_id"]
    ordering_fields = ["id", "key", "created_at"]

    def perform_create(self, serializer):
        serializer.instance = sensor_create(**serializer.validated_data)
