"""Property: whatever JSON a client sends, the request is a 4xx in the error shape, or a 202 whose batch ends
`done` with every reading stored, a duplicate, or rejected with a reason. Never a 5xx, never a failed batch.

Requests go through the whole HTTP stack in process. Most batches are then processed by calling the task's
body here; a few go to the real worker over Redis.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.ingest.models import IngestBatch, Reading
from apps.ingest.pipeline import Reason, batch_process
from tests.factories import assert_error_shape, make_sensor, make_sensor_type
from tests.ingest.helpers import INGEST

KNOWN_KEYS = ["env-001/temperature", "env-001/humidity", "dc-meter-001/voltage_dc", "env-001/energy_wh"]
KNOWN_DEVICES = ["env-001", "dc-meter-001", "env-002"]
KNOWN_TYPES = ["temperature", "humidity", "voltage_dc", "current_dc", "energy_wh"]
KNOWN_FIELDS = ["temperature_c", "humidity", "energy_wh", "voltage_v"]

NASTY_TEXT = st.sampled_from(
    ["", " ", "\x00", "a\x00b", "\x1f", "dev\x1fx", "\x7f", "\u2028", "\ufeff", "é", "€" * 301]
)
TEXT = st.one_of(st.text(max_size=20), NASTY_TEXT)

NASTY_NUMBERS = st.sampled_from(
    [0, -0.0, 1e-320, 1e15, 1e15 + 1, -1e16, 1.5e308, -1.7e308, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 10**30]
)
NUMBERS = st.one_of(
    st.integers(), st.floats(allow_nan=False, allow_infinity=False), NASTY_NUMBERS, st.integers(-(2**70), 2**70)
)
VALUES = st.one_of(NUMBERS, st.sampled_from(["NaN", "inf", "-Infinity", "1e400", "n/a", "\x00", "12.5", " 7 "]), TEXT)

# Timestamps near every edge: the window (2000 to now + skew), the calendar (years 1 and 9999, also after an
# offset), epoch seconds against milliseconds, and numbers no clock gives.
OFFSETS = st.sampled_from([UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-14, minutes=-59))])
ISO_TIMES = st.builds(
    lambda moment, offset: moment.replace(tzinfo=offset).isoformat(),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    OFFSETS,
)
NASTY_TIMES = st.sampled_from(
    [
        "9999-12-31T23:00:00-05:00",
        "0001-01-01T00:00:00+05:00",
        "1999-12-31T23:59:59.999999Z",
        "2000-01-01T00:00:00Z",
        "2026-02-12T16:00:00",
        "2026-02-30T00:00:00Z",
        "yesterday",
        3e14,
        2.5e14,
        1e11,
        1e11 + 1,
        -1,
        1e308,
        -1e308,
        0,
    ]
)
TIMESTAMPS = st.one_of(
    ISO_TIMES,
    NASTY_TIMES,
    NUMBERS,
    st.just(None),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=1),
)
SEQS = st.one_of(st.integers(-5, 2**65), st.sampled_from([2**63 - 1, 2**63, 2**64]), st.none(), TEXT, st.floats())


def shapes(*, keys, devices, names, times, values, seqs, channels, complete: bool) -> st.SearchStrategy[dict]:
    """The three payload shapes with their fields drawn from the given pools; `complete` gives every item
    its required fields (otherwise any field may be missing)."""

    def fields(required: dict, optional: dict) -> st.SearchStrategy[dict]:
        if complete:
            return st.fixed_dictionaries(required, optional=optional)
        return st.fixed_dictionaries({}, optional={**required, **optional})

    single = fields({"sensor": keys, "value": values}, {"ts": times})
    measurement = fields({"type": names, "val": values}, {"ts": times, "channel": channels, "unit": TEXT})
    datagram = st.builds(
        lambda head, measurements: {**head, "measurements": measurements},
        fields(
            {"device_id": devices},
            {"ts": times, "seq": seqs, "v": st.integers(), "msg_type": st.sampled_from(["telemetry", "hello", ""])}
            if not complete
            else {"ts": times, "seq": seqs, "v": st.integers(), "msg_type": st.just("telemetry")},
        ),
        st.lists(measurement, min_size=1, max_size=4)
        if complete
        else st.one_of(st.lists(measurement, max_size=4), TEXT),
    )
    flat = st.builds(
        lambda head, measured: {**head, **measured},
        fields({"device_id": devices}, {"ts": times}),
        st.dictionaries(names, values, min_size=1 if complete else 0, max_size=4),
    )
    return st.one_of(single, datagram, flat)


# Anything at all in every field: mostly refused whole.
ADVERSARIAL = shapes(
    keys=st.one_of(st.sampled_from(KNOWN_KEYS), TEXT, NUMBERS),
    devices=st.one_of(st.sampled_from(KNOWN_DEVICES), TEXT),
    names=st.one_of(st.sampled_from(KNOWN_TYPES + KNOWN_FIELDS), TEXT),
    times=TIMESTAMPS,
    values=VALUES,
    seqs=SEQS,
    channels=st.one_of(st.sampled_from(["", "1", 2]), TEXT, st.integers()),
    complete=False,
)
# Well-formed but at the edges (time window, calendar, magnitudes, unknown names): mostly accepted, so the
# worker meets them.
PRINTABLE = st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cs", "Zs"]), min_size=1, max_size=20)
WINDOW_EDGES = [
    "1999-12-31T23:59:59.999999Z",
    "2000-01-01T00:00:00Z",
    "2000-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59.999999Z",
    "0001-01-01T00:00:00Z",
    2.5e14,
    1e11,
    1e11 + 1,
    -1,
    0,
]
RECENT = st.datetimes(min_value=datetime(1999, 12, 31), max_value=datetime(2026, 11, 30)).map(
    lambda moment: moment.isoformat() + "Z"
)
EPOCHS = st.one_of(st.floats(-1e10, 3e14), st.integers(0, 2**41))
WELL_FORMED = shapes(
    keys=st.one_of(st.sampled_from(KNOWN_KEYS), PRINTABLE),
    devices=st.sampled_from(KNOWN_DEVICES),
    names=st.one_of(st.sampled_from(KNOWN_TYPES + KNOWN_FIELDS), PRINTABLE),
    times=st.one_of(RECENT, EPOCHS, ISO_TIMES, st.sampled_from(WINDOW_EDGES), st.none()),
    values=st.one_of(NUMBERS, st.floats(-200, 2000), st.sampled_from(["NaN", "1e400", "n/a", "12.5", "\x00"])),
    seqs=st.one_of(st.integers(0, 2**63 - 1), st.sampled_from([0, 2**63 - 1])),
    channels=st.sampled_from(["", "1", "2"]),
    complete=True,
)


def requests_of(items: st.SearchStrategy[dict]) -> st.SearchStrategy:
    """A single object, a JSON array, or {"readings": [...]}."""
    return st.one_of(
        items,
        st.lists(items, max_size=6),
        st.builds(lambda readings: {"readings": readings}, st.lists(items, max_size=6)),
    )


JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=10))
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)

PROPERTY_SETTINGS = dict(
    deadline=None,  # a shared machine: a slow example is not a failure
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture
def plant(world):
    """The test world plus a sensor type without a plausible range, so huge values reach the magnitude bound."""
    make_sensor(world.devices["env-001"], make_sensor_type("energy_wh", unit="Wh"))
    return world


def _encode(body) -> bytes:
    # Infinite floats go out as the JSON text 1e999 (Python would write Infinity, which is not JSON at all).
    text = json.dumps(body, allow_nan=True)
    return text.replace("-Infinity", "-1e999").replace("Infinity", "1e999").encode()


def send(client, body):
    """POST the body; the answer is a 4xx in the error shape or a 202 with a queued batch."""
    response = client.generic("POST", INGEST, _encode(body), content_type="application/json")
    assert response.status_code == 202 or 400 <= response.status_code < 500, (response.status_code, body)
    if response.status_code != 202:
        assert_error_shape(response)
        return None
    return response.json()["batch_id"]


def assert_accounted_for(batch: IngestBatch, readings_before: int) -> None:
    """Done, and every reading stored, a duplicate, or rejected for a known reason, with the counts in step. None
    is `unstorable`: that is the worker's last defence, and the adapters must leave it nothing to do."""
    assert batch.status == IngestBatch.Status.DONE, (batch.status, batch.failure)
    assert batch.stored + batch.duplicates + batch.rejected == batch.received
    assert sum(batch.rejected_by_reason.values()) == batch.rejected
    assert set(batch.rejected_by_reason) <= set(Reason.ALL) - {Reason.UNSTORABLE}, batch.errors
    assert Reading.objects.count() == readings_before + batch.stored
    assert all(math.isfinite(value) for value in Reading.objects.values_list("value", flat=True))


