from __future__ import annotations

from django.conf import settings
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import pagination, serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.permissions import request_device
from apps.accounts.roles import Role, role_of
from apps.core.errors import ApplicationError
from apps.core.fields import (
    DEVICE_HELP,
    SENSOR_HELP,
    SENSOR_TYPE_HELP,
    ChoiceField,
    ChoiceListField,
    FlexibleTimeField,
    IdListField,
    IdOrKeyListField,
    IdsAndKeys,
    PageField,
    PageSizeField,
    QueryTextField,
)
from apps.core.parsers import FastJSONParser
from apps.core.query import QueryMixin
from apps.core.schema import ErrorSerializer
from apps.devices.models import Sensor
from apps.ingest import idempotency
from apps.ingest.csv_import import csv_import_create
from apps.ingest.models import IngestBatch
from apps.ingest.pipeline import Reason
from apps.ingest.selectors import RealtimeFilters, RealtimeStatus, readings_queryset, realtime_rows
from apps.ingest.services import batch_create, count_readings, normalize_request
from apps.locations.api import SubtreeField
from apps.operations.throttling import WeightedRateThrottle


class BatchSerializer(serializers.ModelSerializer):
    batch_id = serializers.UUIDField(source="id", read_only=True)
    errors = serializers.ListField(child=serializers.DictField(), read_only=True, help_text="The first rejects.")

    class Meta:
        model = IngestBatch
        fields = [
            "batch_id",
            "status",
            "source",
            "received",
            "stored",
            "duplicates",
            "rejected",
            "rejected_by_reason",
            "errors",
            "sequence_gaps",
            "received_at",
            "started_at",
            "finished_at",
            "attempts",
            "failure",
        ]
        read_only_fields = fields


def _sender(request) -> tuple[int | None, str | None, int | None]:
    """(device pk, device external id, user pk) of whoever sent a request."""
    device = request_device(request)
    if device is not None:
        return device.pk, device.device_id, None
    return None, None, request.user.pk


INGEST_EXAMPLES = [
    OpenApiExample(
        "Single reading", value={"sensor": "dc-meter-001/voltage_dc", "ts": "2026-02-12T16:00:00Z", "value": 752.3}
    ),
    OpenApiExample(
        "Device datagram",
        value={
            "v": 2,
            "device_id": "dc-meter-001",
            "ts": "2026-02-12T16:00:00.000Z",
            "seq": 42,
            "msg_type": "telemetry",
            "measurements": [{"ts": "2026-02-12T16:00:00.000Z", "type": "voltage_dc", "val": 752.3, "unit": "V"}],
        },
    ),
    OpenApiExample(
        "Flat record",
        value={"device_id": "dev-1", "ts": "2026-02-12T16:00:00Z", "temperature_c": 25.5, "humidity": 60.0},
    ),
    OpenApiExample("Several, mixed", value={"readings": [{"sensor": "dc-meter-001/voltage_dc", "value": 752.3}]}),
]


class IngestReadingsThrottle(WeightedRateThrottle):
    """THROTTLE_RATES["ingest_readings"]: readings, not requests, per device key or token."""

    scope = "ingest_readings"

    def weight(self, request) -> int:
        return count_readings(request.data)


REJECT_REASONS = (
    "Rejected readings are counted by reason in `rejected_by_reason`: "
    + ", ".join(f"`{reason}`" for reason in Reason.ALL)
    + " (docs/ingest.md says what each means)."
)
IDEMPOTENCY_PARAMETERS = [
    OpenApiParameter(
        idempotency.HEADER,
        str,
        OpenApiParameter.HEADER,
        description="Up to 255 printable ASCII characters, chosen by the client per request. Sent again by the "
        "same device or user within a day with the same body, it answers with the first request's batches "
        "(and `Idempotent-Replayed: true`) instead of storing anything twice; with another body it is a 422.",
    ),
    OpenApiParameter(
        idempotency.REPLAYED_HEADER,
        str,
        OpenApiParameter.HEADER,
        response=[202],
        description="`true` when the answer is that of an earlier request with the same Idempotency-Key.",
    ),
]
IDEMPOTENCY_CONFLICT = OpenApiResponse(
    ErrorSerializer, description="The Idempotency-Key was used for another body (or its batches were deleted)."
)


def _replayed_headers(replayed: bool) -> dict[str, str]:
    return {idempotency.REPLAYED_HEADER: "true"} if replayed else {}


