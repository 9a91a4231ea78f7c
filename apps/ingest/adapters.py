"""Payload adapters: each turns one request item of its shape into normalised readings.

The request is checked here for structure only (types, required fields, timestamp syntax), in a tight loop
rather than a serializer per reading: this runs for every reading at tens of thousands per second. What needs
the database (does the sensor exist, is the value plausible) is the worker's job.

Whatever passes here must be storable or rejectable by the worker, never a reason for its batch to fail:
identifiers carry no control characters (PostgreSQL refuses NUL in text, and the references use \x1f as a
separator), timestamps are instants an ISO 8601 string can name (years 1 to 9999 in UTC), `seq` fits a
bigint, and values are finite floats. The worker then rejects, per reading and with a reason, timestamps
outside the accepted window and values beyond the magnitude the rollups can sum.

A new manufacturer format is one new class registered with `@register`; `detect` says whether an item has its
shape. Adapters are tried in registration order.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, ClassVar

from apps.ingest.payload import NormalizedBatch, device_field_ref, device_type_ref, key_ref
from apps.ingest.text import CONTROL_MESSAGE, MAX_TEXT, has_control, identifier_error, printable

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_BIGINT = 2**63 - 1
# The instants a timestamp may name at all: what an ISO 8601 string with a four-digit year can express, in UTC.
# Outside this it is not a timestamp (400); inside it but outside the accepted window, a counted reject.
TS_MIN_US = -62_135_596_800_000_000  # 0001-01-01T00:00:00Z
TS_MAX_US = 253_402_300_799_999_999  # 9999-12-31T23:59:59.999999Z
NOT_A_TIMESTAMP = "Not a timestamp: use ISO 8601 (2026-02-12T16:00:00Z) or epoch seconds or milliseconds."
_TIMESTAMP_TYPES = frozenset({str, int, float})


class ItemErrors(dict):
    """Structural errors of one request item, by field."""

    def add(self, field: str, message: str) -> None:
        self.setdefault(field, []).append(message)


class IngestContext:
    """What every adapter needs besides the item: the output, the receive time and who is sending."""

    def __init__(self, *, received_at: datetime, device_id: str | None, field_maps: dict[str, dict[str, str]]):
        self.batch = NormalizedBatch()
        self.received_at_us = to_epoch_us(received_at)
        self.device_id = device_id  # the external id behind a device key, or None for people/integrations
        self.field_maps = field_maps
        self._ts_cache: dict[Any, int] = {}

    def timestamp(self, raw: Any, errors: ItemErrors, field: str, default: int | None = None) -> int | None:
        """Microseconds since the epoch for an ISO 8601 string or an epoch number (s or ms); `default`
        when absent. Naive ISO times are taken as UTC."""
        if raw is None:
            return self.received_at_us if default is None else default
        if type(raw) not in _TIMESTAMP_TYPES:  # not isinstance: True is no timestamp, and this runs per reading
            errors.add(field, NOT_A_TIMESTAMP)
            return None
        cached = self._ts_cache.get(raw)
        if cached is not None:
            return cached
        parsed = parse_timestamp(raw)
        if parsed is None:
            errors.add(field, NOT_A_TIMESTAMP + " Years 1 to 9999 (UTC).")
            return None
        if len(self._ts_cache) < 10_000:
            self._ts_cache[raw] = parsed
        return parsed

    def check_own_device(self, device_id: str, errors: ItemErrors) -> None:
        if self.device_id is not None and device_id != self.device_id:
            errors.add("device_id", f"A device key may only send readings of its own device ({self.device_id}).")


def to_epoch_us(moment: datetime) -> int:
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def parse_timestamp(raw: Any) -> int | None:
    """Microseconds since the epoch, or None when `raw` names no instant between years 1 and 9999 (UTC)."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        if not math.isfinite(raw):
            return None
        # Epoch milliseconds are common from devices; anything past year 5138 in seconds is surely ms.
        seconds = raw / 1000 if raw > 1e11 else raw
        if not TS_MIN_US / 1_000_000 <= seconds <= TS_MAX_US / 1_000_000:
            return None
        return int(round(seconds * 1_000_000))
    if not isinstance(raw, str) or not 8 <= len(raw) <= 40:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        ts_us = to_epoch_us(moment)
    except OverflowError:
        return None
    # An offset can carry a time at the edge of the calendar past it (9999-12-31T23:00:00-05:00).
    return ts_us if TS_MIN_US <= ts_us <= TS_MAX_US else None


