"""Line protocol points to readings: which device and sensor each field is, and the bounds every reading keeps.

- The device is the point's device tag (`INFLUX_DEVICE_TAG`, default `device`). A device key speaks for its own
  device: a point without the tag is that device's, a point naming another device is refused.
- The optional `channel` tag picks the sensor's channel; other tags are ignored.
- Each field is a reading of the sensor its name maps to, exactly as a flat record's field: through the device's
  field map (`Device.payload_adapter`, `INGEST_FLAT_FIELD_MAPS`), or else as a sensor type code. A field named
  `value` takes the measurement's name instead (Telegraf's "value" data format, and the one-field style
  `temperature,device=d value=21.5`). Nothing else is tried: one name per field, so adding a sensor type never
  moves a field to another sensor.
- String and boolean fields are kept as "not a number" readings, which the worker rejects with that reason
  (or as an unknown sensor), so they are counted in the batch rather than dropped unseen.
- A point without a timestamp takes the receive time. A timestamp before 2000-01-01 or more than
  `INGEST_MAX_FUTURE_SKEW_S` after the receive time refuses the line: it is almost always a wrong precision.
- Names with control characters, or longer than the ingest adapters accept, refuse the line.

A refused line is reported (the API answers 400 naming it) and every other line still becomes readings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from apps.influx.lineprotocol import FieldValue, LineError, parse_lines
from apps.ingest.adapters import to_epoch_us
from apps.ingest.payload import NormalizedBatch, device_field_ref
from apps.ingest.pipeline import EARLIEST_TS, EARLIEST_TS_US
from apps.ingest.text import MAX_TEXT, has_control

CHANNEL_TAG = "channel"
VALUE_FIELD = "value"

# Timestamps of each precision to microseconds, the resolution readings are stored with.
TO_MICROSECONDS: dict[str, Callable[[int], int]] = {
    "ns": lambda stamp: stamp // 1000,
    "us": lambda stamp: stamp,
    "ms": lambda stamp: stamp * 1000,
    "s": lambda stamp: stamp * 1_000_000,
}
PRECISIONS = tuple(TO_MICROSECONDS)


class TooManyReadings(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} readings")
        self.limit = limit


# Refused lines kept with their reasons (all are counted): a body of nothing but bad lines stays cheap to hold.
MAX_KEPT_ERRORS = 100


@dataclass
class MappedLines:
    batch: NormalizedBatch
    errors: list[LineError] = field(default_factory=list)  # the first MAX_KEPT_ERRORS refused lines
    refused: int = 0
    points: int = 0

    def refuse(self, error: LineError) -> None:
        self.refused += 1
        if len(self.errors) < MAX_KEPT_ERRORS:
            self.errors.append(error)


def normalize_lines(
    text: str,
    *,
    invalid_utf8: bool = False,
    precision: str,
    received_at: datetime,
    sender_device_id: str | None,
    device_tag: str,
    max_readings: int,
    max_future_skew_s: int,
) -> MappedLines:
    """The readings of a line protocol body, and its refused lines. More than `max_readings` readings raise
    TooManyReadings as soon as they are counted, so an oversized body is not read to its end."""
    to_us = TO_MICROSECONDS[precision]
    received_us = to_epoch_us(received_at)
    latest_us = received_us + max_future_skew_s * 1_000_000
    mapped = MappedLines(batch=NormalizedBatch())
    batch, refuse = mapped.batch, mapped.refuse
    # Sensor references by (device, channel), then by field name: built and their names checked once each.
    refs: dict[tuple[str, str], dict[str, str]] = {}
    readings = 0
    for item in parse_lines(text, invalid_utf8=invalid_utf8):
        if type(item) is LineError:
            refuse(item)
            continue
        line, measurement, tags, fields, stamp = item
        device_id = tags.get(device_tag)
        if device_id is None:
            if sender_device_id is None:
                refuse(LineError(line, f"no {device_tag!r} tag: name the point's device in that tag"))
                continue
            device_id = sender_device_id
        elif sender_device_id is not None and device_id != sender_device_id:
            refuse(LineError(line, f"a device key writes only its own device ({sender_device_id}), not {device_id!r}"))
            continue
        channel = tags.get(CHANNEL_TAG, "")
        ts_us = received_us if stamp is None else to_us(stamp)
        if not EARLIEST_TS_US <= ts_us <= latest_us:
            refuse(LineError(line, _timestamp_problem(stamp, precision, ts_us < EARLIEST_TS_US)))
            continue
        device_refs = refs.get((device_id, channel))
        if device_refs is None:
            problem = _name_problem(device_tag, device_id) or _name_problem(CHANNEL_TAG, channel)
            if problem is not None:
                refuse(LineError(line, problem))
                continue
            device_refs = refs[(device_id, channel)] = {}
        point_refs = _field_refs(fields, measurement, device_refs, device_id, channel)
        if type(point_refs) is str:
            refuse(LineError(line, point_refs))
            continue
        readings += len(point_refs)
        if readings > max_readings:
            raise TooManyReadings(max_readings)
        mapped.points += 1
        for ref, (_, value) in zip(point_refs, fields, strict=True):
            kind = type(value)
            if kind is float:
                batch.add(ref, ts_us, value, line)
            elif kind is int:
                batch.add(ref, ts_us, float(value), line)
            else:
                batch.note_bad_value(f"{'boolean' if kind is bool else 'string'} field: {value!r}")
                batch.add(ref, ts_us, None, line)
    return mapped


def _field_refs(
    fields: list[tuple[str, FieldValue]], measurement: str, device_refs: dict[str, str], device_id: str, channel: str
) -> list[str] | str:
    """The sensor reference of each field, or what is wrong with a field's name."""
    point_refs = []
    for name, _ in fields:
        if name == VALUE_FIELD:
            name = measurement
        ref = device_refs.get(name)
        if ref is None:
            problem = _name_problem("field", name)
            if problem is not None:
                return problem
            ref = device_refs[name] = device_field_ref(device_id, name, channel)
        point_refs.append(ref)
    return point_refs


def _name_problem(what: str, name: str) -> str | None:
    if len(name) > MAX_TEXT:
        return f"{what} {name[:40]!r}... is longer than {MAX_TEXT} characters"
    if has_control(name):
        return f"{what} {name!r} contains a control character"
    return None


def _timestamp_problem(stamp: int | None, precision: str, too_early: bool) -> str:
    if too_early:
        return f"timestamp {stamp} ({precision}) is before {EARLIEST_TS.date()}: is the precision right?"
    return f"timestamp {stamp} ({precision}) is in the future: is the precision right, is the clock set?"