class IngestView(APIView):
    """Accept readings: one task is queued per request and the answer is 202 with the batch id."""

    parser_classes = [FastJSONParser]
    throttle_classes = [*APIView.throttle_classes, IngestReadingsThrottle]
    write_role = Role.OPERATOR
    device_actions = ("*",)
    ingest_actions = ("*",)
    max_body_setting = "INGEST_MAX_BODY_BYTES"  # apps.core.body_limit

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        examples=INGEST_EXAMPLES,
        parameters=IDEMPOTENCY_PARAMETERS,
        description=REJECT_REASONS,
        responses={
            202: BatchSerializer,
            400: OpenApiResponse(
                ErrorSerializer, description="Malformed items, each named as readings[index].field; nothing queued."
            ),
            413: OpenApiResponse(
                ErrorSerializer,
                description="More readings than INGEST_MAX_READINGS_PER_REQUEST, or a body over INGEST_MAX_BODY_BYTES.",
            ),
            422: IDEMPOTENCY_CONFLICT,
        },
        summary="Send readings (single, datagram and flat shapes, mixed freely)",
        tags=["ingest"],
    )
    def post(self, request):
        received_at = timezone.now()
        key = idempotency.idempotency_key_of(request.headers)
        body = request.data
        device_pk, device_id, user_pk = _sender(request)
        normalized = normalize_request(body, received_at=received_at, device_id=device_id)
        batches, replayed = idempotency.batches_create_once(
            sender=idempotency.sender_of(device_pk=device_pk, user_pk=user_pk),
            key=key,
            request_hash=idempotency.body_hash(request.body) if key else "",
            now=received_at,
            create=lambda: [
                batch_create(
                    normalized=normalized,
                    received_at=received_at,
                    device_pk=device_pk,
                    user_pk=user_pk,
                    request_id=getattr(request, "request_id", ""),
                )
            ],
        )
        batch = batches[0]
        headers = {"Location": f"/api/v1/ingest/batches/{batch.pk}/", **_replayed_headers(replayed)}
        return Response(BatchSerializer(batch).data, status=status.HTTP_202_ACCEPTED, headers=headers)


class BatchDetailView(APIView):
    device_actions = ("*",)
    ingest_actions = ("*",)

    @extend_schema(responses={200: BatchSerializer}, summary="Status and counts of an ingest batch", tags=["ingest"])
    def get(self, request, batch_id):
        batches = IngestBatch.objects.defer("payload")
        device = request_device(request)
        if device is not None:
            batches = batches.filter(device=device)  # a device sees only its own batches
        elif role_of(request.user) == Role.INGEST:
            batches = batches.filter(user=request.user)  # and so does a gateway
        return Response(BatchSerializer(get_object_or_404(batches, pk=batch_id)).data)


class ImportView(APIView):
    """Backfill historical readings from a CSV file (columns sensor, ts, value), through the same pipeline."""

    parser_classes = [MultiPartParser]
    write_role = Role.OPERATOR
    max_body_setting = "INGEST_MAX_IMPORT_BYTES"  # apps.core.body_limit

    @extend_schema(
        request={"multipart/form-data": inline_serializer("ReadingsImport", {"file": serializers.FileField()})},
        parameters=IDEMPOTENCY_PARAMETERS,
        description="The whole file is checked before anything is queued: a malformed line anywhere (named as "
        "`line N` in `errors`, also bytes that are not UTF-8) refuses the upload and nothing is stored. "
        + REJECT_REASONS,
        responses={
            202: inline_serializer(
                "ImportAccepted", {"batches": BatchSerializer(many=True), "rows": serializers.IntegerField()}
            ),
            400: OpenApiResponse(ErrorSerializer, description="A missing file or column, or a malformed line."),
            413: OpenApiResponse(ErrorSerializer, description="A file over INGEST_MAX_IMPORT_BYTES."),
            422: IDEMPOTENCY_CONFLICT,
        },
        summary="Import readings from CSV (sensor,ts,value); idempotent on re-upload",
        tags=["ingest"],
    )
    def post(self, request):
        upload = request.FILES.get("file")
        if upload is None:
            raise ApplicationError(
                "Upload a CSV file in the 'file' field.", errors={"file": ["This field is required."]}
            )
        received_at = timezone.now()
        key = idempotency.idempotency_key_of(request.headers)
        imported: dict[str, int] = {}

        def create() -> list[IngestBatch]:
            batches, imported["rows"] = csv_import_create(
                stream=upload.file,
                received_at=received_at,
                user_pk=request.user.pk,
                chunk_size=settings.INGEST_MAX_READINGS_PER_REQUEST,
            )
            return batches

        batches, replayed = idempotency.batches_create_once(
            sender=idempotency.sender_of(device_pk=None, user_pk=request.user.pk),
            key=key,
            request_hash=idempotency.file_hash(upload.file) if key else "",
            now=received_at,
            create=create,
        )
        rows = imported["rows"] if not replayed else sum(batch.received for batch in batches)
        return Response(
            {"batches": BatchSerializer(batches, many=True).data, "rows": rows},
            status=status.HTTP_202_ACCEPTED,
            headers=_replayed_headers(replayed),
        )


class RealtimeRowSerializer(serializers.Serializer):
    sensor = serializers.CharField(help_text="Sensor key.")
    sensor_id = serializers.IntegerField(help_text="Sensor id.")
    device = serializers.IntegerField(help_text="Device id.")
    device_id = serializers.CharField(help_text="Device external id.")
    sensor_type = serializers.IntegerField(help_text="Sensor type id.")
    sensor_type_code = serializers.CharField(help_text="Sensor type code.")
    unit = serializers.CharField()
    location = serializers.IntegerField(allow_null=True, help_text="Location id.")
    location_path = serializers.CharField(allow_null=True)
    ts = serializers.DateTimeField(allow_null=True)
    value = serializers.FloatField(allow_null=True)
    status = serializers.ChoiceField(choices=RealtimeStatus.choices)


