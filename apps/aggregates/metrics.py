"""Scrape-time rollup watermark for GET /metrics, added to operations' collectors by AggregatesConfig.ready."""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily

from apps.aggregates.selectors import rollup_source


class RollupWatermarkCollector:
    """How far behind the rollups are. On TimescaleDB the continuous aggregates' own policies keep them, and
    there is no watermark."""

    def collect(self):
        watermark = GaugeMetricFamily(
            "telemetry_rollup_watermark_timestamp_seconds",
            "Every ingest batch finished before this time is in the hourly and daily rollups (Unix time)",
        )
        source = rollup_source()
        if source.watermark is not None:
            watermark.add_metric([], source.watermark.timestamp())
        yield watermark
