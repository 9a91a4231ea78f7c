"""`POST /api/v2/write`: the InfluxDB v2 write API, so Telegraf and InfluxDB clients send readings unchanged.

A request becomes one ingest batch, queued like any other (docs/ingest.md): stored once, evaluated, with
per-reading rejects in the batch. Well-formed lines are written even when others are not; the answer is then
400 in InfluxDB's shape naming the bad lines, because Telegraf drops a batch answered 400 instead of sending
it again. docs/protocols.md describes the mapping and the answers.
"""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.permissions import request_device
from apps.core.fields import ChoiceField, QueryTextField
from apps.core.query import QueryMixin
from apps.influx.authentication import InfluxTokenAuthentication
from apps.influx.body import BadBody, BodyTooLarge, UnsupportedEncoding, read_body
from apps.influx.errors import InfluxError, influx_error_body, influx_exception_handler
from apps.influx.lineprotocol import LineError, decode_body
from apps.influx.mapping import PRECISIONS, TooManyReadings, normalize_lines
from apps.ingest.api import IngestView
from apps.ingest.services import batch_create
from apps.operations.throttling import WeightedRateThrottle

# How many refused lines a 400 names with their reasons (all of them are counted).
MAX_NAMED_LINES = 20


class LineReadingsThrottle(WeightedRateThrottle):
    """The readings budget of POST /api/v1/ingest/ (THROTTLE_RATES["ingest_readings"]), shared with it, so a
    sender has one budget whichever way it writes. A write weighs the readings its lines carry, known only
    once they are read."""

    scope = "ingest_readings"

    def __init__(self, readings: int) -> None:
        super().__init__()
        self.readings = readings

    def weight(self, request) -> int:
        return self.readings


def _error(name: str, fields: dict) -> OpenApiResponse:
    return OpenApiResponse(
        inline_serializer(name, {"code": serializers.CharField(), "message": serializers.CharField(), **fields})
    )


class WriteQuery(serializers.Serializer):
    org = QueryTextField(help_text="Accepted and ignored.")
    bucket = QueryTextField(help_text="Accepted and ignored.")
    precision = ChoiceField(choices=PRECISIONS, default="ns", help_text="Of the timestamps; default ns.")


class WriteView(QueryMixin, APIView):
    query_serializer_class = WriteQuery
    authentication_classes = [InfluxTokenAuthentication]
    parser_classes: list = []  # the body is read raw (apps/influx/body.py)
    write_role = IngestView.write_role  # who may send readings is ingest's rule
    device_actions = ("*",)
    ingest_actions = ("*",)  # gateways with the ingest role send readings here too

    def get_exception_handler(self):
        return influx_exception_handler

    @extend_schema(
        operation_id="influx_write",
        summary="Write line protocol (InfluxDB v2 API, for Telegraf and InfluxDB clients)",
        description=(
            "Authenticate with `Authorization: Token <API token or device key>`. Each field of a point is a "
            "reading of the sensor its name maps to on the device named by the point's device tag (a device "
            "key implies its own device). `Content-Encoding: gzip` is accepted. Answers 204, or 400 naming the "
            "refused lines after writing the others. See docs/protocols.md."
        ),
        request={"text/plain": OpenApiTypes.STR},
        responses={
            204: OpenApiResponse(description="Every line was taken; the Location header names the ingest batch."),
            400: _error("InfluxLineProtocolError", {"line": serializers.IntegerField(required=False)}),
            401: _error("InfluxUnauthorized", {}),
            403: _error("InfluxForbidden", {}),
            413: _error("InfluxLengthError", {"maxLength": serializers.IntegerField()}),
            415: _error("InfluxUnsupportedMediaType", {}),
            429: _error("InfluxTooManyRequests", {}),
        },
        tags=["ingest"],
    )
    def post(self, request):
        received_at = timezone.now()
        precision = self.query["precision"]  # a bad one is a 400 in InfluxDB's shape (influx_exception_handler)
        limit = settings.INFLUX_MAX_BODY_BYTES
        try:
            raw = read_body(request._request, limit=limit)
        except BodyTooLarge:
            raise InfluxError(
                413, f"The body is larger than {limit} bytes (after decompression); send smaller batches.",
                maxLength=limit,
            ) from None  # fmt: skip
        except UnsupportedEncoding as exc:
            raise InfluxError(415, f"Content-Encoding {exc} is not supported: send gzip or no encoding.") from None
        except BadBody as exc:
            raise InfluxError(400, str(exc)) from None
        text, invalid_utf8 = decode_body(raw)
        device = request_device(request)
        try:
            mapped = normalize_lines(
                text,
                invalid_utf8=invalid_utf8,
                precision=precision,
                received_at=received_at,
                sender_device_id=device.device_id if device is not None else None,
                device_tag=settings.INFLUX_DEVICE_TAG,
                max_readings=settings.INGEST_MAX_READINGS_PER_REQUEST,
                max_future_skew_s=settings.INGEST_MAX_FUTURE_SKEW_S,
            )
        except TooManyReadings as exc:
            raise InfluxError(
                413, f"More than {exc.limit} readings in one request; send smaller batches.", maxLength=limit
            ) from None
        headers = {}
        if mapped.batch:
            throttle = LineReadingsThrottle(len(mapped.batch))
            if not throttle.allow_request(request, self):
                self.throttled(request, throttle.wait())
            batch = batch_create(
                normalized=mapped.batch,
                received_at=received_at,
                device_pk=device.pk if device is not None else None,
                user_pk=None if device is not None else request.user.pk,
                request_id=request.headers.get("X-Request-ID", "")[:64],
            )
            headers["Location"] = f"/api/v1/ingest/batches/{batch.pk}/"
        if mapped.refused:
            message = refused_lines_message(mapped.errors, refused=mapped.refused, written=mapped.points)
            return Response(influx_error_body(400, message, line=mapped.errors[0].line), status=400, headers=headers)
        return Response(status=204, headers=headers)


def refused_lines_message(errors: list[LineError], *, refused: int, written: int) -> str:
    named = "; ".join(f"line {error.line}: {error.message}" for error in errors[:MAX_NAMED_LINES])
    more = f"; and {refused - MAX_NAMED_LINES} more" if refused > MAX_NAMED_LINES else ""
    return f"{refused} line(s) refused, {written} point(s) written. {named}{more}"
