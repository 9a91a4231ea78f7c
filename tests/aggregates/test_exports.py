"""Exports of readings and aggregates: streamed files that parse back to the stored values, and large
exports through a background job with a download link."""

from __future__ import annotations

import csv
import io
import json
import time
import tracemalloc
from datetime import timedelta

import openpyxl
import pytest
from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from django.utils import timezone

from apps.accounts.roles import Role
from apps.aggregates.exports import export_job_create, export_job_run, export_plan, export_query, exports_sweep
from apps.aggregates.models import ExportJob
from apps.aggregates.services import rollups_refresh
from apps.core.errors import ApplicationError
from apps.ingest.resolution import clear_cache
from tests.aggregates.helpers import at, insert_raw, raw_buckets, series, store
from tests.concurrency import at_once
from tests.factories import API, assert_error_shape, make_device, make_location, make_sensor, make_user, token_client

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
    assert anonymous_api.get(status["download_url"]).status_code == 401  # the link alone is not enough
    download = viewer_api.get(status["download_url"])
    assert download.status_code == 200
    assert parse(format, content(download)) == stored_readings("env-001/temperature", "env-002/temperature")
    assert export_job_run(export_id=job["id"]) is None  # a second delivery does nothing


def done_job(api, params: dict | None = None) -> dict:
    """An export job of `api`'s user, written, as its status shows it (with the download link)."""
    params = params or {"sensor_type": "temperature", "start": "20260504", "end": "20260505"}
    response = api.get(READINGS, params)
    assert response.status_code == 202, response.content
    export_job_run(export_id=response.json()["id"])
    return api.get(response.json()["url"]).json()


def test_export_jobs_are_private_and_downloads_need_the_signed_link_and_the_owner(
    stored, viewer_api, admin_api, anonymous_api, device_api, small_sync_limit
):
    done = done_job(viewer_api)
    link = done["download_url"]
    unsigned = f"{API}/exports/jobs/{done['id']}/download"
    other = token_client(make_user("other-viewer", Role.VIEWER)[1])

    assert [item["id"] for item in viewer_api.get(f"{API}/exports/jobs/").json()["results"]] == [done["id"]]
    assert admin_api.get(f"{API}/exports/jobs/").json()["count"] == 1
    assert other.get(done["url"]).status_code == 404
    assert viewer_api.get(link).status_code == 200
    assert admin_api.get(link).status_code == 200
    for client, url, status in [
        (anonymous_api, link, 401),
        (anonymous_api, unsigned, 401),
        (other, link, 403),
        (device_api, link, 403),
        (viewer_api, unsigned, 403),  # no unsigned download, not even for the owner
        (admin_api, unsigned, 403),
        (viewer_api, unsigned + "?signature=1xYdCR:forged", 403),
    ]:
        response = client.get(url)
        assert response.status_code == status, (client, url, response.content)
        assert_error_shape(response)
    assert "signature" in viewer_api.get(unsigned).json()["errors"]


def test_the_signature_of_one_job_does_not_open_another(stored, viewer_api, small_sync_limit):
    first = done_job(viewer_api)
    second = done_job(viewer_api, {"sensor": "env-001/temperature", "start": "20260504", "end": "20260505"})
    signature = first["download_url"].split("signature=", 1)[1]

    response = viewer_api.get(f"{API}/exports/jobs/{second['id']}/download", {"signature": signature})

    assert response.status_code == 403
    assert_error_shape(response, "signature")


def test_a_job_whose_creator_was_deleted_downloads_for_admins_only(
    stored, viewer_api, admin_api, device_api, small_sync_limit
):
    done = done_job(viewer_api)
    get_user_model().objects.filter(username="viewer").delete()
    assert ExportJob.objects.get(pk=done["id"]).created_by_id is None
    other = token_client(make_user("other-viewer", Role.VIEWER)[1])

    assert device_api.get(done["download_url"]).status_code == 403
    assert other.get(done["download_url"]).status_code == 403
    assert admin_api.get(f"{API}/exports/jobs/{done['id']}/download").status_code == 403
    assert admin_api.get(done["download_url"]).status_code == 200


