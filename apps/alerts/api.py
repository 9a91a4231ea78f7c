from __future__ import annotations

import django_filters
from django.db.models import Prefetch, Q
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.accounts.roles import Role
from apps.alerts.models import Alert, AlertEvent, Severity
from apps.alerts.selectors import alerts_queryset
from apps.alerts.services import alert_acknowledge, alert_resolve
from apps.core.filters import (
    FilterSet,
    IdListFilter,
    TextFilter,
    TimeFilter,
    device_filter,
    sensor_filter,
    sensor_type_filter,
)
from apps.core.schema import ErrorSerializer
from apps.locations.api import SubtreeFilter


class UsernameField(serializers.CharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("read_only", True)
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def get_attribute(self, instance):
        user = super().get_attribute(instance)
        return user.get_username() if user is not None else None

    def to_representation(self, value):
        return value


class AlertEventSerializer(serializers.ModelSerializer):
    user = UsernameField(help_text="Who acted (acknowledge, manual resolve); null for the system.")

    class Meta:
        model = AlertEvent
        fields = [
            "id",
            "kind",
            "at",
            "severity",
            "value",
            "expected_low",
            "expected_high",
            "score",
            "user",
            "comment",
            "created_at",
        ]
        read_only_fields = fields


class AlertSerializer(serializers.ModelSerializer):
    sensor = serializers.CharField(
        source="sensor.key",
        read_only=True,
        allow_null=True,
        default=None,
        help_text="Sensor key; null for a device-offline alert.",
    )
    sensor_id = serializers.IntegerField(read_only=True, allow_null=True, help_text="Sensor id.")
    threshold = serializers.IntegerField(source="threshold_id", read_only=True, allow_null=True)
    device = serializers.IntegerField(source="device_id", read_only=True, help_text="Device id.")
    device_id = serializers.CharField(source="device.device_id", read_only=True, help_text="Device external id.")
    sensor_type = serializers.IntegerField(
        source="sensor_type_id", read_only=True, allow_null=True, help_text="Sensor type id."
    )
    sensor_type_code = serializers.CharField(
        source="sensor_type.code", read_only=True, allow_null=True, default=None, help_text="Sensor type code."
    )
    unit = serializers.CharField(source="sensor_type.unit", read_only=True, allow_null=True, default=None)
    location = serializers.IntegerField(source="location_id", read_only=True, allow_null=True, help_text="Location id.")
    location_path = serializers.CharField(source="location.full_path", read_only=True, allow_null=True, default=None)
    acknowledged_by = UsernameField()
    resolved_by = UsernameField()

    class Meta:
        model = Alert
        fields = [
            "id",
            "kind",
            "sensor",
            "sensor_id",
            "threshold",
            "device",
            "device_id",
            "sensor_type",
            "sensor_type_code",
            "unit",
            "location",
            "location_path",
            "severity",
            "max_severity",
            "state",
            "breach_started_at",
            "opened_at",
            "value",
            "value_at",
            "first_value",
            "peak_value",
            "peak_at",
            "expected_low",
            "expected_high",
            "score",
            "peak_score",
            "acknowledged_at",
            "acknowledged_by",
            "acknowledge_comment",
            "resolved_at",
            "resolved_by",
            "resolution",
            "resolution_reason",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class AlertDetailSerializer(AlertSerializer):
    events = AlertEventSerializer(many=True, read_only=True, help_text="The alert's history, oldest first.")

    class Meta(AlertSerializer.Meta):
        fields = AlertSerializer.Meta.fields + ["events"]
        read_only_fields = fields


class AcknowledgeSerializer(serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)


class ResolveSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=5000, help_text="Why the alert is closed by hand.")


class AlertFilter(FilterSet):
    state = django_filters.MultipleChoiceFilter(choices=Alert.State.choices, help_text="Repeat for several.")
    severity = django_filters.MultipleChoiceFilter(choices=Severity.choices, help_text="Repeat for several.")
    kind = django_filters.ChoiceFilter(choices=Alert.Kind.choices)
    active = django_filters.BooleanFilter(method="filter_active", help_text="true: open or acknowledged.")
    sensor = sensor_filter()
    sensor_id = IdListFilter(field_name="sensor_id", help_text="Sensor ids, comma-separated (as in `sensor`).")
    device = device_filter()
    device_id = TextFilter(field_name="device__device_id", help_text="Device external id (as in `device`).")
    sensor_type = sensor_type_filter()
    threshold = IdListFilter(field_name="threshold_id", help_text="Threshold ids, comma-separated.")
    location = SubtreeFilter(field="location")
    opened_after = TimeFilter(field_name="opened_at", lookup_expr="gte")
    opened_before = TimeFilter(field_name="opened_at", lookup_expr="lt")
    active_at = TimeFilter(
        field_name="opened_at",
        method="filter_active_at",
        help_text="Alerts open at that moment (opened before, not resolved before).",
    )

    class Meta:
        model = Alert
        fields: list[str] = []

    def filter_active(self, queryset, name, value):
        if value is None:
            return queryset
        unresolved = ~Q(state=Alert.State.RESOLVED)
        return queryset.filter(unresolved) if value else queryset.exclude(unresolved)

    def filter_active_at(self, queryset, name, value):
        if value is None:
            return queryset
        return queryset.filter(Q(opened_at__lte=value) & (Q(resolved_at__isnull=True) | Q(resolved_at__gt=value)))


_CONFLICT = OpenApiResponse(
    ErrorSerializer, description="The alert's state does not allow this (e.g. already resolved)."
)


@extend_schema_view(
    list=extend_schema(summary="List alerts (newest first)", tags=["alerts"]),
    retrieve=extend_schema(summary="One alert with its event history", tags=["alerts"]),
)
class AlertViewSet(viewsets.ReadOnlyModelViewSet):
    filterset_class = AlertFilter
    search_fields = ["sensor__key", "device__device_id", "location__full_path"]
    ordering_fields = ["id", "opened_at", "resolved_at", "updated_at", "severity", "state", "peak_value"]
    ordering = ["-opened_at", "-id"]
    action_roles = {"acknowledge": Role.OPERATOR, "resolve": Role.OPERATOR}

    def get_queryset(self):
        queryset = alerts_queryset()
        if self.action != "list":
            queryset = queryset.prefetch_related(
                Prefetch("events", queryset=AlertEvent.objects.select_related("user").order_by("at", "id"))
            )
        return queryset

    def get_serializer_class(self):
        return AlertSerializer if self.action == "list" else AlertDetailSerializer

    def _detail(self, alert: Alert) -> Response:
        return Response(AlertDetailSerializer(self.get_queryset().get(pk=alert.pk)).data)

    @extend_schema(
        request=AcknowledgeSerializer,
        responses={200: AlertDetailSerializer, 409: _CONFLICT},
        summary="Acknowledge an alert (operator): records who, when and a comment",
        tags=["alerts"],
    )
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        alert = self.get_object()
        serializer = AcknowledgeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        alert = alert_acknowledge(alert_id=alert.pk, user=request.user, comment=serializer.validated_data["comment"])
        return self._detail(alert)

    @extend_schema(
        request=ResolveSerializer,
        responses={200: AlertDetailSerializer, 409: _CONFLICT},
        summary="Resolve an alert by hand (operator), with a reason",
        tags=["alerts"],
    )
    @action(detail=True, methods=["post"])
    def resolve(self, request, pk=None):
        alert = self.get_object()
        serializer = ResolveSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        alert = alert_resolve(alert_id=alert.pk, user=request.user, reason=serializer.validated_data["reason"])
        return self._detail(alert)
