"""Without Redis the API goes on: throttles let requests through, configuration saves go through, ingest
answers 202 with the batch kept in PostgreSQL, and the requeue beat sends it once Redis is back.

Each test runs against a Redis of its own (tests/services.py), stopped and started by the test, with the
Django cache and a fresh Celery app pointed at it; the shared Redis is never touched.
"""

from __future__ import annotations

import base64
import logging

import orjson
import pytest
import redis
from django.test import override_settings

from apps.core import redis_outage
from apps.ingest.models import IngestBatch, LatestReading
from apps.ingest.pipeline import batch_process
from apps.ingest.services import batch_requeue_stale
from tests.factories import API
from tests.ingest.helpers import post_readings
from tests.operations.test_metrics import _value, scrape
from tests.services import PrivateRedis
from tests.worker import celery_app_on

pytestmark = pytest.mark.django_db

TINY_RATES = {"token": "1/minute", "device": "1/minute", "ingest_readings": "1/minute"}
NO_RATES = {"token": None, "device": None, "ingest_readings": None}


@pytest.fixture
def private_redis(tmp_path, settings):
    """A Redis of the test's own behind the Django cache and the current Celery app; no memory of earlier
    Redis failures in this process, and a failure is not remembered (each call tries Redis)."""
    server = PrivateRedis(tmp_path / "redis").start()
    url = server.url(0)
    settings.CACHES = {
        **settings.CACHES,
        "default": {**settings.CACHES["default"], "LOCATION": url},
    }
    settings.REDIS_URL = url
    settings.REDIS_RETRY_AFTER_S = 0
    redis_outage.reset()
    try:
        with celery_app_on(url):
            yield server
    finally:
        server.stop()
        redis_outage.reset()


def queued_batch_ids(server: PrivateRedis) -> list[str]:
    """Batch ids of the process_batch messages waiting in the private broker's ingest queue."""
    client = redis.Redis.from_url(server.url(0))
    try:
        messages = [orjson.loads(raw) for raw in client.lrange("ingest", 0, -1)]
    finally:
        client.close()
    # kombu's Redis transport keeps the task's (args, kwargs, embed) base64-encoded in "body".
    return [orjson.loads(base64.b64decode(message["body"]))[0][0] for message in messages]


@override_settings(THROTTLE_RATES=TINY_RATES)
def test_ingest_answers_202_without_redis_and_the_requeue_beat_sends_the_batch_once_it_is_back(
    world, device_api, private_redis
):
    private_redis.stop()

    answers = [
        post_readings(device_api, {"sensor": "env-001/temperature", "ts": f"2026-02-12T16:00:0{n}Z", "value": 20.0 + n})
        for n in range(3)
    ]

    # Over the (tiny) limits, yet accepted: the throttles could not count, so they let the requests through.
    assert [answer.status_code for answer in answers] == [202, 202, 202]
    batch_ids = [answer.json()["batch_id"] for answer in answers]
    queued = IngestBatch.objects.filter(status="queued").values_list("pk", flat=True)
    assert sorted(str(pk) for pk in queued) == sorted(batch_ids)

    private_redis.start()
    assert queued_batch_ids(private_redis) == []  # nothing reached the broker while it was down
    assert batch_requeue_stale(older_than_s=0) == 3

    assert sorted(queued_batch_ids(private_redis)) == sorted(batch_ids)


@override_settings(THROTTLE_RATES=TINY_RATES)
def test_throttles_fail_open_with_one_log_line_and_a_count_per_request(world, viewer_api, private_redis, caplog):
    before = _value(scrape(), "telemetry_redis_fallbacks_total", operation="throttle")
    private_redis.stop()

    with caplog.at_level(logging.WARNING, logger="apps.core.redis_outage"):
        answers = [viewer_api.get(f"{API}/locations/").status_code for _ in range(4)]

    assert answers == [200, 200, 200, 200]
    assert _value(scrape(), "telemetry_redis_fallbacks_total", operation="throttle") == before + 4
    warnings = [record for record in caplog.records if "Redis unavailable (throttle)" in record.getMessage()]
    assert len(warnings) == 1  # rate-limited: one line, not one per request

    private_redis.start()
    assert [viewer_api.get(f"{API}/locations/").status_code for _ in range(2)] == [200, 429]


@override_settings(THROTTLE_RATES=TINY_RATES)
def test_after_a_failure_redis_is_left_alone_for_a_while_then_tried_again(world, viewer_api, private_redis, settings):
    settings.REDIS_RETRY_AFTER_S = 3600
    private_redis.stop()
    assert viewer_api.get(f"{API}/locations/").status_code == 200  # the failure that opens the breaker
    private_redis.start()

    # Redis is back, but this process does not ask it yet: the limit is not enforced.
    assert [viewer_api.get(f"{API}/locations/").status_code for _ in range(3)] == [200, 200, 200]

    redis_outage.reset()
    assert [viewer_api.get(f"{API}/locations/").status_code for _ in range(2)] == [200, 429]


@override_settings(THROTTLE_RATES=NO_RATES)  # only the cache bump of the save reaches Redis
def test_configuration_saves_go_through_without_redis_and_batches_then_resolve_afresh(
    world, admin_api, device_api, private_redis
):
    temperature = world.sensors["env-001/temperature"]
    first = post_readings(device_api, {"sensor": temperature.key, "ts": "2026-02-12T16:00:00Z", "value": 120.0})
    batch_process(batch_id=first.json()["batch_id"])  # caches the sensor with its range (-50..150)
    assert LatestReading.objects.get(sensor=temperature).value == 120.0
    private_redis.stop()

    changed = admin_api.patch(
        f"{API}/sensor-types/{world.sensor_types['temperature'].pk}/", {"plausible_max": 100.0}, format="json"
    )
    assert changed.status_code == 200, changed.content

    second = post_readings(device_api, {"sensor": temperature.key, "ts": "2026-02-12T16:01:00Z", "value": 110.0})
    assert second.status_code == 202
    outcome = batch_process(batch_id=second.json()["batch_id"])

    # The generation could not be read, so the batch resolved its sensors afresh and saw the new range.
    assert (outcome.stored, dict(outcome.rejected_by_reason)) == (0, {"out_of_range": 1})
