"""Anomaly alerts from stored batches: the anomaly pass beside the threshold pass, on the same alert
lifecycle (one alert per episode, resolved back at baseline), late data and replays, and no cost without rules."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.alerts.models import Alert, AlertEvent
from apps.alerts.services import batch_evaluate
from apps.anomaly.models import AnomalyRule, AnomalyState
from apps.notifications.messages import render_event
from apps.notifications.models import Notification
from tests.alerts.helpers import T0, evaluate, make_subscription, readings, store

pytestmark = pytest.mark.django_db

TEMP = "env-001/temperature"  # world thresholds 5..30: the values below never breach them
NOISE = [0.0, 0.2, -0.1, 0.15, -0.2, 0.05, -0.05, 0.1]


def calm(start: int, count: int) -> list[tuple[float, float]]:
    return [(60.0 * i, 22.0 + NOISE[i % len(NOISE)]) for i in range(start, start + count)]


@pytest.fixture
def rule(world):
    return AnomalyRule.objects.create(
        sensor_type=world.sensors[TEMP].sensor_type,
        warmup_readings=30,
        warmup_s=0,
        seasonality="off",
        min_readings=2,
        clear_readings=3,
    )


def anomaly_alerts():
    return list(Alert.objects.filter(kind=Alert.Kind.ANOMALY).order_by("id"))


def test_an_episode_opens_one_alert_with_its_band_and_score_and_resolves_back_at_baseline(rule):
    evaluate(readings(TEMP, *calm(0, 40)))
    assert anomaly_alerts() == []
    spike = [(60.0 * i, 28.0) for i in range(40, 44)]
    evaluate(readings(TEMP, *spike))
    [alert] = anomaly_alerts()
    assert alert.state == Alert.State.OPEN and alert.severity == "warning"
    assert alert.breach_started_at == T0.replace(minute=40)
    assert alert.opened_at <= T0.replace(minute=41)
    assert alert.expected_low < 22.0 < alert.expected_high < 28.0
    assert alert.score >= 1.0 and alert.peak_score >= alert.score
    opened = AlertEvent.objects.get(alert=alert, kind=AlertEvent.Kind.OPENED)
    assert opened.expected_low is not None and opened.score >= 1.0

    evaluate(readings(TEMP, *calm(44, 10)))
    [alert] = anomaly_alerts()
    assert alert.state == Alert.State.RESOLVED and alert.resolution == Alert.Resolution.BASELINE
    assert [e.kind for e in alert.events.order_by("at", "id")] == ["opened", "resolved"]
    assert not Alert.objects.filter(kind=Alert.Kind.THRESHOLD).exists()


def test_replays_and_late_readings_change_nothing(rule):
    evaluate(readings(TEMP, *calm(0, 40)))
    batch = store(readings(TEMP, *[(60.0 * i, 28.0) for i in range(40, 44)]))
    batch_evaluate(batch_id=str(batch.pk))
    [alert] = anomaly_alerts()
    # The same readings again (a second batch) and old anomalous ones are late for the detectors.
    evaluate(readings(TEMP, *[(60.0 * i, 28.0) for i in range(40, 44)]))
    evaluate(readings(TEMP, (60.0 * 5 + 1, 60.0)))
    assert anomaly_alerts() == [alert]
    assert AlertEvent.objects.filter(alert=alert).count() == 1


def test_the_pass_costs_no_query_when_no_rule_is_enabled(world):
    evaluate(readings(TEMP, *calm(0, 3)))
    batch = store(readings(TEMP, *calm(3, 3)))
    with CaptureQueriesContext(connection) as queries:
        batch_evaluate(batch_id=str(batch.pk))
    assert not any("anomaly" in query["sql"] for query in queries.captured_queries)


def test_switching_a_rule_on_is_seen_by_the_next_batch(world):
    evaluate(readings(TEMP, *calm(0, 3)))
    AnomalyRule.objects.create(sensor_type=world.sensors[TEMP].sensor_type, warmup_readings=1, warmup_s=0)
    batch = store(readings(TEMP, *calm(3, 3)))
    with CaptureQueriesContext(connection) as queries:
        batch_evaluate(batch_id=str(batch.pk))
    assert any("anomaly_anomalystate" in query["sql"] for query in queries.captured_queries)


def test_subscriptions_may_leave_anomalies_out_and_messages_name_the_expected_band_and_score(rule):
    everything = make_subscription(name="everything")
    make_subscription(name="thresholds only", include_anomalies=False)
    evaluate(readings(TEMP, *calm(0, 40)))
    evaluate(readings(TEMP, *[(60.0 * i, 28.0) for i in range(40, 44)]))
    [alert] = anomaly_alerts()
    [notification] = Notification.objects.filter(alert=alert)
    assert notification.subscription_id == everything.pk
    message = render_event(notification)
    assert "env-001/temperature anomaly" in message.subject
    assert f"expected {alert.events.get(kind='opened').expected_low:g}" in message.text
    assert "score " in message.text
    assert message.payload["event"]["score"] >= 1.0
    assert message.payload["alert"]["expected_high"] == alert.expected_high


def test_the_alerts_api_filters_anomaly_alerts_and_shows_their_band(rule, viewer_api):
    evaluate(readings(TEMP, *calm(0, 40)))
    evaluate(readings(TEMP, *[(60.0 * i, 28.0) for i in range(40, 44)]))
    answer = viewer_api.get("/api/v1/alerts/", {"kind": "anomaly"})
    assert answer.status_code == 200
    [item] = answer.json()["results"]
    assert item["kind"] == "anomaly" and item["expected_low"] < 22.0 < item["expected_high"]
    assert item["score"] >= 1.0 and item["peak_score"] >= item["score"]
    assert viewer_api.get("/api/v1/alerts/", {"kind": "threshold"}).json()["results"] == []


def test_the_alerts_are_looked_up_only_for_sensors_whose_episode_was_open_or_opens(rule):
    evaluate(readings(TEMP, *calm(0, 40)))
    batch = store(readings(TEMP, *calm(40, 3)))
    with CaptureQueriesContext(connection) as queries:
        batch_evaluate(batch_id=str(batch.pk))
    assert not [q for q in queries.captured_queries if "alerts_alert" in q["sql"] and "'anomaly'" in q["sql"]]

    evaluate(readings(TEMP, *[(60.0 * i, 28.0) for i in range(43, 47)]))
    batch = store(readings(TEMP, (60.0 * 47, 28.0)))
    with CaptureQueriesContext(connection) as queries:
        batch_evaluate(batch_id=str(batch.pk))
    assert [q for q in queries.captured_queries if "alerts_alert" in q["sql"] and "'anomaly'" in q["sql"]]
    [alert] = anomaly_alerts()
    assert alert.value == 28.0 and alert.value_at == T0.replace(minute=47)


def test_an_episode_opening_over_a_state_started_afresh_carries_on_the_alert_left_open(rule):
    evaluate(readings(TEMP, *calm(0, 40)))
    evaluate(readings(TEMP, *[(60.0 * i, 28.0) for i in range(40, 44)]))
    [alert] = anomaly_alerts()
    AnomalyState.objects.all().delete()  # as a new state layout would: everything learned again from scratch

    evaluate(readings(TEMP, *calm(44, 40)))
    evaluate(readings(TEMP, *[(60.0 * i, 35.0) for i in range(84, 88)]))

    [carried_on] = anomaly_alerts()
    assert carried_on.pk == alert.pk and carried_on.state == Alert.State.OPEN and carried_on.value == 35.0


def test_the_anomaly_pass_takes_the_readings_the_threshold_pass_read(rule):
    evaluate(readings(TEMP, *calm(0, 40)))
    batch = store(readings(TEMP, *calm(40, 3)))
    with CaptureQueriesContext(connection) as queries:
        batch_evaluate(batch_id=str(batch.pk))
    assert len([q for q in queries.captured_queries if "ingest_reading" in q["sql"]]) == 1


def test_a_sensor_without_thresholds_has_its_readings_read_for_the_anomaly_pass(world):
    humidity = "env-001/humidity"  # the world has no humidity threshold
    AnomalyRule.objects.create(
        sensor_type=world.sensors[humidity].sensor_type, warmup_readings=30, warmup_s=0, seasonality="off"
    )
    evaluate(readings(humidity, *[(t, v + 20.0) for t, v in calm(0, 40)]))
    evaluate(readings(humidity, *[(60.0 * i, 70.0) for i in range(40, 44)]) + readings(TEMP, *calm(40, 4)))

    [alert] = anomaly_alerts()
    assert alert.sensor_id == world.sensors[humidity].pk and alert.value == 70.0