def check_in_process(client, body) -> None:
    readings_before = Reading.objects.count()
    batch_id = send(client, body)
    if batch_id is not None:
        batch_process(batch_id=batch_id)
        assert_accounted_for(IngestBatch.objects.get(pk=batch_id), readings_before)


@pytest.mark.django_db
@settings(max_examples=100, **PROPERTY_SETTINGS)
@given(body=JSON_VALUES)
def test_any_json_value_is_a_4xx_or_a_batch_that_ends_done(plant, admin_api, body):
    check_in_process(admin_api, body)


@pytest.mark.django_db
@settings(max_examples=100, **PROPERTY_SETTINGS)
@given(body=requests_of(ADVERSARIAL))
def test_adversarial_readings_of_every_shape_are_a_4xx_or_accounted_for(plant, admin_api, body):
    check_in_process(admin_api, body)


@pytest.mark.django_db
@settings(max_examples=200, **PROPERTY_SETTINGS)
@given(body=requests_of(WELL_FORMED))
def test_well_formed_readings_at_every_edge_are_a_4xx_or_accounted_for(plant, admin_api, body):
    check_in_process(admin_api, body)


@pytest.mark.django_db
@settings(max_examples=50, **PROPERTY_SETTINGS)
@given(body=requests_of(st.one_of(ADVERSARIAL, WELL_FORMED)))
def test_a_device_key_sending_anything_gets_a_4xx_or_a_batch_that_ends_done(plant, device_api, body):
    check_in_process(device_api, body)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@settings(max_examples=8, **PROPERTY_SETTINGS)
@given(body=st.lists(WELL_FORMED, min_size=3, max_size=8))
def test_the_real_worker_ends_every_accepted_batch_done(plant, celery_worker, admin_api, wait_for, body):
    readings_before = Reading.objects.count()
    batch_id = send(admin_api, body)
    if batch_id is None:
        return
    batch = wait_for(
        lambda: IngestBatch.objects.filter(pk=batch_id).exclude(status__in=["queued", "processing"]).first(),
        timeout=30,
    )
    assert_accounted_for(batch, readings_before)
