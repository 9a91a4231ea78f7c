from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.core.errors import ApplicationError
from apps.sparkplug.models import Endpoint
from apps.sparkplug.services import endpoint_accept


class EndpointSerializer(serializers.ModelSerializer):
    device_id = serializers.CharField(source="external_id", read_only=True)
    device = serializers.PrimaryKeyRelatedField(read_only=True)
    waiting = serializers.BooleanField(read_only=True)
    writable_metrics = serializers.SerializerMethodField()

    class Meta:
        model = Endpoint
        fields = [
            "id",
            "group",
            "edge_node",
            "device_name",
            "device_id",
            "device",
            "waiting",
            "metrics",
            "unmapped_metrics",
            "writable_metrics",
            "bd_seq",
            "last_seq",
            "born_at",
        ]
        read_only_fields = fields

    def get_writable_metrics(self, obj: Endpoint) -> list[str]:
        return sorted(name for name, metric in obj.metrics.items() if metric.get("writable"))


@extend_schema_view(
    list=extend_schema(
        summary="Sparkplug edge nodes and devices, those waiting for acceptance and their unmapped metrics"
    ),
    retrieve=extend_schema(summary="One Sparkplug edge node or device"),
)
class EndpointViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = EndpointSerializer
    queryset = Endpoint.objects.all()

    def get_queryset(self):
        queryset = super().get_queryset()
        waiting = self.request.query_params.get("waiting")
        if waiting is not None:
            if waiting not in ("true", "false"):
                raise ApplicationError("Invalid filter.", errors={"waiting": ["Must be true or false."]})
            queryset = queryset.filter(device__isnull=waiting == "true")
        return queryset

    @extend_schema(request=None, responses={200: EndpointSerializer}, summary="Accept a waiting endpoint (admin)")
    @action(detail=True, methods=["post"])
    def accept(self, request, pk=None):
        endpoint = self.get_object()
        if not endpoint.waiting:
            raise ApplicationError(
                "Already accepted.", errors={"device": ["The endpoint has its device."]}, status_code=409
            )
        endpoint_accept(endpoint=endpoint)
        return Response(EndpointSerializer(endpoint).data)
