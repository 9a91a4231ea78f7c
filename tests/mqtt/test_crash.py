"""A bridge killed with SIGKILL while readings wait in its micro-batch: nothing was acknowledged, so the broker
delivers them again to the next bridge of the same session, and they are stored once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from django.conf import settings
from django.db import connection

from apps.ingest.models import IngestBatch, Reading
from apps.mqtt import topics
from tests.mqtt.broker import datagram, unique_client_id
from tests.worker import database_url

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def _start_bridge_process(client_id: str, log_path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url(connection.settings_dict),
        "REDIS_URL": settings.REDIS_URL,
        "MQTT_TOPIC_ROOT": settings.MQTT_TOPIC_ROOT,
        "MQTT_CLIENT_ID": client_id,
        "MQTT_SESSION_EXPIRY_S": "60",
        # Nothing is flushed by time while the test looks: only a crash can end this batch.
        "MQTT_BATCH_MAX_WAIT_S": "600",
        "LOG_FORMAT": "plain",
        "PYTHONUNBUFFERED": "1",
    }
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "manage.py", "mqtt_bridge"], cwd=settings.BASE_DIR, env=env, stdout=log, stderr=log
        )


def test_a_bridge_killed_with_readings_in_its_batch_loses_none_of_them(
    world, celery_worker, start_bridge, device_mqtt, wait_for, tmp_path
):
    client_id = unique_client_id("crash")
    log_path = tmp_path / "bridge.log"
    process = _start_bridge_process(client_id, log_path)
    try:
        wait_for(lambda: "subscribed to the device topics" in log_path.read_text(), timeout=30)
        meter = device_mqtt("dc-meter-001")
        for seq in (1, 2, 3):
            meter.publish(
                topics.TELEMETRY, datagram(seq, [("voltage_dc", 750.0 + seq)], ts=f"2026-02-12T16:00:0{seq}Z")
            )
        time.sleep(1.0)  # the bridge has them in its batch by now
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    assert not IngestBatch.objects.exists()

    bridge = start_bridge(client_id=client_id)

    voltage = world.sensors["dc-meter-001/voltage_dc"]
    wait_for(lambda: Reading.objects.filter(sensor=voltage).count() == 3, timeout=20)
    assert sorted(Reading.objects.filter(sensor=voltage).values_list("value", flat=True)) == [751.0, 752.0, 753.0]
    assert bridge.bridge.stats["received_telemetry"] == 3