def value_of(raw: Any, errors: ItemErrors, field: str) -> tuple[bool, float | None]:
    """(ok, value): numbers pass, numeric strings are converted, other strings are kept as "not a number"
    for the worker to reject with that reason; booleans, objects and arrays are structural errors."""
    if isinstance(raw, bool) or isinstance(raw, dict | list):
        errors.add(field, "Must be a number.")
        return False, None
    if isinstance(raw, int | float | str):
        return True, finite_float(raw)
    if raw is None:
        return True, None
    errors.add(field, "Must be a number.")
    return False, None


def finite_float(raw: int | float | str) -> float | None:
    """The number as a float, or None when it is not one (text) or not finite (NaN, 1e400, 10**400)."""
    try:
        number = float(raw)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def text_of(item: dict, field: str, errors: ItemErrors, *, required: bool = True) -> str | None:
    raw = item.get(field)
    if raw is None:
        if required:
            errors.add(field, "This field is required.")
        return None
    if not isinstance(raw, str) or not raw.strip() or len(raw) > MAX_TEXT:
        errors.add(field, f"Must be a non-empty string of at most {MAX_TEXT} characters.")
        return None
    if not raw.isprintable() and has_control(raw):
        errors.add(field, CONTROL_MESSAGE)
        return None
    return raw


class PayloadAdapter:
    name: ClassVar[str]

    def detect(self, item: dict) -> bool:
        raise NotImplementedError

    def normalize(self, item: dict, index: int, context: IngestContext, errors: ItemErrors) -> int:
        """Append the item's readings to context.batch; returns how many it carried."""
        raise NotImplementedError


ADAPTERS: list[PayloadAdapter] = []


def register(cls: type[PayloadAdapter]) -> type[PayloadAdapter]:
    ADAPTERS.append(cls())
    return cls


@register
class SingleReadingAdapter(PayloadAdapter):
    """{"sensor": "dc-meter-001/voltage_dc", "ts": "...", "value": 752.3}"""

    name = "single"

    def detect(self, item: dict) -> bool:
        return "sensor" in item

    def normalize(self, item, index, context, errors) -> int:
        key = text_of(item, "sensor", errors)
        ts = context.timestamp(item.get("ts"), errors, "ts")
        if "value" not in item:
            errors.add("value", "This field is required.")
            return 1
        raw = item["value"]
        ok, value = value_of(raw, errors, "value")
        if key is None or ts is None or not ok:
            return 1
        if value is None:
            context.batch.note_bad_value(raw)
        context.batch.add(key_ref(key), ts, value, index)
        return 1


