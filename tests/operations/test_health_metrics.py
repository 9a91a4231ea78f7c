"""The metrics the alerting rules read (docker/prometheus/alerts.yml): how far behind the background work is,
when tasks last succeeded, and whether the MQTT bridge is connected."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from apps.aggregates.models import RollupState
from apps.ingest.models import IngestBatch
from apps.mqtt.config import broker_config, new_client
from apps.notifications.models import Channel, Notification
from tests.mqtt.broker import start_bridge, use_private_topic_root
from tests.operations.scrape import scrape, values
from workers.celery import app as celery_app

__all__ = ["start_bridge"]  # a fixture

use_private_topic_root()

pytestmark = pytest.mark.django_db

OLDEST = "telemetry_ingest_oldest_queued_batch_timestamp_seconds"
WATERMARK = "telemetry_rollup_watermark_timestamp_seconds"
BEAT = "telemetry_beat_last_run_timestamp_seconds"


def test_the_oldest_batch_not_stored_yet_is_dated_and_none_waiting_means_no_sample():
    now = timezone.now().replace(microsecond=0)
    assert values(scrape(), OLDEST) == []

    IngestBatch.objects.create(received_at=now - timedelta(hours=2), status=IngestBatch.Status.DONE)
    IngestBatch.objects.create(received_at=now - timedelta(hours=1), status=IngestBatch.Status.FAILED)
    IngestBatch.objects.create(received_at=now - timedelta(minutes=7), status=IngestBatch.Status.PROCESSING)
    IngestBatch.objects.create(received_at=now - timedelta(minutes=3), status=IngestBatch.Status.QUEUED)

    assert values(scrape(), OLDEST) == [(now - timedelta(minutes=7)).timestamp()]


def test_the_rollup_watermark_is_dated_once_the_refresh_has_run():
    assert values(scrape(), WATERMARK) == []
    watermark = timezone.now().replace(microsecond=0) - timedelta(minutes=2)
    RollupState.objects.create(watermark=watermark)

    assert values(scrape(), WATERMARK) == [watermark.timestamp()]


def test_the_beats_last_send_of_every_enabled_periodic_task_is_dated():
    every_minute = IntervalSchedule.objects.create(every=60, period=IntervalSchedule.SECONDS)
    sent = timezone.now().replace(microsecond=0) - timedelta(seconds=40)
    PeriodicTask.objects.create(
        name="rollups", task="aggregates.refresh_rollups", interval=every_minute, last_run_at=sent
    )
    PeriodicTask.objects.create(name="never sent", task="devices.check_connectivity", interval=every_minute)
    PeriodicTask.objects.create(
        name="switched off", task="ingest.purge_batches", interval=every_minute, last_run_at=sent, enabled=False
    )

    text = scrape()

    assert values(text, BEAT, name="rollups", task="aggregates.refresh_rollups") == [sent.timestamp()]
    assert values(text, BEAT, name="never sent") == []
    assert values(text, BEAT, name="switched off") == []


def test_notification_counts_have_every_channel_and_status_from_zero(world):
    text = scrape()

    for channel in Channel.values:
        for status in Notification.Status.values:
            assert values(text, "telemetry_notifications_total", channel=channel, status=status) == [0.0]


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_workers_tasks_are_counted_from_zero_and_their_last_success_is_dated(celery_worker):
    before = time.time()
    assert celery_app.send_task("housekeeping.ping").get(timeout=20) == "pong"

    text = scrape()

    [last_success] = values(text, "telemetry_celery_task_last_success_timestamp_seconds", task="housekeeping.ping")
    assert before <= last_success <= time.time()
    # Every task of ours has its failure series before it ever fails, so the first failure is an increase.
    for task in ("housekeeping.ping", "ingest.process_batch", "notifications.deliver"):
        assert values(text, "telemetry_celery_tasks_total", task=task, outcome="failure"), task
    assert values(text, "telemetry_celery_tasks_total", task="housekeeping.ping", outcome="failure") == [0.0]


def _connected() -> list[float]:
    return values(scrape(), "telemetry_mqtt_connected")


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_the_bridge_reports_whether_it_is_connected_to_the_broker(world, start_bridge, settings, wait_for):
    settings.MQTT_RECONNECT_MIN_DELAY_S = 1
    bridge = start_bridge()
    assert _connected() == [1.0]

    # Another client taking over the bridge's session makes the broker drop the bridge's connection.
    intruder = new_client(client_id=bridge.bridge.options.client_id, config=broker_config())
    config = broker_config()
    intruder.connect(config.host, config.port, clean_start=False)
    intruder.loop_start()
    try:
        wait_for(lambda: _connected() == [0.0], timeout=10)
    finally:
        intruder.disconnect()
        intruder.loop_stop()

    wait_for(lambda: _connected() == [1.0], timeout=15)
    bridge.stop()
    assert _connected() == [0.0]
