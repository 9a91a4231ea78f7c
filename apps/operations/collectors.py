"""Metrics read at scrape time from where the truth lives, which keeps them right across any number of
processes and restarts. Here: queue lengths from Redis and the beat's last sends. The apps that own other
figures register their collectors from their AppConfig.ready: alert counts (apps/alerts/metrics.py),
notification counts (apps/notifications/metrics.py), the oldest waiting ingest batch (apps/ingest/metrics.py)
and the rollups' watermark (apps/aggregates/metrics.py).

Times are exported as Unix timestamps (`..._timestamp_seconds`), and the alerting rules take their age with
`time() - ...` (docker/prometheus/alerts.yml); a timestamp is absent when there is nothing to date.
"""

from __future__ import annotations

import logging

import redis
from django.conf import settings
from prometheus_client.core import GaugeMetricFamily

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


# Collectors that the apps owning the figures add from their AppConfig.ready (register), read at each scrape
# with the ones of this module: operations never reaches into another app's tables itself.
_registered: list = []


def register(collector) -> None:
    """Add a scrape-time collector (an object with collect() yielding metric families), once per class."""
    if not any(type(existing) is type(collector) for existing in _registered):
        _registered.append(collector)


def scrape_collectors() -> list:
    return [QueueDepthCollector(), BeatCollector(), *_registered]


class BeatCollector:
    """When the beat last sent each periodic task (django-celery-beat records it on the task's row)."""

    def collect(self):
        from django_celery_beat.models import PeriodicTask

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
