from __future__ import annotations

import re

import django_filters
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import EmailValidator, URLValidator
from django.db.models import Q
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.accounts.roles import Role
from apps.alerts.api import UsernameField
from apps.alerts.models import Severity
from apps.core import egress
from apps.core.filters import FilterSet, TimeFilter, device_filter, sensor_type_filter
from apps.core.schema import ErrorSerializer
from apps.devices.models import Device, SensorType
from apps.locations.api import SubtreeFilter
from apps.locations.models import Location
from apps.notifications.models import Channel, MaintenanceWindow, Notification, Subscription, validate_time_zone
from apps.notifications.services import (
    maintenance_window_save,
    notification_retry,
    subscription_rotate_secret,
    subscription_save,
)

MAX_CHANNELS = 20
_PHONE = re.compile(r"^\+[1-9]\d{6,14}$")
_validate_email = EmailValidator()
_validate_url = URLValidator(schemes=["http", "https"])


class ChannelSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=Channel.choices)
    target = serializers.CharField(
        max_length=1000,
        allow_blank=True,
        required=False,
        default="",
        help_text="email: an address (empty: the subscription user's); webhook: an http(s) URL of a public "
        "address (or one in WEBHOOK_ALLOWED_NETWORKS), without credentials; "
        "sms: a phone number in E.164 (+491701234567); push: a device token or topic.",
    )

    def validate(self, attrs):
        channel, target = attrs["type"], attrs.get("target", "").strip()
        attrs["target"] = target
        if channel == Channel.EMAIL and target:
            try:
                _validate_email(target)
            except DjangoValidationError:
                raise serializers.ValidationError({"target": ["Enter a valid email address."]}) from None
        elif channel == Channel.WEBHOOK:
            try:
                _validate_url(target)
            except DjangoValidationError:
                raise serializers.ValidationError({"target": ["Enter a valid http(s) URL."]}) from None
            try:
                # Told now rather than at the first alert; every delivery checks the address again.
                egress.check_url(target, timeout=settings.NOTIFY_WEBHOOK_TIMEOUT_S)
            except egress.Refused as exc:
                raise serializers.ValidationError({"target": [f"Not allowed: {exc}."]}) from None
        elif channel == Channel.SMS and not _PHONE.match(target):
            raise serializers.ValidationError({"target": ["Enter a phone number in E.164 form, e.g. +491701234567."]})
        elif channel == Channel.PUSH and (not target or len(target) > 512 or any(c.isspace() for c in target)):
            raise serializers.ValidationError({"target": ["Enter a device token or topic (no spaces, at most 512)."]})
        return attrs


def _flat_channel_errors(errors: dict) -> dict:
    """A channel's errors named by its place, as ingest names a reading's: `channels[0].target`."""
    per_channel = errors.get("channels")
    # DRF gives a list's item errors as {index: errors} (only the bad items); the channels' own errors
    # ("Give at least one channel.") as a list of messages.
    if not isinstance(per_channel, dict):
        return errors
    flat = {name: messages for name, messages in errors.items() if name != "channels"}
    for index, item in per_channel.items():
        for name, messages in item.items():
            flat[f"channels[{index}].{name}"] = messages
    return flat


