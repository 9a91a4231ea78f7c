"""Scrape-time ingest backlog for GET /metrics, added to operations' collectors by IngestConfig.ready."""

from __future__ import annotations

from django.db.models import Min
from prometheus_client.core import GaugeMetricFamily

from apps.ingest.models import IngestBatch


class IngestBacklogCollector:
    """How far behind storing is: when the oldest ingest batch not stored yet arrived."""

    def collect(self):
        oldest = GaugeMetricFamily(
            "telemetry_ingest_oldest_queued_batch_timestamp_seconds",
            "When the oldest ingest batch not stored yet (queued or processing) arrived (Unix time)",
        )
        waiting = IngestBatch.objects.filter(
            status__in=[IngestBatch.Status.QUEUED, IngestBatch.Status.PROCESSING]
        ).aggregate(oldest=Min("received_at"))["oldest"]
        if waiting is not None:
            oldest.add_metric([], waiting.timestamp())
        yield oldest
