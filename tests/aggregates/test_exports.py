"""Exports of readings and aggregates: streamed files that parse back to the stored values, and large
exports through a background job with a download link."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
from datetime import timedelta

import openpyxl
import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from apps.aggregates.exports import export_job_run, exports_sweep
from apps.aggregates.models import ExportJob
from apps.aggregates.services import rollups_refresh
from tests.aggregates.helpers import at, insert_raw, raw_buckets, series, store
from tests.factories import API, assert_error_shape

pytestmark = pytest.mark.django_db

MINUTE = timedelta(minutes=1)
READINGS = f"{API}/exports/readings"
AGGREGATES = f"{API}/exports/aggregates"
START = at("2026-05-04T00:00:00Z")


@pytest.fixture(autouse=True)
def exports_in_a_temporary_media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def stored(world):
    rollups_refresh()
    store(series("env-001/temperature", START, count=3 * 60, step=MINUTE, base=21))
    store(series("env-002/temperature", START + timedelta(minutes=30), count=120, step=MINUTE, base=24.125))
    rollups_refresh()
    store(series("env-001/temperature", START + timedelta(hours=3), count=20, step=MINUTE, base=19))
    return world


def content(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def parse(format: str, data: bytes) -> list[dict]:
    """Rows as dicts with numbers as numbers, whatever the format."""
    if format == "csv":
        rows = list(csv.DictReader(io.StringIO(data.decode())))
        return [{key: _number(value) for key, value in row.items()} for row in rows]
    if format == "ndjson":
        return [json.loads(line) for line in data.decode().splitlines()]
    workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    rows = [row for sheet in workbook.worksheets for row in sheet.iter_rows(values_only=True)]
    header = rows[0]
    return [dict(zip(header, row, strict=True)) for row in rows[1:] if row != header]


def _number(text: str):
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def stored_readings(*keys: str) -> list[dict]:
    from apps.ingest.models import Reading

    rows = (
        Reading.objects.filter(sensor__key__in=keys, ts__gte=START, ts__lt=START + timedelta(days=1))
        .order_by("sensor__key", "ts")
        .values_list("sensor__key", "ts", "value")
    )
    return [{"sensor": key, "ts": ts.isoformat().replace("+00:00", "Z"), "value": value} for key, ts, value in rows]


@pytest.mark.parametrize("format", ["csv", "ndjson", "xlsx"])
def test_readings_export_parses_back_to_the_stored_values(stored, viewer_api, format):
    response = viewer_api.get(
        READINGS, {"format": format, "sensor_type": "temperature", "start": "20260504", "end": "20260505", "tz": "UTC"}
    )

    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith(
        {"csv": "text/csv", "ndjson": "application/x-ndjson"}.get(format, "application/vnd.openxml")
    )
    assert response["Content-Disposition"] == f'attachment; filename="readings-20260504-20260505.{format}"'
    rows = parse(format, content(response))
    assert rows == stored_readings("env-001/temperature", "env-002/temperature")
    assert len(rows) == 3 * 60 + 120 + 20


@pytest.mark.parametrize("format", ["csv", "ndjson", "xlsx"])
@pytest.mark.parametrize("group_by", ["sensor", "location", "all"])
def test_aggregates_export_parses_back_to_the_same_values(stored, viewer_api, format, group_by):
    params = {
        "sensor_type": "temperature", "interval": "hour", "start": "2026-05-04T00:10:00Z",
        "end": "2026-05-04T03:15:00Z", "tz": "UTC", "group_by": group_by,
    }  # fmt: skip
    answer = viewer_api.get(f"{API}/aggregates/", params).json()

    response = viewer_api.get(AGGREGATES, {**params, "format": format})

    assert response.status_code == 200, response.content
    rows = parse(format, content(response))
    expected = [
        {
            **{"sensor": {"sensor": item["sensor"]}, "location": {"location": item["location"], "location_path": item["location_path"]}, "all": {}}[group_by],
            **bucket,
        }
        for item in answer["series"]
        for bucket in item["buckets"]
    ]  # fmt: skip
    assert len(rows) == len(expected) > 0
    for row, want in zip(rows, expected, strict=True):
        assert row.keys() == want.keys()
        for key, value in want.items():
            assert row[key] == (pytest.approx(value, rel=1e-14) if isinstance(value, float) else value), key


def test_aggregates_export_agrees_with_raw(stored, viewer_api):
    env1 = stored.sensors["env-001/temperature"]
    response = viewer_api.get(
        AGGREGATES,
        {
            "sensor": env1.key,
            "interval": "hour",
            "start": "20260504",
            "end": "20260505",
            "format": "ndjson",
            "tz": "UTC",
        },
    )
    rows = parse("ndjson", content(response))
    raw = raw_buckets([env1.pk], interval="hour", tz="UTC", start=START, end=START + timedelta(days=1))
    assert [(row["bucket"], row["count"]) for row in rows] == [
        (bucket.isoformat().replace("+00:00", "Z"), values[4]) for (_, bucket), values in sorted(raw.items())
    ]


def test_streamed_export_memory_stays_flat(world, viewer_api, settings):
    """100,000 rows stream through in chunks: Python's peak allocation stays far below the file's size."""
    settings.EXPORTS_SYNC_MAX_ROWS = 1_000_000
    sensor = world.sensors["dc-meter-001/voltage_dc"]
    insert_raw(sensor.pk, START, count=100_000, step=timedelta(seconds=1), base=700)
    response = viewer_api.get(READINGS, {"sensor": sensor.key, "start": "20260504", "end": "20260507", "format": "csv"})
    assert response.status_code == 200

    tracemalloc.start()
    try:
        size = lines = 0
        for chunk in response.streaming_content:
            size += len(chunk)
            lines += chunk.count(b"\n")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert lines == 100_001
    assert size > 4_000_000
    # Held in memory at once, the rows alone would take over 20 MB (tuples of str, datetime, float).
    assert peak < 3_000_000, peak


@pytest.fixture
def small_sync_limit(settings):
    settings.EXPORTS_SYNC_MAX_ROWS = 50


@pytest.mark.parametrize("format", ["csv", "ndjson", "xlsx"])
def test_a_large_export_goes_through_the_task_path(
    stored, viewer_api, anonymous_api, small_sync_limit, format, django_capture_on_commit_callbacks, monkeypatch
):
    queued = []
    monkeypatch.setattr("apps.aggregates.exports.enqueue_export", lambda *, export_id: queued.append(export_id))
    params = {"format": format, "sensor_type": "temperature", "start": "20260504", "end": "20260505", "tz": "UTC"}

    with django_capture_on_commit_callbacks(execute=True):
        response = viewer_api.get(READINGS, params)

    assert response.status_code == 202, response.content
    job = response.json()
    assert (job["status"], job["download_url"], job["estimated_rows"]) == ("queued", None, 320)
    assert response["Location"] == job["url"]
    assert queued == [job["id"]]

    export_job_run(export_id=job["id"])  # the task's body

    status = viewer_api.get(job["url"], {"format": format}).json()  # a format carried along is ignored
    assert (status["status"], status["rows"]) == ("done", 320)
    assert status["expires_at"] > status["finished_at"]
    download = anonymous_api.get(status["download_url"])  # the link alone is enough
    assert download.status_code == 200
    assert parse(format, content(download)) == stored_readings("env-001/temperature", "env-002/temperature")
    assert export_job_run(export_id=job["id"]) is None  # a second delivery does nothing


def test_export_jobs_are_private_and_links_must_be_signed(
    stored, viewer_api, admin_api, anonymous_api, small_sync_limit
):
    job = viewer_api.get(READINGS, {"sensor_type": "temperature", "start": "20260504", "end": "20260505"}).json()
    export_job_run(export_id=job["id"])
    done = viewer_api.get(job["url"]).json()
    download = f"{API}/exports/jobs/{job['id']}/download"

    assert [item["id"] for item in viewer_api.get(f"{API}/exports/jobs/").json()["results"]] == [job["id"]]
    assert admin_api.get(f"{API}/exports/jobs/").json()["count"] == 1
    from tests.factories import make_user, token_client

    other = token_client(make_user("other-viewer", __import__("apps.accounts.roles", fromlist=["Role"]).Role.VIEWER)[1])
    assert other.get(job["url"]).status_code == 404
    assert other.get(download).status_code == 403
    assert anonymous_api.get(download).status_code == 401
    assert anonymous_api.get(download, {"signature": "forged"}).status_code == 401
    assert viewer_api.get(download).status_code == 200
    assert admin_api.get(download).status_code == 200
    assert anonymous_api.get(done["download_url"]).status_code == 200


def test_expired_exports_lose_their_file(stored, viewer_api, anonymous_api, small_sync_limit):
    job = viewer_api.get(READINGS, {"sensor_type": "temperature", "start": "20260504", "end": "20260505"}).json()
    export_job_run(export_id=job["id"])
    done = ExportJob.objects.get(pk=job["id"])
    link = viewer_api.get(job["url"]).json()["download_url"]
    assert default_storage.exists(done.file)

    swept = exports_sweep(now=done.expires_at + timedelta(seconds=1))

    assert swept["expired"] == 1
    assert not default_storage.exists(done.file)
    assert ExportJob.objects.get(pk=job["id"]).status == "expired"
    assert anonymous_api.get(link).status_code == 410


def test_the_sweep_queues_again_jobs_that_lost_their_worker(stored, viewer_api, small_sync_limit, monkeypatch):
    queued = []
    monkeypatch.setattr("apps.aggregates.exports.enqueue_export", lambda *, export_id: queued.append(export_id))
    job = viewer_api.get(READINGS, {"sensor_type": "temperature", "start": "20260504", "end": "20260505"}).json()
    ExportJob.objects.filter(pk=job["id"]).update(status="running", lease_until=timezone.now() - timedelta(seconds=1))

    assert exports_sweep() == {"expired": 0, "requeued": 1}
    assert queued == [job["id"]]
    assert export_job_run(export_id=job["id"]).status == "done"  # an expired lease may be taken over


def test_a_job_whose_query_no_longer_holds_fails_for_good(stored, viewer_api, small_sync_limit):
    job = viewer_api.get(READINGS, {"sensor": "env-001/temperature", "start": "20260504", "end": "20260505"}).json()
    stored.sensors["env-001/temperature"].delete()

    result = export_job_run(export_id=job["id"])

    assert result.status == "failed" and "Unknown sensor" in result.error
    assert viewer_api.get(job["url"]).json()["status"] == "failed"


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        (READINGS, {"format": "pdf"}, "format"),
        (READINGS, {"format": "json"}, "format"),
        (READINGS, {"start": "20260505", "end": "20260504"}, "end"),
        (AGGREGATES, {"interval": "decade"}, "interval"),
        (AGGREGATES, {"functions": "mode"}, "functions"),
        (AGGREGATES, {"tz": "Nowhere/City"}, "tz"),
    ],
)
def test_bad_export_requests_are_400_naming_the_parameter(world, viewer_api, path, params, field):
    response = viewer_api.get(path, {"sensor": "env-001/temperature", **params})

    assert response.status_code == 400, response.content
    assert_error_shape(response, field)


@pytest.mark.parametrize(("principal", "expected"), [("anonymous", 401), ("device", 403), ("viewer", 200)])
def test_who_may_export(world, api_as, principal, expected):
    assert api_as(principal).get(READINGS, {"sensor": "env-001/temperature"}).status_code == expected
