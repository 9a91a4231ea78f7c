"""Metrics read at scrape time from where the truth lives: queue lengths from Redis, alert and notification
counts, the oldest waiting ingest batch, the rollups' watermark and the beat's last sends from PostgreSQL.
Reading them there keeps them right across any number of processes and restarts.

Times are exported as Unix timestamps (`..._timestamp_seconds`), and the alerting rules take their age with
`time() - ...` (docker/prometheus/alerts.yml); a timestamp is absent when there is nothing to date.
"""

from __future__ import annotations

import logging

import redis
from django.apps import apps
from django.conf import settings
from django.db import connection
from django.db.models import Min
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

logger = logging.getLogger(__name__)


class QueueDepthCollector:
    def collect(self):
        queues = [queue.name for queue in settings.CELERY_TASK_QUEUES]
        gauge = GaugeMetricFamily(
            "telemetry_celery_queue_depth", "Messages waiting in each Celery queue", labels=["queue"]
        )
        client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=2, socket_connect_timeout=2)
        try:
            with client.pipeline() as pipe:
                for queue in queues:
                    pipe.llen(queue)
                for queue, depth in zip(queues, pipe.execute(), strict=True):
                    gauge.add_metric([queue], depth)
        except redis.RedisError as exc:
            logger.warning("queue depth unavailable: %s", exc)
        finally:
            client.close()
        yield gauge


def _grouped_counts(sql: str) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


class AlertingCollector:
    """Alerts opened and resolved by severity, notifications by channel and outcome: counted from their tables
    (indexed columns, a handful of groups), so the figures are right whichever process did the work."""

    def collect(self):
        if apps.is_installed("apps.alerts") and _table_exists("alerts_alert"):
            opened = CounterMetricFamily("telemetry_alerts_opened", "Alerts opened, by severity", labels=["severity"])
            resolved = CounterMetricFamily(
                "telemetry_alerts_resolved", "Alerts resolved, by severity", labels=["severity"]
            )
            open_now = GaugeMetricFamily("telemetry_alerts_open", "Unresolved alerts, by severity", labels=["severity"])
            for severity, total, done in _grouped_counts(
                "SELECT severity, count(*), count(*) FILTER (WHERE state = 'resolved') FROM alerts_alert GROUP BY severity"
            ):
                opened.add_metric([severity], total)
                resolved.add_metric([severity], done)
                open_now.add_metric([severity], total - done)
            yield from (opened, resolved, open_now)
        if apps.is_installed("apps.notifications") and _table_exists("notifications_notification"):
            from apps.notifications.models import Channel, Notification

            notifications = CounterMetricFamily(
                "telemetry_notifications", "Notifications by channel and status", labels=["channel", "status"]
            )
            # Every pair is present, zeros included: a rule comparing a count with its value a while ago would
            # miss the first failure of a channel whose series did not exist yet.
            counts = dict.fromkeys(
                ((channel, status) for channel in Channel.values for status in Notification.Status.values), 0
            )
            for channel, status, total in _grouped_counts(
                "SELECT channel, status, count(*) FROM notifications_notification GROUP BY channel, status"
            ):
                counts[(channel, status)] = total
            for (channel, status), total in counts.items():
                notifications.add_metric([channel, status], total)
            yield notifications


def _table_exists(name: str) -> bool:
    return name in connection.introspection.table_names()


class BacklogCollector:
    """How far behind the background work is: the oldest ingest batch not stored yet, the rollups' watermark,
    and when the beat last sent each periodic task (django-celery-beat records it on the task's row)."""

    def collect(self):
        from django_celery_beat.models import PeriodicTask

        from apps.aggregates.selectors import rollup_source
        from apps.ingest.models import IngestBatch

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

        # On TimescaleDB the continuous aggregates' own policies keep the rollups, and there is no watermark.
        watermark = GaugeMetricFamily(
            "telemetry_rollup_watermark_timestamp_seconds",
            "Every ingest batch finished before this time is in the hourly and daily rollups (Unix time)",
        )
        source = rollup_source()
        if source.watermark is not None:
            watermark.add_metric([], source.watermark.timestamp())
        yield watermark

        beat = GaugeMetricFamily(
            "telemetry_beat_last_run_timestamp_seconds",
            "When the beat last sent each enabled periodic task (Unix time; the beat writes it every few minutes)",
            labels=["name", "task"],
        )
        for name, task, last_run_at in PeriodicTask.objects.filter(enabled=True, last_run_at__isnull=False).values_list(
            "name", "task", "last_run_at"
        ):
            beat.add_metric([name, task], last_run_at.timestamp())
        yield beat
