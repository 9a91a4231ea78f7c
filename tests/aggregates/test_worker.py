"""The aggregation tasks through a real Celery worker over Redis: ingest to rollups, a large export to its file."""

from __future__ import annotations

from datetime import timedelta

import pytest
from celery import current_app
from django.core.files.storage import default_storage
from django.utils import timezone

from apps.aggregates.models import ExportJob, RollupHour
from tests.factories import API
from tests.ingest.helpers import post_readings

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_readings_posted_over_http_reach_the_rollups_through_the_beat_task(world, celery_worker, admin_api, wait_for):
    start = (timezone.now() - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    readings = [
        {"sensor": "env-001/temperature", "ts": (start + timedelta(minutes=m)).isoformat(), "value": 20 + m % 7}
        for m in range(120)
    ]
    batch_id = post_readings(admin_api, readings).json()["batch_id"]
    wait_for(lambda: admin_api.get(f"{API}/ingest/batches/{batch_id}/").json()["status"] == "done", timeout=20)

    outcome = current_app.send_task("aggregates.refresh_rollups").get(timeout=30)

    assert outcome["batches"] == 1

    hours = RollupHour.objects.filter(sensor=world.sensors["env-001/temperature"]).order_by("bucket")
    assert [(row.bucket, row.count) for row in hours] == [(start, 60), (start + timedelta(hours=1), 60)]


def test_a_large_export_is_written_by_the_worker_on_the_exports_queue_and_downloaded(
    world, celery_worker, admin_api, viewer_api, wait_for, settings
):
    settings.EXPORTS_SYNC_MAX_ROWS = 10
    readings = [
        {"sensor": "env-002/humidity", "ts": f"2026-06-01T10:{m:02d}:00Z", "value": 40 + m / 4} for m in range(60)
    ]
    batch_id = post_readings(admin_api, readings).json()["batch_id"]
    wait_for(lambda: admin_api.get(f"{API}/ingest/batches/{batch_id}/").json()["status"] == "done", timeout=20)

    response = viewer_api.get(
        f"{API}/exports/readings",
        {"sensor": "env-002/humidity", "start": "20260601", "end": "20260602", "format": "ndjson"},
    )
    assert response.status_code == 202, response.content
    job = wait_for(
        lambda: (body := viewer_api.get(response["Location"]).json())["status"] == "done" and body, timeout=30
    )

    try:
        download = viewer_api.get(job["download_url"])
        lines = b"".join(download.streaming_content).decode().splitlines()
        assert job["rows"] == len(lines) == 60
        assert lines[0] == '{"sensor":"env-002/humidity","ts":"2026-06-01T10:00:00Z","value":40.0}'
    finally:
        default_storage.delete(ExportJob.objects.get(pk=job["id"]).file)
