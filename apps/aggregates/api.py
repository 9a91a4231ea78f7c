from __future__ import annotations

import tempfile
import zoneinfo

import orjson
from django.conf import settings
from django.core.files.storage import default_storage
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers, status, viewsets
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.roles import Role, role_of
from apps.aggregates.buckets import iso_in_zone
from apps.aggregates.exports import (
    QUERIES,
    ExportPlan,
    download_signature,
    export_job_check_download,
    export_job_create,
    export_plan,
)
from apps.aggregates.formats import CONTENT_TYPES, csv_chunks, file_chunks, ndjson_chunks, write_file
from apps.aggregates.models import ExportJob
from apps.aggregates.params import AggregatesQuery, Selection, aggregate_query_of
from apps.aggregates.selectors import AggregateQuery, Series, aggregate_series
from apps.core.fields import QueryTextField
from apps.core.query import QueryMixin
from apps.core.schema import ErrorSerializer


class FastJSONRenderer(JSONRenderer):
    """orjson: a month of hourly buckets for a hundred sensors is 72,000 objects."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return b"" if data is None else orjson.dumps(data)


class BucketSerializer(serializers.Serializer):
    bucket = serializers.CharField(help_text="Start of the bucket, ISO 8601 in `tz`.")
    min = serializers.FloatField(required=False)
    max = serializers.FloatField(required=False)
    avg = serializers.FloatField(required=False, allow_null=True, help_text="Null where `sum` is.")
    sum = serializers.FloatField(
        required=False, allow_null=True, help_text="Null when the readings' sum exceeds a float (about 1.8e308)."
    )
    count = serializers.IntegerField(required=False)


class SeriesSerializer(serializers.Serializer):
    sensor = serializers.CharField(allow_null=True, help_text="Sensor key (group_by=sensor).")
    sensor_id = serializers.IntegerField(allow_null=True, help_text="Sensor id (group_by=sensor).")
    sensor_type = serializers.IntegerField(
        allow_null=True, help_text="Sensor type id, when all sensors of the series share it."
    )
    sensor_type_code = serializers.CharField(
        allow_null=True, help_text="Sensor type code, when all sensors of the series share it."
    )
    unit = serializers.CharField(allow_null=True)
    location = serializers.IntegerField(allow_null=True, help_text="Location id (group_by=sensor or location).")
    location_path = serializers.CharField(allow_null=True)
    sensors = serializers.IntegerField(help_text="How many sensors the series covers.")
    buckets = BucketSerializer(many=True, help_text="Buckets with readings, oldest first; empty ones are left out.")


class AggregateAnswerSerializer(serializers.Serializer):
    interval = serializers.CharField()
    functions = serializers.ListField(child=serializers.CharField())
    group_by = serializers.CharField()
    tz = serializers.CharField()
    start = serializers.CharField()
    end = serializers.CharField()
    series = SeriesSerializer(many=True)


def describe_series(query: AggregateQuery, selection: Selection, series: list[Series]) -> list[dict]:
    """Every series the query asks for, in order, with its buckets (none where it has no readings)."""
    buckets_by_key = {item.key: item.buckets for item in series}
    groups: dict[object, list] = {}
    for sensor in selection.sensors.values():
        key = {"sensor": sensor.id, "location": sensor.location_id, "all": 0}[query.group_by]
        groups.setdefault(key, []).append(sensor)
    if query.group_by == "all":
        groups.setdefault(0, [])
    described = []
    for key, sensors in groups.items():
        types = {(sensor.sensor_type_id, sensor.sensor_type_code) for sensor in sensors}
        sensor_type, sensor_type_code = types.pop() if len(types) == 1 else (None, None)
        units = {sensor.unit for sensor in sensors}
        first = sensors[0] if sensors else None
        described.append(
            {
                "sensor": first.key if query.group_by == "sensor" else None,
                "sensor_id": first.id if query.group_by == "sensor" else None,
                "sensor_type": sensor_type,
                "sensor_type_code": sensor_type_code,
                "unit": units.pop() if len(units) == 1 else None,
                "location": first.location_id if first and query.group_by != "all" else None,
                "location_path": first.location_path if first and query.group_by != "all" else None,
                "sensors": len(sensors),
                "buckets": buckets_by_key.get(key, []),
            }
        )
    return described


class AggregatesView(QueryMixin, APIView):
    renderer_classes = [FastJSONRenderer]
    query_serializer_class = AggregatesQuery

    @extend_schema(
        responses={200: AggregateAnswerSerializer},
        summary="Min, max, avg, sum and count per bucket, per sensor, per location or over all selected sensors",
        description=(
            "Answers from hourly and daily rollups where the interval and time zone allow, and from raw readings "
            "for the rest (including readings stored since the last rollup refresh), so results equal a plain "
            "computation over the raw readings. Day, week (from Monday) and month buckets start at local "
            "midnight in `tz`, so they are 23 or 25 hours long across DST changes. Too many buckets "
            "(AGGREGATES_MAX_BUCKETS per series, AGGREGATES_MAX_POINTS in all) is a 400 naming `interval`."
        ),
        tags=["aggregates"],
    )
    def get(self, request):
        query, selection = aggregate_query_of(self.query)
        zone = zoneinfo.ZoneInfo(query.tz)
        series = aggregate_series(query, render_bucket=lambda moment: iso_in_zone(moment, zone))
        return Response(
            {
                "interval": query.interval,
                "functions": list(query.functions),
                "group_by": query.group_by,
                "tz": query.tz,
                "start": iso_in_zone(query.start, zone),
                "end": iso_in_zone(query.end, zone),
                "series": describe_series(query, selection, series),
            }
        )


class ExportJobSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField(help_text="This job's status.")
    download_url = serializers.SerializerMethodField(
        help_text="The signed link that downloads the file until `expires_at`, for the job's creator (or an admin) "
        "with their credentials; null until done."
    )

    class Meta:
        model = ExportJob
        fields = [
            "id",
            "kind",
            "format",
            "status",
            "params",
            "created_at",
            "started_at",
            "finished_at",
            "estimated_rows",
            "rows",
            "size_bytes",
            "expires_at",
            "error",
            "url",
            "download_url",
        ]
        read_only_fields = fields

    def _absolute(self, path: str) -> str:
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path

    def get_url(self, job: ExportJob) -> str:
        return self._absolute(reverse("export-job-detail", args=[job.pk]))

    def get_download_url(self, job: ExportJob) -> str | None:
        if job.status != ExportJob.Status.DONE:
            return None
        path = reverse("export-job-download", args=[job.pk])
        return self._absolute(f"{path}?signature={download_signature(job)}")


class IgnoreFormatNegotiation(DefaultContentNegotiation):
    """`format` names the export's file format here, not DRF's renderer override; errors and jobs are JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        renderer = renderers[0]
        return renderer, renderer.media_type