@register
class DeviceDatagramAdapter(PayloadAdapter):
    """The device datagram: {"v": 2, "device_id": ..., "ts": ..., "seq": 42, "msg_type": "telemetry",
    "measurements": [{"ts": ..., "type": "voltage_dc", "val": 752.3, "unit": "V", "channel": "1"}]}"""

    name = "datagram"

    def detect(self, item: dict) -> bool:
        return "measurements" in item

    def normalize(self, item, index, context, errors) -> int:
        device_id = text_of(item, "device_id", errors)
        if device_id is not None:
            context.check_own_device(device_id, errors)
        msg_type = item.get("msg_type", "telemetry")
        if msg_type != "telemetry":
            errors.add("msg_type", "Only telemetry datagrams carry readings.")
        seq = item.get("seq")
        if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= MAX_BIGINT):
            errors.add("seq", f"Must be an integer from 0 to {MAX_BIGINT}.")
        datagram_ts = context.timestamp(item.get("ts"), errors, "ts")
        measurements = item.get("measurements")
        if not isinstance(measurements, list) or not measurements:
            errors.add("measurements", "Must be a non-empty list.")
            return 1
        pending: list[tuple[str, str, int, float | None, object]] = []
        for position, measurement in enumerate(measurements):
            prefix = f"measurements[{position}]"
            if not isinstance(measurement, dict):
                errors.add(prefix, "Must be an object.")
                continue
            type_errors = ItemErrors()
            type_code = text_of(measurement, "type", type_errors)
            for message in type_errors.get("type", []):
                errors.add(f"{prefix}.type", message)
            channel = measurement.get("channel") or ""
            if channel:
                if isinstance(channel, bool) or not isinstance(channel, str | int):
                    errors.add(f"{prefix}.channel", "Must be a string.")
                    continue
                channel = str(channel)
                problem = identifier_error(channel)
                if problem is not None:
                    errors.add(f"{prefix}.channel", problem)
                    continue
            ts = context.timestamp(measurement.get("ts"), errors, f"{prefix}.ts", default=datagram_ts)
            if "val" not in measurement:
                errors.add(f"{prefix}.val", "This field is required.")
                continue
            raw = measurement["val"]
            ok, value = value_of(raw, errors, f"{prefix}.val")
            if ok and type_code is not None and ts is not None:
                pending.append((type_code, channel, ts, value, raw))
        if errors or device_id is None or datagram_ts is None:
            return len(measurements)
        group = context.batch.add_group(device_id, seq) if seq is not None else -1
        for type_code, channel, ts, value, raw in pending:
            if value is None:
                context.batch.note_bad_value(raw)
            context.batch.add(device_type_ref(device_id, type_code, channel), ts, value, index, group)
        return len(measurements)


@register
class FlatRecordAdapter(PayloadAdapter):
    """The flat record: {"device_id": "dev-1", "ts": "...", "temperature_c": 25.5, "humidity": 60.0}.

    Every numeric field (or numeric string) other than the reserved ones is a reading; its name is mapped to
    a sensor type by the device's adapter (Device.payload_adapter, maps in INGEST_FLAT_FIELD_MAPS). Null
    fields mean "not measured" and are skipped; text fields are descriptive and ignored.
    """

    name = "flat"
    RESERVED = frozenset(
        {"device_id", "ts", "timestamp", "time", "seq", "v", "msg_type", "unit", "location", "metadata"}
    )

    def detect(self, item: dict) -> bool:
        return "device_id" in item

    def normalize(self, item, index, context, errors) -> int:
        device_id = text_of(item, "device_id", errors)
        if device_id is not None:
            context.check_own_device(device_id, errors)
        ts = context.timestamp(item.get("ts", item.get("timestamp")), errors, "ts")
        readings: list[tuple[str, float]] = []
        for field_name, raw in item.items():
            if field_name in self.RESERVED or raw is None:
                continue
            if isinstance(raw, bool) or isinstance(raw, dict | list):
                errors.add(printable(field_name), "Must be a number.")
                continue
            if not isinstance(raw, str | int | float):
                continue
            number = finite_float(raw)
            if number is None:
                continue  # descriptive text, or a number too large to be a measurement
            problem = identifier_error(field_name)
            if problem is not None:
                errors.add(printable(field_name), f"Field name: {problem}")
                continue
            readings.append((field_name, number))
        if not readings and not errors:
            errors.add("non_field_errors", "A flat record needs at least one numeric measurement field.")
        if errors or device_id is None or ts is None:
            return max(len(readings), 1)
        for field_name, number in readings:
            context.batch.add(device_field_ref(device_id, field_name), ts, number, index)
        return len(readings)


def adapter_for(item: dict) -> PayloadAdapter | None:
    for adapter in ADAPTERS:
        if adapter.detect(item):
            return adapter
    return None
