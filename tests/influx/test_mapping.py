"""Points to readings: device, channel and field mapping, the sender's device, value kinds and the bounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apps.influx.mapping import TooManyReadings, normalize_lines
from apps.ingest.adapters import to_epoch_us
from apps.ingest.payload import device_field_ref
from apps.ingest.pipeline import EARLIEST_TS

RECEIVED_AT = datetime(2026, 2, 12, 16, 0, tzinfo=UTC)
RECEIVED_US = to_epoch_us(RECEIVED_AT)
T_S = int(RECEIVED_AT.timestamp()) - 60  # a minute before the receive time, in seconds


def normalize(text: str, *, precision: str = "s", sender: str | None = None, tag: str = "device", limit: int = 100):
    return normalize_lines(
        text,
        precision=precision,
        received_at=RECEIVED_AT,
        sender_device_id=sender,
        device_tag=tag,
        max_readings=limit,
        max_future_skew_s=300,
    )


def readings(mapped) -> list[tuple[str, int, float | None, int]]:
    batch = mapped.batch
    return [(batch.refs[batch.r[n]], batch.t[n], batch.v[n], batch.i[n]) for n in range(len(batch))]


def test_each_field_is_a_reading_of_the_device_named_by_the_device_tag():
    mapped = normalize(f"env,device=env-001,host=gw temperature=21.5,humidity=40i {T_S}")
    assert readings(mapped) == [
        (device_field_ref("env-001", "temperature"), (T_S * 1_000_000), 21.5, 1),
        (device_field_ref("env-001", "humidity"), (T_S * 1_000_000), 40.0, 1),
    ]
    assert (mapped.points, mapped.errors) == (1, [])


def test_the_device_tag_is_configurable():
    mapped = normalize(f"env,device=wrong,plc=env-001 temperature=1 {T_S}", tag="plc")
    assert readings(mapped)[0][0] == device_field_ref("env-001", "temperature")


def test_the_channel_tag_picks_the_sensor_channel():
    mapped = normalize(f"meter,device=dc-meter-001,channel=2 voltage_dc=750 {T_S}")
    assert readings(mapped)[0][0] == device_field_ref("dc-meter-001", "voltage_dc", "2")


def test_a_field_named_value_takes_the_measurement_name():
    mapped = normalize(f"temperature,device=env-001 value=21.5 {T_S}")
    assert readings(mapped)[0][0] == device_field_ref("env-001", "temperature")


def test_string_and_boolean_fields_become_not_a_number_readings_with_what_they_held():
    mapped = normalize(f'opcua,device=env-001 temperature=21.5,Quality="OK (0x0)",running=true {T_S}')
    assert [value for _, _, value, _ in readings(mapped)] == [21.5, None, None]
    assert mapped.batch.bad == {"1": "string field: 'OK (0x0)'", "2": "boolean field: True"}


def test_a_point_without_device_tag_is_refused_for_a_token_and_is_the_senders_for_a_device_key():
    text = f"env temperature=21.5 {T_S}"
    refused = normalize(text)
    assert len(refused.batch) == 0
    assert refused.errors[0].line == 1 and "no 'device' tag" in refused.errors[0].message

    own = normalize(text, sender="env-001")
    assert readings(own)[0][0] == device_field_ref("env-001", "temperature")


def test_a_device_key_may_not_write_another_devices_point():
    mapped = normalize(
        f"env,device=env-001 temperature=1 {T_S}\nenv,device=env-002 temperature=2 {T_S}", sender="env-001"
    )
    assert [ref for ref, *_ in readings(mapped)] == [device_field_ref("env-001", "temperature")]
    (error,) = mapped.errors
    assert error.line == 2
    assert "own device (env-001), not 'env-002'" in error.message


@pytest.mark.parametrize(
    "precision, stamp",
    [("s", T_S), ("ms", T_S * 1000), ("us", T_S * 1_000_000), ("ns", T_S * 1_000_000_000 + 999)],
)
def test_every_precision_lands_on_the_same_instant(precision, stamp):
    mapped = normalize(f"env,device=env-001 temperature=1 {stamp}", precision=precision)
    assert readings(mapped)[0][1] == T_S * 1_000_000  # microseconds, the stored resolution (ns truncated)


def test_a_point_without_timestamp_takes_the_receive_time():
    assert readings(normalize("env,device=env-001 temperature=1"))[0][1] == RECEIVED_US


def test_timestamps_before_2000_are_refused_with_a_hint_at_the_precision():
    just_before = int((EARLIEST_TS - timedelta(seconds=1)).timestamp())
    mapped = normalize(f"env,device=env-001 temperature=1 {T_S}\nenv,device=env-001 temperature=2 {just_before}")
    assert len(mapped.batch) == 1
    assert mapped.errors[0].line == 2 and "is the precision right" in mapped.errors[0].message


def test_seconds_sent_as_nanoseconds_are_refused():
    mapped = normalize(f"env,device=env-001 temperature=1 {T_S}", precision="ns")
    assert len(mapped.batch) == 0 and "before 2000-01-01" in mapped.errors[0].message


def test_timestamps_beyond_the_future_skew_are_refused():
    limit = int(RECEIVED_AT.timestamp()) + 300
    mapped = normalize(f"env,device=env-001 temperature=1 {limit}\nenv,device=env-001 temperature=2 {limit + 1}")
    assert len(mapped.batch) == 1
    assert mapped.errors[0].line == 2 and "in the future" in mapped.errors[0].message


@pytest.mark.parametrize(
    "line, what",
    [
        (r"env,device=env\x00 temperature=1", "device"),
        ("env,device=env-001,channel=a\x07 temperature=1", "channel"),
        ("env,device=env-001 temp\x1fx=1,humidity=2 ", "field"),
        (f"env,device={'d' * 301} temperature=1", "device"),
    ],
)
def test_names_with_control_characters_or_too_long_refuse_their_line(line, what):
    mapped = normalize(line.replace(r"\x00", "\x00"))
    assert len(mapped.batch) == 0
    assert mapped.errors[0].message.startswith(what)


def test_malformed_lines_are_reported_and_the_others_kept():
    mapped = normalize(f"env,device=env-001 temperature=1 {T_S}\nnot line protocol\nenv,device=env-002 humidity=2")
    assert len(mapped.batch) == 2
    assert [error.line for error in mapped.errors] == [2]
    assert mapped.points == 2


def test_more_readings_than_the_limit_are_refused_as_soon_as_they_are_counted():
    four = "\n".join(f"env,device=env-001 temperature={n},humidity={n}" for n in range(2))
    assert len(normalize(four, limit=4).batch) == 4
    with pytest.raises(TooManyReadings):
        normalize(four + "\nenv,device=env-001 temperature=9", limit=4)


def test_every_refused_line_is_counted_and_the_first_hundred_kept_with_their_reasons():
    mapped = normalize("\n".join(["bad"] * 150 + [f"env,device=env-001 temperature=1 {T_S}"]))
    assert (mapped.refused, len(mapped.errors), len(mapped.batch)) == (150, 100, 1)
    assert [error.line for error in mapped.errors] == list(range(1, 101))
