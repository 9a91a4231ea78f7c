"""Scrape-time alert counts for GET /metrics, added to operations' collectors by AlertsConfig.ready."""

from __future__ import annotations

from django.db import connection
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


class AlertsCollector:
    """Alerts opened and resolved by severity, counted from their table (an indexed column, a handful of
    groups), so the figures are right whichever process did the work."""

    def collect(self):
        opened = CounterMetricFamily("telemetry_alerts_opened", "Alerts opened, by severity", labels=["severity"])
        resolved = CounterMetricFamily("telemetry_alerts_resolved", "Alerts resolved, by severity", labels=["severity"])
        open_now = GaugeMetricFamily("telemetry_alerts_open", "Unresolved alerts, by severity", labels=["severity"])
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT severity, count(*), count(*) FILTER (WHERE state = 'resolved') FROM alerts_alert GROUP BY severity"
            )
            rows = cursor.fetchall()
        for severity, total, done in rows:
            opened.add_metric([severity], total)
            resolved.add_metric([severity], done)
            open_now.add_metric([severity], total - done)
        yield from (opened, resolved, open_now)