# The offset is a bigint in SQL; a page that far is past the end of any table there can be.
MAX_OFFSET = 2**63 - 1


class RealtimeQuery(serializers.Serializer):
    location = SubtreeField()
    sensor_type = IdOrKeyListField(help_text=SENSOR_TYPE_HELP)
    device = IdOrKeyListField(help_text=DEVICE_HELP)
    sensor = IdOrKeyListField(help_text=SENSOR_HELP)
    status = ChoiceListField(
        choices=RealtimeStatus.values, help_text="normal, warning, critical, stale (comma-separated)."
    )
    page = PageField()
    page_size = PageSizeField(default=1000, maximum=10_000)

    def validate(self, attrs):
        last_page = MAX_OFFSET // attrs["page_size"] + 1
        if attrs["page"] > last_page:
            raise serializers.ValidationError({"page": [f"At most {last_page}."]})
        return attrs


class RealtimeView(QueryMixin, APIView):
    query_serializer_class = RealtimeQuery

    @extend_schema(
        responses={
            200: inline_serializer(
                "RealtimePage",
                {
                    "count": serializers.IntegerField(),
                    "page": serializers.IntegerField(),
                    "page_size": serializers.IntegerField(),
                    "generated_at": serializers.DateTimeField(),
                    "stale_after_s": serializers.IntegerField(),
                    "results": RealtimeRowSerializer(many=True),
                },
            )
        },
        summary="Latest value and status of every sensor",
        tags=["readings"],
    )
    def get(self, request):
        query = self.query
        page, size = query["page"], query["page_size"]
        filters = RealtimeFilters(
            location_prefix=query["location"].prefix if query["location"] else None,
            sensors=query["sensor"],
            devices=query["device"],
            sensor_types=query["sensor_type"],
            statuses=query["status"],
        )
        now = timezone.now()
        rows, total = realtime_rows(filters, limit=size, offset=(page - 1) * size, now=now)
        return Response(
            {
                "count": total,
                "page": page,
                "page_size": size,
                "generated_at": now,
                "stale_after_s": settings.REALTIME_STALE_AFTER_S,
                "results": RealtimeRowSerializer(rows, many=True).data,
            }
        )


class ReadingSerializer(serializers.Serializer):
    sensor = serializers.CharField(source="sensor_key", help_text="Sensor key.")
    sensor_id = serializers.IntegerField(help_text="Sensor id.")
    ts = serializers.DateTimeField()
    value = serializers.FloatField()


class ReadingsQuery(serializers.Serializer):
    sensor = IdOrKeyListField(help_text=SENSOR_HELP + " This or `sensor_id` is required.")
    sensor_id = IdListField(help_text="Sensor ids, comma-separated: the same as giving them in `sensor`.")
    start = FlexibleTimeField(help_text="From (inclusive): ISO 8601 or YYYYMMDD.")
    end = FlexibleTimeField(help_text="To (exclusive): ISO 8601 or YYYYMMDD.")
    order = ChoiceField(choices=["newest", "oldest"], default="newest", help_text="Default newest first.")
    cursor = QueryTextField(help_text="The position, from a page's `next` or `previous` link.")
    page_size = PageSizeField(default=1000, maximum=10_000, capped=True)

    def validate(self, attrs):
        if not attrs["sensor"] and not attrs["sensor_id"]:
            raise serializers.ValidationError({"sensor": ["Give sensor keys or ids (or sensor_id)."]})
        return attrs


class ReadingsCursorPagination(pagination.CursorPagination):
    """Cursor pages of the view's checked query: its order and page size."""

    ordering = "-ts"

    def get_ordering(self, request, queryset, view):
        return ("ts",) if view.query["order"] == "oldest" else ("-ts",)

    def get_page_size(self, request):
        return self.view_query["page_size"]

    def paginate_queryset(self, queryset, request, view=None):
        self.view_query = view.query
        return super().paginate_queryset(queryset, request, view)


class ReadingsView(QueryMixin, ListAPIView):
    serializer_class = ReadingSerializer
    pagination_class = ReadingsCursorPagination
    query_serializer_class = ReadingsQuery
    filter_backends: list = []

    @extend_schema(summary="Raw readings of one or more sensors, cursor-paginated", tags=["readings"])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        query = self.query
        named = query["sensor"] or IdsAndKeys()
        sensor_ids = set(named.ids) | set(query["sensor_id"].ids if query["sensor_id"] else ())
        if named.keys:
            sensor_ids |= set(Sensor.objects.filter(key__in=named.keys).values_list("id", flat=True))
        return readings_queryset(sensor_ids=sorted(sensor_ids), start=query["start"], end=query["end"])
