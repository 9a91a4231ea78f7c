"""Metrics read at scrape time from where the truth lives: queue lengths from Redis, alert and notification
counts from PostgreSQL. Reading them there keeps them right across any number of processes and restarts."""

from __future__ import annotations

import logging

import redis
from django.apps import apps
from django.conf import settings
from django.db import connection
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
            notifications = CounterMetricFamily(
                "telemetry_notifications", "Notifications by channel and status", labels=["channel", "status"]
            )
            for channel, status, total in _grouped_counts(
                "SELECT channel, status, count(*) FROM notifications_notification GROUP BY channel, status"
            ):
                notifications.add_metric([channel, status], total)
            yield notifications


def _table_exists(name: str) -> bool:
    return name in connection.introspection.table_names()
