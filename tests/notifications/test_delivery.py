"""Delivery of one notification over each channel against local receivers: signatures, the permanent and
transient failures, backoff, claiming (a redelivered task never sends twice), email, the SMS/push gateway."""

from __future__ import annotations

import io
import smtplib
from datetime import timedelta

import pytest
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import timezone

from apps.devices.models import SensorType
from apps.notifications.channels import ConsoleBackend, Message
from apps.notifications.models import Notification
from apps.notifications.services import notification_claim, notification_deliver, retry_delay
from apps.thresholds.models import Threshold
from tests.alerts.helpers import evaluate, make_subscription, readings
from tests.concurrency import at_once
from workers.tasks.alerts import deliver

pytestmark = pytest.mark.django_db

SECRET = "a-webhook-secret-of-some-length"


@pytest.fixture
def immediate(world):
    Threshold.objects.filter(pk=world.thresholds["temperature"].pk).update(min_duration_s=0)
    return world


def notify(channel: str, target: str, **fields) -> Notification:
    """A critical alert on env-001/temperature notified to one subscription with one channel."""
    make_subscription(channels=[{"type": channel, "target": target}], secret=SECRET, **fields)
    evaluate(readings("env-001/temperature", (0, 45)))
    return Notification.objects.get()


def make_due(notification: Notification) -> None:
    Notification.objects.filter(pk=notification.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def test_a_webhook_is_signed_with_the_subscription_secret(immediate, receiver):
    notification = notify("webhook", receiver.url)

    outcome = notification_deliver(notification_id=notification.pk)

    assert outcome.status == "sent"
    (request,) = receiver.received()
    assert request.signature_valid(SECRET)
    assert not request.signature_valid("another-secret")
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Notification-Id"] == str(notification.pk)
    assert request.headers["X-Event-Type"] == "alert.opened"
    body = request.json()
    assert body["type"] == "alert.opened" and body["notification_id"] == notification.pk
    assert body["alert"]["sensor"] == "env-001/temperature"
    assert (body["alert"]["sensor_type"], body["alert"]["sensor_type_code"]) == (
        SensorType.objects.get(code="temperature").pk,
        "temperature",
    )
    assert (body["alert"]["severity"], body["alert"]["state"], body["alert"]["value"]) == ("critical", "open", 45.0)
    assert body["alert"]["location_path"] == "Plant 1 / Building A / Floor A1 / A1 South"
    assert body["event"]["kind"] == "opened"
    notification.refresh_from_db()
    assert (notification.status, notification.attempts, notification.sent_at is not None) == ("sent", 1, True)


def test_a_4xx_answer_is_a_permanent_failure_and_not_retried(immediate, receiver):
    receiver.script(400)
    notification = notify("webhook", receiver.url)

    outcome = notification_deliver(notification_id=notification.pk)

    assert (outcome.status, outcome.retry_in_s) == ("failed", None)
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("failed", 1)
    assert notification.last_error.startswith(f"HTTP 400 from {receiver.url}")
    assert notification_deliver(notification_id=notification.pk).status == "skipped"
    assert len(receiver.received()) == 1


def test_a_5xx_answer_is_retried_with_backoff_then_sent(immediate, receiver, settings):
    receiver.script(500, 503)
    notification = notify("webhook", receiver.url)

    first = notification_deliver(notification_id=notification.pk)
    assert first.status == "retry"
    assert settings.NOTIFY_RETRY_BASE_S * 0.5 <= first.retry_in_s <= settings.NOTIFY_RETRY_BASE_S
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("pending", 1)
    assert notification.last_error.startswith("HTTP 500")
    # Not due before its backoff has passed: an early redelivery does nothing.
    assert notification_deliver(notification_id=notification.pk).status == "skipped"

    make_due(notification)
    second = notification_deliver(notification_id=notification.pk)
    assert second.status == "retry"
    assert settings.NOTIFY_RETRY_BASE_S <= second.retry_in_s <= 2 * settings.NOTIFY_RETRY_BASE_S

    make_due(notification)
    assert notification_deliver(notification_id=notification.pk).status == "sent"
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("sent", 3)
    assert notification.last_error.startswith("HTTP 503")  # kept: the history of the earlier attempts
    assert len(receiver.received()) == 3


def test_a_timeout_is_retried(immediate, receiver, settings):
    settings.NOTIFY_WEBHOOK_TIMEOUT_S = 0.2
    receiver.delay_s = 1.0
    notification = notify("webhook", receiver.url)

    outcome = notification_deliver(notification_id=notification.pk)

    assert outcome.status == "retry"
    notification.refresh_from_db()
    assert notification.last_error == f"No answer from {receiver.url} within 0.2 s."


def test_an_unreachable_receiver_is_retried_until_the_limit_then_fails_with_the_error_kept(immediate, settings):
    settings.NOTIFY_MAX_ATTEMPTS = 3
    notification = notify("webhook", "http://127.0.0.1:9/hook")  # the discard port: nothing listens

    outcomes = []
    for _ in range(3):
        outcomes.append(notification_deliver(notification_id=notification.pk).status)
        make_due(notification)

    assert outcomes == ["retry", "retry", "failed"]
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("failed", 3)
    assert notification.last_error.startswith("Could not reach http://127.0.0.1:9/hook")


def test_retry_delays_grow_exponentially_with_jitter_up_to_the_cap(settings):
    settings.NOTIFY_RETRY_BASE_S, settings.NOTIFY_RETRY_MAX_S = 2.0, 30.0
    delays = {attempt: [retry_delay(attempt) for _ in range(200)] for attempt in (1, 2, 3, 10)}

    assert all(1.0 <= d <= 2.0 for d in delays[1]) and all(2.0 <= d <= 4.0 for d in delays[2])
    assert all(4.0 <= d <= 8.0 for d in delays[3]) and all(15.0 <= d <= 30.0 for d in delays[10])
    assert len(set(delays[3])) > 100  # jitter: retries of many notifications do not land together
    assert retry_delay(1, retry_after_s=20) == 20
    assert retry_delay(1, retry_after_s=3600) == 30


def test_a_redelivered_delivery_task_sends_once(immediate, receiver):
    notification = notify("webhook", receiver.url)

    assert deliver(notification_id=notification.pk) == "sent"
    assert deliver(notification_id=notification.pk) == "skipped"

    assert len(receiver.received()) == 1


def test_a_notification_claimed_by_a_live_worker_is_left_alone_and_taken_over_when_its_lease_ran_out(
    immediate, receiver
):
    notification = notify("webhook", receiver.url)
    assert notification_claim(notification_id=notification.pk, now=timezone.now())

    assert deliver(notification_id=notification.pk) == "skipped"
    assert receiver.received() == []

    Notification.objects.filter(pk=notification.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    assert deliver(notification_id=notification.pk) == "sent"
    notification.refresh_from_db()
    assert (notification.attempts, len(receiver.received())) == (2, 1)


@pytest.mark.django_db(transaction=True)
def test_two_workers_delivering_the_same_notification_at_once_send_it_once(world, receiver, monkeypatch):
    # These rows are committed: keep a session worker, if one runs, from storing, evaluating or delivering them
    # too.
    monkeypatch.setattr("apps.ingest.services.enqueue_batch", lambda *, batch_id: True)
    monkeypatch.setattr("apps.ingest.pipeline.enqueue_evaluation", lambda *, batch_id: None)
    monkeypatch.setattr("apps.notifications.services.queueing.enqueue_delivery", lambda **kwargs: None)
    Threshold.objects.filter(pk=world.thresholds["temperature"].pk).update(min_duration_s=0)
    receiver.delay_s = 0.3  # the first sender is still waiting when the second tries
    notification = notify("webhook", receiver.url)
    outcomes = at_once(lambda: notification_deliver(notification_id=notification.pk).status, 4)

    assert sorted(outcomes) == ["sent", "skipped", "skipped", "skipped"]
    assert len(receiver.received()) == 1


def test_email_goes_through_djangos_email_framework(immediate, settings):
    settings.NOTIFY_EMAIL_FROM = "alerts@plant.example"
    notification = notify("email", "ops@example.com")

    assert notification_deliver(notification_id=notification.pk).status == "sent"

    (message,) = mail.outbox
    assert message.to == ["ops@example.com"] and message.from_email == "alerts@plant.example"
    assert message.subject == "[CRITICAL] Alert: env-001/temperature = 45 °C"
    assert "Where: Plant 1 / Building A / Floor A1 / A1 South" in message.body
    assert "Limits: warning below 5 °C or above 30 °C; critical below 0 °C or above 40 °C" in message.body
    assert message.extra_headers["X-Telemetry-Notification"] == str(notification.pk)


class RefusingBackend(BaseEmailBackend):
    """An SMTP server that refuses the recipient: 550 for good, 450 for now."""

    code = 550

    def send_messages(self, messages):
        raise smtplib.SMTPRecipientsRefused({"ops@example.com": (self.code, b"mailbox unavailable")})


class BusyBackend(RefusingBackend):
    code = 450


@pytest.mark.parametrize(("backend", "status"), [("RefusingBackend", "failed"), ("BusyBackend", "retry")])
def test_a_refused_address_fails_for_good_and_a_busy_server_is_retried(immediate, settings, backend, status):
    settings.EMAIL_BACKEND = f"{__name__}.{backend}"
    notification = notify("email", "ops@example.com")

    assert notification_deliver(notification_id=notification.pk).status == status


@pytest.mark.parametrize("channel", ["sms", "push"])
def test_sms_and_push_go_through_the_http_gateway_with_its_credentials(immediate, receiver, settings, channel):
    prefix = f"NOTIFY_{channel.upper()}"
    setattr(settings, f"{prefix}_BACKEND", "http")
    setattr(settings, f"{prefix}_GATEWAY_URL", receiver.url)
    setattr(settings, f"{prefix}_GATEWAY_TOKEN", "gateway-token")
    target = "+491701234567" if channel == "sms" else "device-token-1"
    notification = notify(channel, target)

    assert notification_deliver(notification_id=notification.pk).status == "sent"

    (request,) = receiver.received()
    assert request.headers["Authorization"] == "Bearer gateway-token"
    assert request.headers["Idempotency-Key"] == f"notification-{notification.pk}"
    body = request.json()
    assert (body["channel"], body["to"]) == (channel, target)
    assert body["subject"] == "[CRITICAL] Alert: env-001/temperature = 45 °C"
    assert body["data"]["alert"]["sensor"] == "env-001/temperature"


@pytest.mark.parametrize(("answer", "status"), [(503, "retry"), (429, "retry"), (401, "failed"), (422, "failed")])
def test_the_gateway_answer_decides_between_retry_and_failure(immediate, receiver, settings, answer, status):
    settings.NOTIFY_SMS_BACKEND, settings.NOTIFY_SMS_GATEWAY_URL = "http", receiver.url
    receiver.script(answer)
    notification = notify("sms", "+491701234567")

    assert notification_deliver(notification_id=notification.pk).status == status


def test_the_console_backend_writes_the_message_for_development():
    stream = io.StringIO()

    ConsoleBackend(stream).send(channel="sms", target="+491701234567", message=Message(subject="Hello", text="World"))

    assert stream.getvalue() == "[sms to +491701234567] Hello\nWorld\n"


def test_sms_uses_the_console_backend_by_default(immediate, capsys):
    notification = notify("sms", "+491701234567")

    assert notification_deliver(notification_id=notification.pk).status == "sent"

    assert "[sms to +491701234567] [CRITICAL] Alert: env-001/temperature = 45 °C" in capsys.readouterr().out