def _filename(plan: ExportPlan, format: str) -> str:
    start = plan.params["start"][:10].replace("-", "")
    end = plan.params["end"][:10].replace("-", "")
    return f"{plan.kind}-{start}-{end}.{format}"


def stream_export(plan: ExportPlan, format: str) -> StreamingHttpResponse:
    if format == "xlsx":
        scratch = tempfile.TemporaryFile()
        write_file(format, plan.header, plan.rows, scratch, title=plan.kind)
        scratch.seek(0)
        chunks = file_chunks(scratch)
    elif format == "csv":
        chunks = csv_chunks(plan.header, plan.rows)
    else:
        chunks = ndjson_chunks(plan.header, plan.rows)
    response = StreamingHttpResponse(chunks, content_type=CONTENT_TYPES[format])
    response["Content-Disposition"] = f'attachment; filename="{_filename(plan, format)}"'
    return response


EXPORT_RESPONSES = {
    (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV with a header row, streamed."),
    (200, "application/x-ndjson"): OpenApiResponse(OpenApiTypes.STR, description="One JSON object a line, streamed."),
    (200, CONTENT_TYPES["xlsx"]): OpenApiResponse(OpenApiTypes.BINARY, description="An XLSX workbook."),
    202: OpenApiResponse(
        ExportJobSerializer,
        description="More rows than EXPORTS_SYNC_MAX_ROWS: a job writes the file; poll its `url` for `download_url`.",
    ),
    400: OpenApiResponse(
        ErrorSerializer,
        description="A bad parameter, or more rows than EXPORTS_MAX_ROWS (naming start/end or interval).",
    ),
    429: OpenApiResponse(
        ErrorSerializer, description="EXPORTS_MAX_ACTIVE_JOBS_PER_USER of your export jobs are queued or running."
    ),
}


class ExportView(QueryMixin, APIView):
    kind: str = ""
    content_negotiation_class = IgnoreFormatNegotiation

    def get(self, request):
        format = self.query["format"]
        plan = export_plan(self.kind, self.query)
        if plan.estimated_rows > settings.EXPORTS_SYNC_MAX_ROWS:
            job = export_job_create(plan=plan, format=format, user_id=request.user.pk)
            data = ExportJobSerializer(job, context={"request": request}).data
            return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": data["url"]})
        return stream_export(plan, format)


class ReadingsExportView(ExportView):
    kind = ExportJob.Kind.READINGS
    query_serializer_class = QUERIES[kind]

    @extend_schema(
        responses=EXPORT_RESPONSES,
        summary="Raw readings (sensor, ts, value) as CSV, NDJSON or XLSX",
        tags=["exports"],
    )
    def get(self, request):
        return super().get(request)


class AggregatesExportView(ExportView):
    kind = ExportJob.Kind.AGGREGATES
    query_serializer_class = QUERIES[kind]

    @extend_schema(
        responses=EXPORT_RESPONSES,
        summary="Aggregates (as /api/v1/aggregates/, one row per series and bucket) as CSV, NDJSON or XLSX",
        tags=["exports"],
    )
    def get(self, request):
        return super().get(request)


@extend_schema_view(
    list=extend_schema(summary="Export jobs (your own; admins see all)", tags=["exports"]),
    retrieve=extend_schema(summary="Status of an export job, with its download link once done", tags=["exports"]),
)
class ExportJobViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = ExportJobSerializer
    filter_backends: list = []
    content_negotiation_class = IgnoreFormatNegotiation  # the export's `format` may ride along on its links

    def get_queryset(self):
        jobs = ExportJob.objects.all()
        if role_of(self.request.user) != Role.ADMIN:
            jobs = jobs.filter(created_by=self.request.user.pk)
        return jobs


class DownloadQuery(serializers.Serializer):
    signature = QueryTextField(help_text="From the job's download_url.")


class ExportDownloadView(QueryMixin, APIView):
    """The file of a done job: its signed link, with the credentials of its creator or an admin (see
    export_job_check_download for the rule)."""

    content_negotiation_class = IgnoreFormatNegotiation
    query_serializer_class = DownloadQuery

    @extend_schema(
        responses={
            **{
                (200, content_type): OpenApiResponse(OpenApiTypes.BINARY, description="The export file.")
                for content_type in (CONTENT_TYPES["csv"].split(";")[0], CONTENT_TYPES["ndjson"], CONTENT_TYPES["xlsx"])
            },
            401: OpenApiResponse(ErrorSerializer, description="No credentials."),
            403: OpenApiResponse(
                ErrorSerializer,
                description="No or a wrong signature, or credentials of someone else than the job's creator or an "
                "admin (devices never).",
            ),
            409: OpenApiResponse(ErrorSerializer, description="The job is not done (yet)."),
            410: OpenApiResponse(
                ErrorSerializer, description="The job expired (its file is deleted), or the link is older than the job."
            ),
        },
        summary="Download the file of an export job (its creator or an admin, through its signed download_url)",
        tags=["exports"],
    )
    def get(self, request, pk):
        job = get_object_or_404(ExportJob, pk=pk)
        export_job_check_download(
            job=job,
            user_id=request.user.pk,
            is_admin=role_of(request.user) == Role.ADMIN,
            signature=self.query["signature"],
        )
        response = StreamingHttpResponse(
            file_chunks(default_storage.open(job.file)), content_type=CONTENT_TYPES[job.format]
        )
        response["Content-Disposition"] = f'attachment; filename="{job.kind}-{job.pk}.{job.format}"'
        response["Content-Length"] = str(job.size_bytes)
        return response
