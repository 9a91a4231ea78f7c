"""Anomaly alerts through the real worker over Redis: readings posted over HTTP, stored, evaluated by both
passes, and the anomaly alert delivered to a signed webhook with its expected band and score."""

from __future__ import annotations

import pytest

from apps.alerts.models import Alert
from apps.anomaly.models import AnomalyRule
from tests.alerts.helpers import make_subscription, readings
from tests.alerts.test_anomalies import TEMP, calm
from tests.alerts.test_end_to_end import SECRET, evaluated, post, settle  # noqa: F401 (fixture)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_an_anomaly_reaches_a_signed_webhook_and_resolves_back_at_baseline(
    world, celery_worker, admin_api, receiver, wait_for
):
    AnomalyRule.objects.create(
        sensor_type=world.sensors[TEMP].sensor_type, warmup_readings=30, warmup_s=0, seasonality="off"
    )
    make_subscription(channels=[{"type": "webhook", "target": receiver.url}], secret=SECRET)

    evaluated(post(admin_api, readings(TEMP, *calm(0, 40))), wait_for)
    assert not Alert.objects.exists()
    evaluated(post(admin_api, readings(TEMP, *[(60.0 * i, 28.0) for i in range(40, 44)])), wait_for)

    (request,) = wait_for(receiver.received, timeout=20)
    assert request.signature_valid(SECRET)
    body = request.json()
    assert (body["type"], body["alert"]["kind"], body["alert"]["sensor"]) == ("alert.opened", "anomaly", TEMP)
    assert body["event"]["expected_low"] < 22.0 < body["event"]["expected_high"] < 28.0
    assert body["event"]["score"] >= 1.0

    evaluated(post(admin_api, readings(TEMP, *calm(44, 10))), wait_for)
    alert = Alert.objects.get(kind="anomaly")
    assert (alert.state, alert.resolution) == ("resolved", "baseline")
    assert not Alert.objects.filter(kind="threshold").exists()