def test_a_link_stops_working_at_the_jobs_expiry_even_before_the_sweep(stored, viewer_api, small_sync_limit):
    done = done_job(viewer_api)
    ExportJob.objects.filter(pk=done["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))

    response = viewer_api.get(done["download_url"])

    assert response.status_code == 410
    assert ExportJob.objects.get(pk=done["id"]).status == "done"  # the sweep has not run


def test_a_link_older_than_the_jobs_lifetime_is_refused(stored, viewer_api, small_sync_limit, monkeypatch, settings):
    done = done_job(viewer_api)
    lifetime = timedelta(hours=settings.EXPORTS_EXPIRE_HOURS)
    real_time = time.time
    # A link made longer ago than the job lives (its expiry was moved out since, say).
    monkeypatch.setattr("django.core.signing.time.time", lambda: real_time() - lifetime.total_seconds() - 60)
    stale = viewer_api.get(done["url"]).json()["download_url"]
    monkeypatch.setattr("django.core.signing.time.time", real_time)

    assert viewer_api.get(stale).status_code == 410
    assert viewer_api.get(viewer_api.get(done["url"]).json()["download_url"]).status_code == 200


def test_expired_exports_lose_their_file(stored, viewer_api, small_sync_limit):
    done = done_job(viewer_api)
    job = ExportJob.objects.get(pk=done["id"])
    assert default_storage.exists(job.file)

    swept = exports_sweep(now=job.expires_at + timedelta(seconds=1))

    assert swept["expired"] == 1
    assert not default_storage.exists(job.file)
    assert ExportJob.objects.get(pk=done["id"]).status == "expired"
    assert viewer_api.get(done["download_url"]).status_code == 410


def test_a_user_has_at_most_a_few_export_jobs_queued_or_running(
    stored, viewer_api, admin_api, small_sync_limit, settings, monkeypatch
):
    monkeypatch.setattr("apps.aggregates.exports.enqueue_export", lambda *, export_id: None)
    settings.EXPORTS_MAX_ACTIVE_JOBS_PER_USER = 2
    params = {"sensor_type": "temperature", "start": "20260504", "end": "20260505"}
    first, second = (viewer_api.get(READINGS, params) for _ in range(2))
    assert (first.status_code, second.status_code) == (202, 202)
    ExportJob.objects.filter(pk=second.json()["id"]).update(status="running")

    refused = viewer_api.get(READINGS, params)

    assert refused.status_code == 429, refused.content
    assert "EXPORTS_MAX_ACTIVE_JOBS_PER_USER=2" in assert_error_shape(refused)["detail"]
    assert ExportJob.objects.count() == 2
    assert admin_api.get(READINGS, params).status_code == 202  # per user
    export_job_run(export_id=first.json()["id"])  # done: no longer counts
    assert viewer_api.get(READINGS, params).status_code == 202
    ExportJob.objects.filter(status__in=["queued", "running"]).update(status="failed")
    assert viewer_api.get(READINGS, params).status_code == 202


@pytest.mark.django_db(transaction=True)
def test_requests_at_the_same_moment_cannot_pass_the_quota_together(world, settings, monkeypatch):
    monkeypatch.setattr("apps.aggregates.exports.enqueue_export", lambda *, export_id: None)
    settings.EXPORTS_MAX_ACTIVE_JOBS_PER_USER = 1
    user, _ = make_user("viewer", Role.VIEWER)
    kind = ExportJob.Kind.READINGS
    plan = export_plan(kind, export_query(kind, {"sensor": "env-001/temperature"}))
    outcomes = at_once(lambda: export_job_create(plan=plan, format="csv", user_id=user.pk), 4)

    refused = [outcome for outcome in outcomes if isinstance(outcome, ApplicationError)]
    assert [error.status_code for error in refused] == [429, 429, 429]
    assert ExportJob.objects.count() == 1


@pytest.mark.parametrize(
    ("path", "params", "fields"),
    [
        (READINGS, {"sensor_type": "temperature", "start": "20260504", "end": "20260505"}, ["start", "end"]),
        (AGGREGATES, {"sensor_type": "temperature", "interval": "minute", "start": "20260504"}, ["interval"]),
        (
            AGGREGATES,
            {"sensor_type": "temperature", "interval": "minute", "start": "20260504", "group_by": "all"},
            ["interval"],
        ),
    ],
)
def test_exports_of_more_rows_than_the_cap_are_refused_naming_the_parameter(
    stored, viewer_api, settings, path, params, fields
):
    settings.EXPORTS_MAX_ROWS = 300  # the readings hold 320; a day of minutes is 1,440 per series

    response = viewer_api.get(path, params)

    assert response.status_code == 400, response.content
    body = assert_error_shape(response, *fields)
    assert "EXPORTS_MAX_ROWS" in body["detail"]
    assert not ExportJob.objects.exists()
    assert (
        viewer_api.get(
            path, {**params, "interval": "hour"} if path == AGGREGATES else {**params, "sensor": "env-001/temperature"}
        ).status_code
        == 200
    )


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


@pytest.fixture
def formula_like(world):
    """Names people typed that spreadsheets would run: a site "=HYPERLINK(...)" with sensors keyed "@SUM(1+1)"
    and "-2+3", reading values below zero."""
    site = make_location('=HYPERLINK("http://example.com/x","open")', kind="factory")
    device, _ = make_device("frost-01", location=site)
    for key in ("@SUM(1+1)", "-2+3"):
        make_sensor(device, world.sensor_types["temperature"], key=key, channel=key[:1].replace("@", "a"))
    clear_cache()
    store([("@SUM(1+1)", START + MINUTE * n, value) for n, value in enumerate([-12.5, -7.0, -1.25])])
    store([("-2+3", START + MINUTE * n, value) for n, value in enumerate([-3.0, -4.5])])
    return site


def test_csv_cells_that_would_start_a_formula_get_an_apostrophe_and_numbers_stay_numbers(formula_like, viewer_api):
    params = {"sensor": "@SUM(1+1),-2+3", "start": "20260504", "end": "20260505", "tz": "UTC"}

    readings_csv = content(viewer_api.get(READINGS, {**params, "format": "csv"})).decode()
    aggregates_csv = content(
        viewer_api.get(AGGREGATES, {**params, "format": "csv", "group_by": "location", "interval": "day"})
    ).decode()

    rows = list(csv.reader(io.StringIO(readings_csv)))
    assert [(row[0], row[2]) for row in rows] == [
        ("sensor", "value"),
        ("'-2+3", "-3.0"),
        ("'-2+3", "-4.5"),
        ("'@SUM(1+1)", "-12.5"),
        ("'@SUM(1+1)", "-7.0"),
        ("'@SUM(1+1)", "-1.25"),
    ]
    (header, row) = list(csv.reader(io.StringIO(aggregates_csv)))
    assert row[header.index("location_path")] == "'" + formula_like.full_path
    assert row[header.index("min")] == "-12.5"


def test_xlsx_text_is_written_as_strings_never_formulas_and_numbers_stay_numbers(formula_like, viewer_api):
    params = {"sensor": "@SUM(1+1),-2+3", "start": "20260504", "end": "20260505", "tz": "UTC", "format": "xlsx"}

    readings_xlsx = content(viewer_api.get(READINGS, params))
    aggregates_xlsx = content(viewer_api.get(AGGREGATES, {**params, "group_by": "location", "interval": "day"}))

    sheet = openpyxl.load_workbook(io.BytesIO(readings_xlsx)).worksheets[0]
    assert [(row[0].value, row[0].data_type, row[2].value, row[2].data_type) for row in sheet.iter_rows(min_row=2)] == [
        ("-2+3", "s", -3.0, "n"),
        ("-2+3", "s", -4.5, "n"),
        ("@SUM(1+1)", "s", -12.5, "n"),
        ("@SUM(1+1)", "s", -7.0, "n"),
        ("@SUM(1+1)", "s", -1.25, "n"),
    ]
    sheet = openpyxl.load_workbook(io.BytesIO(aggregates_xlsx)).worksheets[0]
    header = [cell.value for cell in next(sheet.iter_rows(max_row=1))]
    (row,) = sheet.iter_rows(min_row=2)
    path = row[header.index("location_path")]
    assert (path.value, path.data_type) == (formula_like.full_path, "s")  # not a formula: data_type would be "f"
    minimum = row[header.index("min")]
    assert (minimum.value, minimum.data_type) == (-12.5, "n")
