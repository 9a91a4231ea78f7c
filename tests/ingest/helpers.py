"""Posting readings and processing their batch the way the worker does, for tests of the ingest path."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rest_framework.test import APIClient

from apps.ingest.models import IngestBatch, LatestReading, Reading
from apps.ingest.partitions import Partition, day_of_datetime, partitions_list
from apps.ingest.pipeline import batch_process
from tests.factories import API

INGEST = f"{API}/ingest/"


def post_readings(client: APIClient, body: Any):
    return client.post(INGEST, body, format="json")


def ingest(client: APIClient, body: Any) -> IngestBatch:
    """POST readings, expect 202, run the batch's task body here, and return the finished batch."""
    response = post_readings(client, body)
    assert response.status_code == 202, response.content
    batch_process(batch_id=response.json()["batch_id"])
    return IngestBatch.objects.get(pk=response.json()["batch_id"])


def stored_values(sensor) -> list[tuple[str, float]]:
    return [
        (reading.ts.isoformat().replace("+00:00", "Z"), reading.value)
        for reading in Reading.objects.filter(sensor=sensor).order_by("ts")
    ]


def latest(sensor) -> tuple[str, float] | None:
    row = LatestReading.objects.filter(sensor=sensor).first()
    return (row.ts.isoformat().replace("+00:00", "Z"), row.value) if row else None


def partition_covering(moment: datetime) -> Partition | None:
    """The readings partition whose range holds `moment`."""
    day = day_of_datetime(moment)
    found = [p for p in partitions_list() if p.start_day <= day < p.end_day]
    assert len(found) <= 1, found
    return found[0] if found else None
