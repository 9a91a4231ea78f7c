from __future__ import annotations

import uuid

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.accounts.permissions import request_device
from apps.accounts.roles import Role
from apps.commands.models import Command, command_name_validator
from apps.commands.services import MAX_DETAIL_LENGTH, Ack, command_create, command_record_ack, json_object_errors
from apps.core.errors import ApplicationError
from apps.core.filters import FilterSet, TextFilter, TimeFilter, device_filter
from apps.devices.models import Device


class CommandSerializer(serializers.ModelSerializer):
    cmd_id = serializers.UUIDField(source="id", read_only=True)
    device = serializers.IntegerField(source="device_id", read_only=True, help_text="Device id.")
    device_id = serializers.CharField(source="device.device_id", read_only=True, help_text="Device external id.")
    device_external_id = serializers.CharField(
        source="device.device_id", read_only=True, help_text="Device external id (the same as `device_id`)."
    )
    created_by = serializers.CharField(source="created_by.username", read_only=True, default=None, allow_null=True)
    acked_by = serializers.CharField(
        source="acked_by.username",
        read_only=True,
        default=None,
        allow_null=True,
        help_text="The user who answered for the device (null when the device answered itself).",
    )
    acked_by_device = serializers.CharField(
        source="acked_by_device.device_id",
        read_only=True,
        default=None,
        allow_null=True,
        help_text="The device (external id) that sent the answer itself.",
    )

    class Meta:
        model = Command
        fields = [
            "cmd_id",
            "device",
            "device_id",
            "device_external_id",
            "cmd",
            "params",
            "status",
            "ttl_s",
            "expires_at",
            "created_at",
            "created_by",
            "sent_at",
            "send_count",
            "acked_at",
            "ack_source",
            "acked_by",
            "acked_by_device",
            "ack_detail",
            "result",
            "finished_at",
        ]
        read_only_fields = fields


class CommandCreateSerializer(serializers.Serializer):
    cmd = serializers.CharField(max_length=64, validators=[command_name_validator], help_text="e.g. set_interval")
    params = serializers.JSONField(required=False, default=dict, help_text="A JSON object; the command's arguments.")
    ttl_s = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=settings.COMMAND_MAX_TTL_S,
        help_text=f"Seconds to wait for the device before the command expires (default "
        f"{settings.COMMAND_DEFAULT_TTL_S}).",
    )

    def validate_params(self, value):
        problems = json_object_errors(value)
        if problems:
            raise serializers.ValidationError(problems)
        return value


class CommandAckSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Command.ACK_STATUSES)
    detail = serializers.CharField(max_length=MAX_DETAIL_LENGTH, required=False, allow_blank=True, default="")
    result = serializers.JSONField(required=False, allow_null=True, default=None, help_text="A JSON object.")

    def validate_result(self, value):
        if value is not None and (problems := json_object_errors(value)):
            raise serializers.ValidationError(problems)
        return value


class CommandFilter(FilterSet):
    device = device_filter()
    device_external_id = TextFilter(field_name="device__device_id", help_text="Device external id (as in `device`).")
    created_after = TimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = TimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Command
        fields = ["status", "cmd"]


class CommandListMixin:
    queryset = Command.objects.select_related("device", "created_by", "acked_by", "acked_by_device")
    serializer_class = CommandSerializer
    filterset_class = CommandFilter
    search_fields = ["cmd", "device__device_id"]
    ordering_fields = ["created_at", "expires_at", "status", "acked_at"]


DEVICE_ID_PARAMETER = OpenApiParameter("id", int, OpenApiParameter.PATH, description="The device's id.")


@extend_schema_view(
    get=extend_schema(parameters=[DEVICE_ID_PARAMETER], summary="A device's commands, newest first"),
    post=extend_schema(
        parameters=[DEVICE_ID_PARAMETER],
        request=CommandCreateSerializer,
        responses={
            201: CommandSerializer,
            409: OpenApiResponse(description="The device is inactive."),
        },
        summary="Send a command to a device (published at once, or when the device is back online)",
    ),
)
class DeviceCommandsView(CommandListMixin, generics.ListCreateAPIView):
    write_role = Role.OPERATOR

    def device(self) -> Device:
        return generics.get_object_or_404(Device.objects.all(), pk=self.kwargs["id"])

    def get_queryset(self):
        return super().get_queryset().filter(device=self.device())

    def create(self, request, *args, **kwargs):
        device = self.device()
        serializer = CommandCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        command = command_create(device=device, created_by=request.user, **serializer.validated_data)
        return Response(CommandSerializer(command).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    list=extend_schema(summary="Commands of every device"),
    retrieve=extend_schema(summary="One command and how far it got"),
)
class CommandViewSet(CommandListMixin, viewsets.ReadOnlyModelViewSet):
    lookup_url_kwarg = "cmd_id"
    device_actions = ("ack",)
    action_roles = {"ack": Role.OPERATOR}

    @extend_schema(
        request=CommandAckSerializer,
        responses={
            200: CommandSerializer,
            409: OpenApiResponse(description="The command is already completed, rejected or expired."),
        },
        summary="Acknowledge a command (device key of its device, or an operator)",
    )
    @action(detail=True, methods=["put"])
    def ack(self, request, cmd_id=None):
        try:
            command_id = uuid.UUID(str(cmd_id))
        except ValueError:
            raise ApplicationError("No such command.", status_code=404) from None
        serializer = CommandAckSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        command, _ = command_record_ack(
            command_id=str(command_id),
            ack=Ack(**serializer.validated_data),
            source="http",
            device=request_device(request),
            user=None if request_device(request) else request.user,
            at=timezone.now(),
        )
        command = self.get_queryset().get(pk=command.pk)
        return Response(CommandSerializer(command).data)
