from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.core.errors import ApplicationError
from apps.core.filters import FilterSet
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


class EndpointFilter(FilterSet):
    # A choice, not a BooleanFilter: that one takes any other word for "no filter" instead of refusing it.
    waiting = django_filters.ChoiceFilter(
        choices=[("true", "true"), ("false", "false")],
        method="filter_waiting",
        help_text="true: waiting for acceptance; false: accepted.",
    )

    class Meta:
        model = Endpoint
        fields = ["group", "edge_node"]

    def filter_waiting(self, queryset, name, value):
        return queryset.filter(device__isnull=value == "true") if value else queryset


@extend_schema_view(
    list=extend_schema(
        summary="Sparkplug edge nodes and devices, those waiting for acceptance and their unmapped metrics"
    ),
    retrieve=extend_schema(summary="One Sparkplug edge node or device"),
)
class EndpointViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = EndpointSerializer
    queryset = Endpoint.objects.all()
    filterset_class = EndpointFilter

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