class SubscriptionSerializer(serializers.ModelSerializer):
    user = serializers.PrimaryKeyRelatedField(
        queryset=get_user_model().objects.all(), allow_null=True, required=False, help_text="User id, or null."
    )
    location = serializers.PrimaryKeyRelatedField(
        queryset=Location.objects.all(), allow_null=True, required=False, help_text="Location id: its whole subtree."
    )
    sensor_type = serializers.PrimaryKeyRelatedField(
        queryset=SensorType.objects.all(), allow_null=True, required=False, help_text="Sensor type id, or null."
    )
    sensor_type_code = serializers.CharField(
        source="sensor_type.code", read_only=True, allow_null=True, default=None, help_text="Sensor type code."
    )
    channels = ChannelSerializer(many=True, help_text='[{"type": "email" | "webhook" | "sms" | "push", "target": ...}]')
    time_zone = serializers.CharField(max_length=64, required=False, validators=[validate_time_zone])
    storm_limit = serializers.IntegerField(min_value=0, allow_null=True, required=False)
    storm_window_s = serializers.IntegerField(min_value=1, allow_null=True, required=False)
    renotify_minutes = serializers.IntegerField(min_value=1, max_value=10_080, allow_null=True, required=False)
    secret = serializers.CharField(
        write_only=True,
        required=False,
        min_length=16,
        max_length=128,
        help_text="Webhook signing key. Write-only: set it here, or leave it out and one is generated and "
        "shown once in the answer.",
    )
    has_secret = serializers.SerializerMethodField()
    created_by = UsernameField()

    class Meta:
        model = Subscription
        fields = [
            "id",
            "name",
            "user",
            "contact",
            "location",
            "sensor_type",
            "sensor_type_code",
            "min_severity",
            "include_anomalies",
            "channels",
            "notify_on_resolve",
            "notify_on_acknowledge",
            "renotify_minutes",
            "quiet_hours_start",
            "quiet_hours_end",
            "time_zone",
            "quiet_hours_bypass_critical",
            "storm_limit",
            "storm_window_s",
            "enabled",
            "secret",
            "has_secret",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_by", "created_at", "updated_at"]

    def get_has_secret(self, subscription: Subscription) -> bool:
        return bool(subscription.secret)

    def to_internal_value(self, data):
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError(_flat_channel_errors(exc.detail)) from None

    def _current(self, attrs: dict, name: str):
        if name in attrs:
            return attrs[name]
        return getattr(self.instance, name, None) if self.instance is not None else None

    def validate_channels(self, channels: list[dict]) -> list[dict]:
        if not channels:
            raise serializers.ValidationError("Give at least one channel.")
        if len(channels) > MAX_CHANNELS:
            raise serializers.ValidationError(f"At most {MAX_CHANNELS} channels.")
        return channels

    def validate(self, attrs):
        errors: dict[str, list[str]] = {}
        user = self._current(attrs, "user")
        channels = attrs.get("channels")
        if channels is not None:
            unique: dict[tuple[str, str], dict] = {}
            for channel in channels:
                if channel["type"] == Channel.EMAIL and not channel["target"]:
                    if user is None or not user.email:
                        errors["channels"] = ["An email channel needs a target address (or a user with an email)."]
                        break
                    channel["target"] = user.email
                unique.setdefault(
                    (channel["type"], channel["target"]), {"type": channel["type"], "target": channel["target"]}
                )
            attrs["channels"] = list(unique.values())
        start, end = self._current(attrs, "quiet_hours_start"), self._current(attrs, "quiet_hours_end")
        if (start is None) != (end is None):
            errors["quiet_hours_end" if end is None else "quiet_hours_start"] = [
                "Give both ends of the quiet hours, or neither."
            ]
        elif start is not None and start == end:
            errors["quiet_hours_end"] = ["Must differ from quiet_hours_start."]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class SubscriptionWithSecretSerializer(SubscriptionSerializer):
    secret = serializers.CharField(
        read_only=True,
        allow_null=True,
        help_text="The webhook secret when this request set or generated it (store it now); otherwise null.",
    )


class NotificationSerializer(serializers.ModelSerializer):
    event_kind = serializers.CharField(source="event.kind", read_only=True, allow_null=True, default=None)
    subscription_name = serializers.CharField(source="subscription.name", read_only=True)

    class Meta:
        model = Notification
        fields = [
            "id",
            "kind",
            "alert",
            "event",
            "event_kind",
            "subscription",
            "subscription_name",
            "channel",
            "target",
            "status",
            "attempts",
            "last_error",
            "detail",
            "next_attempt_at",
            "sent_at",
            "digest",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class SubscriptionFilter(FilterSet):
    location = SubtreeFilter(field="location")
    sensor_type = sensor_type_filter()
    min_severity = django_filters.ChoiceFilter(choices=Severity.choices)
    channel = django_filters.ChoiceFilter(
        choices=Channel.choices, method="filter_channel", help_text="Subscriptions with a channel of this type."
    )

    class Meta:
        model = Subscription
        fields = ["user", "enabled"]

    def filter_channel(self, queryset, name, value):
        return queryset.filter(channels__contains=[{"type": value}]) if value else queryset


class NotificationFilter(FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=Notification.Status.choices, help_text="Repeat for several.")
    channel = django_filters.ChoiceFilter(choices=Channel.choices)
    kind = django_filters.ChoiceFilter(choices=Notification.Kind.choices)
    created_after = TimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = TimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Notification
        fields = ["subscription", "alert", "event", "digest"]


def _with_secret(subscription: Subscription, secret: str | None) -> dict:
    data = SubscriptionWithSecretSerializer(subscription).data
    data["secret"] = secret
    return data


@extend_schema_view(
    list=extend_schema(summary="List alert subscriptions", tags=["notifications"]),
    retrieve=extend_schema(tags=["notifications"]),
    create=extend_schema(
        summary="Create a subscription (operator); a generated webhook secret is shown in this answer only",
        responses={201: SubscriptionWithSecretSerializer},
        tags=["notifications"],
    ),
    update=extend_schema(responses={200: SubscriptionWithSecretSerializer}, tags=["notifications"]),
    partial_update=extend_schema(responses={200: SubscriptionWithSecretSerializer}, tags=["notifications"]),
    destroy=extend_schema(tags=["notifications"]),
)
class SubscriptionViewSet(viewsets.ModelViewSet):
    queryset = Subscription.objects.select_related("created_by", "sensor_type")
    serializer_class = SubscriptionSerializer
    filterset_class = SubscriptionFilter
    search_fields = ["name", "contact"]
    ordering_fields = ["id", "name", "created_at", "updated_at"]
    write_role = Role.OPERATOR

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        fields = dict(serializer.validated_data)
        secret = fields.pop("secret", None)
        subscription, shown = subscription_save(
            subscription=Subscription(created_by=request.user, **fields), secret=secret
        )
        return Response(_with_secret(subscription, shown), status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        partial = kwargs.pop("partial", False)
        subscription = self.get_object()
        serializer = self.get_serializer(subscription, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        fields = dict(serializer.validated_data)
        secret = fields.pop("secret", None)
        for name, value in fields.items():
            setattr(subscription, name, value)
        subscription, shown = subscription_save(subscription=subscription, secret=secret)
        return Response(_with_secret(subscription, shown))

    @extend_schema(
        request=None,
        responses={200: SubscriptionWithSecretSerializer},
        summary="Issue a new webhook secret (operator); shown in this answer only",
        tags=["notifications"],
    )
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request, pk=None):
        subscription = self.get_object()
        return Response(_with_secret(subscription, subscription_rotate_secret(subscription=subscription)))


@extend_schema_view(
    list=extend_schema(summary="Delivery history (newest first)", tags=["notifications"]),
    retrieve=extend_schema(tags=["notifications"]),
)
class NotificationViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Notification.objects.select_related("event", "subscription")
    serializer_class = NotificationSerializer
    filterset_class = NotificationFilter
    search_fields = ["target", "last_error"]
    ordering_fields = ["id", "created_at", "sent_at", "status", "attempts"]
    ordering = ["-created_at", "-id"]
    action_roles = {"retry": Role.OPERATOR}

    @extend_schema(
        request=None,
        responses={
            200: NotificationSerializer,
            409: OpenApiResponse(ErrorSerializer, description="Only failed notifications can be retried."),
        },
        summary="Try a failed notification again (operator), with a fresh round of attempts",
        tags=["notifications"],
    )
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        notification = notification_retry(notification=self.get_object())
        return Response(NotificationSerializer(notification).data)


class MaintenanceWindowSerializer(serializers.ModelSerializer):
    location = serializers.PrimaryKeyRelatedField(
        queryset=Location.objects.all(), allow_null=True, required=False, help_text="Covers its whole subtree."
    )
    device = serializers.PrimaryKeyRelatedField(
        queryset=Device.objects.all(), allow_null=True, required=False, help_text="Device id."
    )
    device_id = serializers.CharField(
        source="device.device_id", read_only=True, allow_null=True, default=None, help_text="Device external id."
    )
    created_by = UsernameField()
    active = serializers.SerializerMethodField(help_text="Whether the window is in force now.")

    class Meta:
        model = MaintenanceWindow
        fields = [
            "id",
            "name",
            "location",
            "device",
            "device_id",
            "starts_at",
            "ends_at",
            "reason",
            "active",
            "created_by",
            "created_at",
        ]
        read_only_fields = ["created_by", "created_at"]

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_active(self, window: MaintenanceWindow) -> bool:
        return window.starts_at <= timezone.now() < window.ends_at


class MaintenanceWindowFilter(FilterSet):
    location = SubtreeFilter(field="location")
    device = device_filter()
    active = django_filters.BooleanFilter(method="filter_active", help_text="true: in force now.")

    class Meta:
        model = MaintenanceWindow
        fields: list[str] = []

    def filter_active(self, queryset, name, value):
        if value is None:
            return queryset
        now = timezone.now()
        in_force = Q(starts_at__lte=now, ends_at__gt=now)
        return queryset.filter(in_force) if value else queryset.exclude(in_force)


@extend_schema_view(
    list=extend_schema(summary="List maintenance windows", tags=["alerts"]),
    create=extend_schema(summary="Plan a maintenance window (alerts recorded, not notified)", tags=["alerts"]),
    retrieve=extend_schema(tags=["alerts"]),
    update=extend_schema(tags=["alerts"]),
    partial_update=extend_schema(tags=["alerts"]),
    destroy=extend_schema(tags=["alerts"]),
)
class MaintenanceWindowViewSet(viewsets.ModelViewSet):
    queryset = MaintenanceWindow.objects.select_related("location", "device", "created_by")
    serializer_class = MaintenanceWindowSerializer
    filterset_class = MaintenanceWindowFilter
    search_fields = ["name", "reason"]
    ordering_fields = ["id", "starts_at", "ends_at", "name"]
    write_role = Role.OPERATOR

    def perform_create(self, serializer):
        window = MaintenanceWindow(created_by=self.request.user, **serializer.validated_data)
        serializer.instance = maintenance_window_save(window=window)

    def perform_update(self, serializer):
        window = serializer.instance
        for field, value in serializer.validated_data.items():
            setattr(window, field, value)
        serializer.instance = maintenance_window_save(window=window)
