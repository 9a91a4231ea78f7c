from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.stats.selectors import dashboard_stats


def _counts() -> serializers.DictField:
    return serializers.DictField(child=serializers.IntegerField())


class StatsSerializer(serializers.Serializer):
    generated_at = serializers.DateTimeField()
    devices = inline_serializer(
        "DeviceStats",
        {"total": serializers.IntegerField(), "by_status": _counts(), "by_connection_status": _counts()},
    )
    sensors = inline_serializer(
        "SensorStats",
        {
            "total": serializers.IntegerField(),
            "by_status": serializers.DictField(
                child=serializers.IntegerField(), help_text="normal, warning, critical, stale (as /realtime/)."
            ),
        },
    )
    readings = inline_serializer(
        "ReadingStats",
        {
            "last_hour": serializers.IntegerField(help_text="Readings with timestamps in the last hour."),
            "last_day": serializers.IntegerField(help_text="Readings with timestamps in the last 24 hours."),
        },
    )
    ingest = inline_serializer(
        "IngestStats",
        {
            "readings_per_s_1m": serializers.FloatField(help_text="Readings stored per second, last minute."),
            "readings_per_s_5m": serializers.FloatField(help_text="Readings stored per second, last five minutes."),
            "last_hour": serializers.DictField(
                child=serializers.IntegerField(), help_text="Batches received in the last hour and their counts."
            ),
            "batches_last_day": serializers.DictField(
                child=serializers.IntegerField(),
                help_text="Batches of the last day still queued, processing or failed.",
            ),
        },
    )
    alerts = serializers.DictField(
        child=serializers.DictField(child=serializers.IntegerField()),
        allow_null=True,
        help_text="Unresolved alerts by severity: `open` and `acknowledged`; null where alerting is not installed.",
    )
    notifications = serializers.DictField(
        child=serializers.DictField(child=serializers.IntegerField()),
        allow_null=True,
        help_text="Deliveries of the last day by status and by channel; null where notifications are not installed.",
    )
    rollups = inline_serializer(
        "RollupStats",
        {
            "watermark": serializers.DateTimeField(allow_null=True),
            "backfilled": serializers.BooleanField(allow_null=True),
            "last_refresh_at": serializers.DateTimeField(allow_null=True),
            "last_refresh_ms": serializers.FloatField(allow_null=True),
            "last_refresh_batches": serializers.IntegerField(allow_null=True),
            "last_purge_at": serializers.DateTimeField(allow_null=True),
            "last_purge_readings": serializers.IntegerField(allow_null=True),
            "last_purge_rollups": serializers.IntegerField(allow_null=True),
        },
    )


class StatsView(APIView):
    @extend_schema(responses={200: StatsSerializer}, summary="Counts and rates for a dashboard", tags=["stats"])
    def get(self, request):
        return Response(StatsSerializer(dashboard_stats()).data)
