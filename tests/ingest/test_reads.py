"""GET /api/v1/realtime/ and /api/v1/readings/, the CSV import, and the TimescaleDB statements."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from apps.ingest.models import IngestBatch, Reading
from apps.ingest.pipeline import batch_process
from apps.ingest.timescale import hypertable_statements, is_hypertable, timescaledb_available
from tests.factories import API, assert_error_shape, make_device, make_sensor
from tests.ingest.helpers import ingest

pytestmark = pytest.mark.django_db

REALTIME = f"{API}/realtime/"
READINGS = f"{API}/readings/"


def _now_iso(seconds_ago: int = 0) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds_ago)).isoformat()


def _statuses(client, query: str = "") -> dict[str, str]:
    response = client.get(f"{REALTIME}{query}")
    assert response.status_code == 200, response.content
    return {row["sensor"]: row["status"] for row in response.json()["results"]}


def test_realtime_status_against_thresholds_and_overrides(world, admin_api, viewer_api):
    ingest(
        admin_api,
        [
            {"sensor": "dc-meter-001/voltage_dc", "ts": _now_iso(5), "value": 750},  # inside 700..800
            {"sensor": "dc-meter-001/current_dc", "ts": _now_iso(5), "value": 3},  # no threshold for current
            {"sensor": "env-001/temperature", "ts": _now_iso(5), "value": 33},  # above warning 30
            {"sensor": "env-002/temperature", "ts": _now_iso(5), "value": 33},  # override raises warning to 35
            {"sensor": "env-001/humidity", "ts": _now_iso(3600), "value": 40},  # older than the stale age
        ],
    )

    statuses = _statuses(viewer_api)

    assert statuses == {
        "dc-meter-001/voltage_dc": "normal",
        "dc-meter-001/current_dc": "normal",
        "env-001/temperature": "warning",
        "env-002/temperature": "normal",
        "env-001/humidity": "stale",
        "env-002/humidity": "stale",  # never reported
    }

    ingest(admin_api, {"sensor": "env-002/temperature", "ts": _now_iso(1), "value": 41})
    ingest(admin_api, {"sensor": "dc-meter-001/voltage_dc", "ts": _now_iso(1), "value": 640})
    statuses = _statuses(viewer_api)
    assert statuses["env-002/temperature"] == "critical"
    assert statuses["dc-meter-001/voltage_dc"] == "critical"  # below critical_low 650


def test_realtime_disabled_mapping_switches_the_threshold_off_for_that_sensor(world, admin_api):
    world.mapping.enabled = False
    world.mapping.save()
    ingest(admin_api, {"sensor": "env-002/temperature", "ts": _now_iso(1), "value": 45})
    assert _statuses(admin_api)["env-002/temperature"] == "normal"


def test_realtime_rows_carry_the_contract_fields(world, admin_api):
    ingest(admin_api, {"sensor": "env-001/temperature", "ts": "2026-02-12T16:00:00Z", "value": 20.5})
    row = next(r for r in admin_api.get(REALTIME).json()["results"] if r["sensor"] == "env-001/temperature")
    assert row["sensor_id"] == world.sensors["env-001/temperature"].pk
    assert (row["ts"], row["value"], row["status"]) == ("2026-02-12T16:00:00Z", 20.5, "stale")


@override_settings(REALTIME_STALE_AFTER_S=10**9)
def test_realtime_filters(world, admin_api):
    ingest(
        admin_api,
        [
            {"sensor": "env-001/temperature", "ts": "2026-02-12T16:00:00Z", "value": 33},
            {"sensor": "env-002/temperature", "ts": "2026-02-12T16:00:00Z", "value": 20},
        ],
    )
    assert set(_statuses(admin_api, f"?location={world.building_b.pk}")) == {"env-002/temperature", "env-002/humidity"}
    assert set(_statuses(admin_api, "?sensor_type=temperature")) == {"env-001/temperature", "env-002/temperature"}
    assert set(_statuses(admin_api, "?device=env-001")) == {"env-001/temperature", "env-001/humidity"}
    assert set(_statuses(admin_api, f"?device={world.devices['env-001'].pk}")) == {
        "env-001/temperature",
        "env-001/humidity",
    }
    assert set(_statuses(admin_api, "?status=warning")) == {"env-001/temperature"}
    assert set(_statuses(admin_api, "?status=normal,warning")) == {"env-001/temperature", "env-002/temperature"}
    page = admin_api.get(f"{REALTIME}?page_size=2&page=2").json()
    assert (page["count"], len(page["results"])) == (6, 2)


@pytest.mark.parametrize("query", ["?status=purple", "?location=999999", "?page_size=0", "?page=x", "?location=abc"])
def test_realtime_bad_filters_are_400(world, admin_api, query):
    response = admin_api.get(f"{REALTIME}{query}")
    assert response.status_code == 400
    assert_error_shape(response)


def test_realtime_query_count_does_not_grow_with_sensors(world, admin_api):
    def queries_for_full_page() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = admin_api.get(f"{REALTIME}?page_size=1")  # a partial page also needs the count query
        assert response.status_code == 200
        return len(queries)

    few = queries_for_full_page()
    for number in range(60):
        device, _ = make_device(f"many-{number:03d}", location=world.area_a1_north)
        make_sensor(device, world.sensor_types["temperature"])
    many = queries_for_full_page()

    # token and role (2), the page and the total (2), whatever the number of sensors
    assert few == many == 4
    assert admin_api.get(REALTIME).json()["count"] == 66


def _ingest_series(admin_api, key: str, minutes: int) -> None:
    base = datetime(2026, 2, 12, 16, tzinfo=UTC)
    ingest(
        admin_api,
        [{"sensor": key, "ts": (base + timedelta(minutes=m)).isoformat(), "value": float(m)} for m in range(minutes)],
    )


def test_readings_by_sensor_and_range_newest_first_with_cursor_pages(world, admin_api, viewer_api):
    _ingest_series(admin_api, "env-001/temperature", 10)
    _ingest_series(admin_api, "env-002/temperature", 10)

    response = viewer_api.get(
        f"{READINGS}?sensor=env-001/temperature&start=2026-02-12T16:02:00Z&end=2026-02-12T16:08:00Z&page_size=4"
    )
    body = response.json()
    assert [r["value"] for r in body["results"]] == [7.0, 6.0, 5.0, 4.0]
    assert body["results"][0] == {
        "sensor": "env-001/temperature",
        "sensor_id": world.sensors["env-001/temperature"].pk,
        "ts": "2026-02-12T16:07:00Z",
        "value": 7.0,
    }
    rest = viewer_api.get(body["next"]).json()
    assert [r["value"] for r in rest["results"]] == [3.0, 2.0]
    assert rest["next"] is None

    both = viewer_api.get(
        f"{READINGS}?sensor=env-001/temperature,env-002/temperature&order=oldest&page_size=100"
    ).json()
    assert len(both["results"]) == 20 and both["results"][0]["value"] == 0.0


def test_readings_accept_dates_as_yyyymmdd(world, admin_api):
    _ingest_series(admin_api, "env-001/temperature", 3)
    sensor_id = world.sensors["env-001/temperature"].pk
    body = admin_api.get(f"{READINGS}?sensor_id={sensor_id}&start=20260212&end=20260213").json()
    assert len(body["results"]) == 3
    assert admin_api.get(f"{READINGS}?sensor_id={sensor_id}&start=20260213").json()["results"] == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("", "sensor"),
        ("?sensor=env-001/temperature&start=noon", "start"),
        ("?sensor_id=x", "sensor_id"),
        ("?sensor=a&order=up", "order"),
        ("?sensor=a&page_size=0", "page_size"),
        ("?sensor=a&page_size=ten", "page_size"),
        (f"?sensor={2**63}", "sensor"),
        ("?sensor=a&end=2026-02-30", "end"),
    ],
)
def test_readings_bad_queries_are_400_naming_the_parameter(world, admin_api, query, field):
    response = admin_api.get(f"{READINGS}{query}")
    assert response.status_code == 400
    assert_error_shape(response, field)


def test_device_keys_cannot_read(world, device_api):
    assert device_api.get(REALTIME).status_code == 403
    assert device_api.get(f"{READINGS}?sensor=env-001/temperature").status_code == 403


CSV = """sensor,ts,value
env-001/temperature,2026-01-01T00:00:00Z,20.5
env-001/temperature,2026-01-01T00:01:00Z,20.7
env-002/humidity,2026-01-01T00:00:00Z,55
nope/nope,2026-01-01T00:00:00Z,1
"""


def test_import_command_loads_csv_idempotently(world, tmp_path):
    path = tmp_path / "readings.csv"
    path.write_text(CSV)
    out = io.StringIO()

    call_command("import_readings", str(path), stdout=out)
    call_command("import_readings", str(path), stdout=out)

    assert Reading.objects.count() == 3
    lines = out.getvalue().splitlines()
    assert "rows 4, stored 3, duplicates 0, rejected 1" in lines[0]
    assert "rows 4, stored 0, duplicates 3, rejected 1" in lines[-1]
    assert world.devices["env-001"].last_seen is None  # history says nothing about the device being online


def test_import_command_skips_malformed_lines_and_names_them(world, tmp_path):
    path = tmp_path / "readings.csv"
    path.write_text("sensor,ts,value\nenv-001/temperature,yesterday,1\nenv-001/temperature,2026-01-01T00:00:00Z,2\n")
    err = io.StringIO()
    call_command("import_readings", str(path), stdout=io.StringIO(), stderr=err)
    assert "line 2" in err.getvalue()
    assert Reading.objects.count() == 1


def test_import_through_the_api_queues_batches(world, operator_api, viewer_api):
    upload = io.BytesIO(CSV.encode())
    upload.name = "readings.csv"
    response = operator_api.post(f"{API}/ingest/import/", {"file": upload}, format="multipart")

    assert response.status_code == 202, response.content
    assert response.json()["rows"] == 4
    for batch in response.json()["batches"]:
        batch_process(batch_id=batch["batch_id"])
    assert Reading.objects.count() == 3
    assert IngestBatch.objects.filter(source="import", status="done").count() == 1

    upload = io.BytesIO(b"sensor,when\n")
    upload.name = "bad.csv"
    bad = operator_api.post(f"{API}/ingest/import/", {"file": upload}, format="multipart")
    assert bad.status_code == 400
    assert_error_shape(bad, "file")
    assert viewer_api.post(f"{API}/ingest/import/", {}, format="multipart").status_code == 403


def test_plain_postgresql_here_and_the_hypertable_sql_it_would_issue():
    # This machine kind has no TimescaleDB: the readings table must be a plain table.
    assert not timescaledb_available(connection)
    assert not is_hypertable(connection)
    statements = hypertable_statements(chunk_days=1, compress_after_days=7, retention_days=90)
    assert statements[0] == "CREATE EXTENSION IF NOT EXISTS timescaledb"
    assert "create_hypertable('ingest_reading', 'ts', chunk_time_interval => interval '1 days'" in statements[1]
    assert "timescaledb.compress_segmentby = 'sensor_id'" in statements[2]
    assert "add_compression_policy('ingest_reading', interval '7 days'" in statements[3]
    assert "add_retention_policy('ingest_reading', interval '90 days'" in statements[4]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"page": "1e20"}, "page"),
        ({"page": str(10**20)}, "page"),  # an offset beyond bigint
        ({"page": str(2**63 // 1000 + 2)}, "page"),
        ({"page": "0"}, "page"),
        ({"page_size": str(10**30)}, "page_size"),
        ({"page_size": "x"}, "page_size"),
    ],
)
def test_realtime_paging_out_of_range_is_a_400_naming_the_parameter(world, viewer_api, params, field):
    response = viewer_api.get(REALTIME, params)

    assert response.status_code == 400, response.content
    assert_error_shape(response, field)


def test_realtime_past_the_last_row_is_an_empty_page(world, viewer_api):
    body = viewer_api.get(REALTIME, {"page": str(2**63 // 1000 + 1)}).json()
    assert (body["count"], body["results"]) == (len(world.sensors), [])
