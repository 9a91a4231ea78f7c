"""/metrics: who may scrape it, and that it moves when the system works (counted across processes)."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings

from tests.ingest.helpers import post_readings
from tests.operations.scrape import METRICS, scrape
from tests.operations.scrape import sample_value as _value

pytestmark = pytest.mark.django_db


def test_metrics_refuses_scrapers_outside_the_allow_list_without_the_token():
    response = Client().get(METRICS, REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 403
    assert set(response.json()) == {"detail", "errors"}


@override_settings(METRICS_TOKEN="s3cret-scrape-token")
def test_metrics_accepts_the_token_from_anywhere_and_rejects_a_wrong_one():
    assert (
        Client().get(METRICS, REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer s3cret-scrape-token").status_code
        == 200
    )
    assert Client().get(METRICS, REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer nope").status_code == 403


def test_metrics_is_served_to_the_local_network_by_default():
    text = scrape(REMOTE_ADDR="127.0.0.1")
    assert "telemetry_celery_queue_depth" in text
    assert "django_http_requests_total_by_method_total" in text  # HTTP metrics from django-prometheus


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_metrics_move_when_readings_are_ingested_and_tasks_run(world, celery_worker, admin_api, wait_for):
    before = scrape()
    body = [
        {"sensor": "env-001/temperature", "ts": "2026-02-12T16:00:00Z", "value": 20.0},
        {"sensor": "env-001/temperature", "ts": "2026-02-12T16:00:00Z", "value": 20.0},
        {"sensor": "nope/nope", "value": 1.0},
    ]
    assert post_readings(admin_api, body).status_code == 202

    def moved():
        # The worker counts a batch's metrics one after the other once it has committed, and a batch left by an
        # earlier test may be counted meanwhile: wait for every count this batch moves.
        text = scrape()

        def grew(name: str, **labels: str) -> bool:
            return _value(text, name, **labels) > _value(before, name, **labels)

        done = (
            grew("telemetry_readings_stored_total")
            and grew("telemetry_readings_duplicate_total")
            and grew("telemetry_readings_rejected_total", reason="unknown_sensor")
            and grew("telemetry_ingest_batch_latency_seconds_count")
        )
        return text if done else None

    after = wait_for(moved, timeout=20)
    assert (
        _value(after, "telemetry_readings_received_total", source="http")
        - _value(before, "telemetry_readings_received_total", source="http")
        == 3
    )
    assert (
        _value(after, "telemetry_readings_duplicate_total") - _value(before, "telemetry_readings_duplicate_total") == 1
    )
    assert (
        _value(after, "telemetry_readings_rejected_total", reason="unknown_sensor")
        - _value(before, "telemetry_readings_rejected_total", reason="unknown_sensor")
        == 1
    )
    assert _value(after, "telemetry_readings_stored_total") - _value(before, "telemetry_readings_stored_total") == 1
    assert _value(after, "telemetry_ingest_batch_duration_seconds_count") > _value(
        before, "telemetry_ingest_batch_duration_seconds_count"
    )
    wait_for(
        lambda: (
            _value(scrape(), "telemetry_celery_tasks_total", task="ingest.process_batch", outcome="success")
            > _value(before, "telemetry_celery_tasks_total", task="ingest.process_batch", outcome="success")
        ),
        timeout=20,
    )


def test_alert_and_notification_metrics_move_when_alerts_open_and_notifications_are_sent(world, settings):
    from apps.notifications.models import Notification
    from apps.notifications.services import notification_deliver
    from apps.thresholds.models import Threshold
    from tests.alerts.helpers import evaluate, make_subscription, readings

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    Threshold.objects.filter(pk=world.thresholds["temperature"].pk).update(min_duration_s=0)
    make_subscription()  # email to ops@example.com for every alert
    before = scrape()

    evaluate(readings("env-001/temperature", (0, 45.0)))  # above critical_high 40
    for notification_id in Notification.objects.values_list("pk", flat=True):
        notification_deliver(notification_id=notification_id)
    after = scrape()

    def moved(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert moved("telemetry_alerts_opened_total", severity="critical") == 1
    assert moved("telemetry_alerts_open", severity="critical") == 1
    assert moved("telemetry_notifications_total", channel="email", status="sent") == 1
