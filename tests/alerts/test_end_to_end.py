"""Alerting through the real worker over Redis: readings posted over HTTP, stored, evaluated, alerted and
delivered to a webhook served here and by email, with retries and the safety-net beat."""

from __future__ import annotations

import time
from email import message_from_string, policy

import pytest
from celery import current_app
from django.db.models import Q

from apps.alerts.models import Alert, AlertEvent
from apps.alerts.services import alert_device_offline, alert_device_online
from apps.ingest.models import IngestBatch
from apps.notifications.models import Notification
from apps.thresholds.models import Threshold
from tests.alerts.helpers import make_subscription, readings, store
from tests.factories import API
from workers.tasks.alerts import requeue_unevaluated_batches

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

SECRET = "end-to-end-webhook-secret"
TEMP = "env-001/temperature"


def unsettled() -> int:
    return (
        IngestBatch.objects.filter(status="done", evaluated_at__isnull=True).count()
        + AlertEvent.objects.filter(fanned_out_at__isnull=True).count()
        + Notification.objects.filter(status__in=["pending", "sending"]).count()
    )


@pytest.fixture(autouse=True)
def settle(wait_for):
    """Let the worker finish what a test started before the tables are emptied under it."""
    yield
    try:
        wait_for(lambda: unsettled() == 0, timeout=20)
    except AssertionError:
        pass  # a test that meant to leave work behind; its own assertions already ran


@pytest.fixture
def plant(world):
    Threshold.objects.filter(pk=world.thresholds["temperature"].pk).update(min_duration_s=0)
    return world


def post(client, items) -> str:
    response = client.post(f"{API}/ingest/", items, format="json")
    assert response.status_code == 202, response.content
    return response.json()["batch_id"]


def received(receiver, count: int) -> list | None:
    requests = receiver.received()
    return requests if len(requests) >= count else None


def evaluated(batch_id: str, wait_for) -> None:
    wait_for(lambda: IngestBatch.objects.filter(pk=batch_id, evaluated_at__isnull=False).exists(), timeout=20)


def test_a_breaching_reading_reaches_a_signed_webhook_and_an_email(
    plant, celery_worker, admin_api, receiver, worker_outbox, wait_for
):
    make_subscription(
        channels=[{"type": "webhook", "target": receiver.url}, {"type": "email", "target": "ops@example.com"}],
        secret=SECRET,
    )

    post(admin_api, readings(TEMP, (0, 21.5), (10, 45.2)))

    (request,) = wait_for(receiver.received, timeout=20)
    assert request.signature_valid(SECRET)
    body = request.json()
    assert (body["type"], body["alert"]["sensor"], body["alert"]["severity"]) == ("alert.opened", TEMP, "critical")
    assert (body["event"]["value"], body["event"]["at"]) == (45.2, "2026-02-12T16:00:10Z")
    wait_for(lambda: Notification.objects.filter(status="sent").count() == 2, timeout=20)
    (outbox_file,) = wait_for(lambda: list(worker_outbox.glob("*.log")), timeout=10)
    # The file backend writes each message followed by a line of dashes.
    email = message_from_string(outbox_file.read_text().split("\n" + "-" * 79)[0], policy=policy.default)
    assert (email["Subject"].strip(), email["To"]) == (
        "[CRITICAL] Alert: env-001/temperature = 45.2 °C",
        "ops@example.com",
    )
    assert "Where: Plant 1 / Building A / Floor A1 / A1 South" in email.get_content()
    alert = Alert.objects.get()
    assert (alert.state, alert.value, alert.peak_value) == ("open", 45.2, 45.2)


def test_open_escalate_deescalate_resolve_with_hysteresis_through_the_worker(
    plant, celery_worker, admin_api, receiver, wait_for
):
    make_subscription(channels=[{"type": "webhook", "target": receiver.url}], secret=SECRET)

    evaluated(post(admin_api, readings(TEMP, (0, 20), (10, 31))), wait_for)
    evaluated(post(admin_api, readings(TEMP, (20, 41), (30, 39.8), (40, 39.4))), wait_for)
    evaluated(post(admin_api, readings(TEMP, (50, 29.8))), wait_for)
    assert Alert.objects.get().state == "open"  # not yet inside the band by the hysteresis margin
    evaluated(post(admin_api, readings(TEMP, (60, 29.5))), wait_for)

    requests = wait_for(lambda: received(receiver, 3), timeout=20)
    assert sorted(r.json()["type"] for r in requests) == ["alert.escalated", "alert.opened", "alert.resolved"]
    assert all(r.signature_valid(SECRET) for r in requests)
    alert = Alert.objects.get()
    assert (alert.state, alert.resolution, alert.max_severity, alert.peak_value) == (
        "resolved",
        "cleared",
        "critical",
        41.0,
    )
    assert list(alert.events.order_by("at").values_list("kind", flat=True)) == [
        "opened",
        "escalated",
        "deescalated",
        "resolved",
    ]


def test_a_500_from_the_receiver_is_retried_then_sent(plant, celery_worker, admin_api, receiver, wait_for):
    receiver.script(500)
    make_subscription(channels=[{"type": "webhook", "target": receiver.url}], secret=SECRET)

    post(admin_api, readings(TEMP, (0, 45)))

    notification = wait_for(lambda: Notification.objects.filter(status="sent").first(), timeout=30)
    assert notification.attempts == 2 and notification.last_error.startswith("HTTP 500")
    first, second = receiver.received()
    assert first.body == second.body and second.signature_valid(SECRET)
    assert second.at - first.at >= 0.25  # backoff (base 0.5 s in the worker, with jitter down to half)


def test_a_400_from_the_receiver_is_not_retried(plant, celery_worker, admin_api, receiver, wait_for):
    receiver.script(400)
    make_subscription(channels=[{"type": "webhook", "target": receiver.url}], secret=SECRET)

    post(admin_api, readings(TEMP, (0, 45)))

    notification = wait_for(lambda: Notification.objects.filter(status="failed").first(), timeout=20)
    time.sleep(1.5)  # longer than any retry would wait here
    assert (notification.attempts, len(receiver.received())) == (1, 1)
    assert notification.last_error.startswith("HTTP 400")


def test_a_delivery_task_sent_twice_delivers_once(plant, celery_worker, admin_api, receiver, wait_for):
    receiver.delay_s = 0.3
    make_subscription(channels=[{"type": "webhook", "target": receiver.url}], secret=SECRET)
    make_subscription(name="unreachable", channels=[{"type": "webhook", "target": "http://127.0.0.1:9/x"}])
    post(admin_api, readings(TEMP, (0, 45)))
    notification = wait_for(lambda: Notification.objects.filter(target=receiver.url).first(), timeout=20)

    for _ in range(3):  # redeliveries, a replay from the admin, the requeue beat...
        current_app.send_task("notifications.deliver", kwargs={"notification_id": notification.pk})

    wait_for(lambda: Notification.objects.filter(pk=notification.pk, status="sent").exists(), timeout=20)
    time.sleep(1.0)
    assert len(receiver.received()) == 1
    Notification.objects.filter(target="http://127.0.0.1:9/x").update(status="failed")


def test_offline_detection_opens_and_resolves_through_the_worker(world, celery_worker, receiver, wait_for):
    make_subscription(channels=[{"type": "webhook", "target": receiver.url}], secret=SECRET, location=world.floor_a1)
    device = world.devices["dc-meter-001"]

    alert = alert_device_offline(device_id=device.pk, since=None)
    opened = wait_for(receiver.received, timeout=20)
    alert_device_online(device_id=device.pk)
    requests = wait_for(lambda: received(receiver, 2), timeout=20)

    assert opened[0].json()["alert"]["kind"] == "device_offline"
    assert [r.json()["type"] for r in requests] == ["alert.opened", "alert.resolved"]
    assert all(r.json()["alert"]["device_id"] == "dc-meter-001" for r in requests)
    alert.refresh_from_db()
    assert (alert.state, alert.resolution) == ("resolved", "device_online")


def test_the_beat_evaluates_a_batch_whose_evaluation_message_was_lost(
    plant, celery_worker, receiver, wait_for, monkeypatch
):
    make_subscription(channels=[{"type": "webhook", "target": receiver.url}], secret=SECRET)
    # The broker lost its messages: the batch's (whose ingest task would evaluate it) and the evaluation's.
    monkeypatch.setattr("apps.ingest.services.enqueue_batch", lambda *, batch_id: True)
    monkeypatch.setattr("apps.ingest.pipeline.enqueue_evaluation", lambda *, batch_id: None)
    batch = store(readings(TEMP, (0, 45)))
    assert IngestBatch.objects.get(pk=batch.pk).evaluated_at is None
    monkeypatch.undo()
    assert requeue_unevaluated_batches() == 0  # too recent: its message may still be on its way

    IngestBatch.objects.filter(pk=batch.pk).update(finished_at=batch.finished_at.replace(year=2025))
    assert requeue_unevaluated_batches() == 1

    wait_for(receiver.received, timeout=20)
    assert Alert.objects.filter(~Q(state="resolved")).count() == 1
    assert IngestBatch.objects.get(pk=batch.pk).evaluated_at is not None


def test_a_short_spike_opens_nothing_and_a_lasting_breach_one_alert(
    world, celery_worker, admin_api, receiver, wait_for
):
    # The world's temperature threshold: a breach must last 60 s.
    make_subscription(channels=[{"type": "webhook", "target": receiver.url}], secret=SECRET)

    evaluated(post(admin_api, readings(TEMP, (0, 20), (10, 45), (40, 46), (60, 22))), wait_for)
    assert not Alert.objects.exists()

    evaluated(post(admin_api, readings(TEMP, (100, 35), (130, 36))), wait_for)
    assert not Alert.objects.exists()
    evaluated(post(admin_api, readings(TEMP, (160, 37))), wait_for)

    (request,) = wait_for(receiver.received, timeout=20)
    assert request.json()["alert"]["breach_started_at"] == "2026-02-12T16:01:40Z"
    assert request.json()["alert"]["opened_at"] == "2026-02-12T16:02:40Z"
    assert Alert.objects.count() == 1


def test_flapping_values_make_one_alert_and_one_notification(plant, celery_worker, admin_api, receiver, wait_for):
    make_subscription(channels=[{"type": "webhook", "target": receiver.url}], secret=SECRET)

    for start in (0, 100, 200):
        flapping = [(start + 10 * i, 30.3 if i % 2 == 0 else 29.7) for i in range(8)]
        evaluated(post(admin_api, readings(TEMP, *flapping)), wait_for)

    wait_for(receiver.received, timeout=20)
    time.sleep(1.0)
    assert [r.json()["type"] for r in receiver.received()] == ["alert.opened"]
    assert Alert.objects.count() == 1


def test_two_batches_of_one_sensor_evaluated_at_once_open_one_alert(
    plant, celery_worker, admin_api, receiver, wait_for
):
    make_subscription(channels=[{"type": "webhook", "target": receiver.url}], secret=SECRET)

    # Two requests at once: two ingest tasks, two evaluations on the worker's two processes.
    batch_ids = [post(admin_api, readings(TEMP, (0, 45))), post(admin_api, readings(TEMP, (1, 46)))]
    for batch_id in batch_ids:
        evaluated(batch_id, wait_for)

    wait_for(receiver.received, timeout=20)
    time.sleep(1.0)
    assert [r.json()["type"] for r in receiver.received()] == ["alert.opened"]
    assert Alert.objects.filter(~Q(state="resolved")).count() == 1


def test_scope_quiet_hours_and_maintenance_decide_who_is_told(plant, celery_worker, admin_api, receiver, wait_for):
    from datetime import UTC, datetime, timedelta

    from apps.notifications.models import MaintenanceWindow

    now = datetime.now(UTC)
    make_subscription(name="told", channels=[{"type": "webhook", "target": receiver.url + "?told"}])
    make_subscription(
        name="building B", location=plant.building_b, channels=[{"type": "webhook", "target": receiver.url + "?b"}]
    )
    make_subscription(
        name="humidity",
        sensor_type=plant.sensor_types["humidity"],
        channels=[{"type": "webhook", "target": receiver.url + "?h"}],
    )
    make_subscription(
        name="asleep",
        quiet_hours_start=(now - timedelta(hours=1)).time(),
        quiet_hours_end=(now + timedelta(hours=1)).time(),
        quiet_hours_bypass_critical=False,
        channels=[{"type": "webhook", "target": receiver.url + "?q"}],
    )
    MaintenanceWindow.objects.create(
        name="dc meter swap", device=plant.devices["dc-meter-001"], starts_at=now - timedelta(days=400), ends_at=now
    )

    post(admin_api, readings(TEMP, (0, 45)) + readings("dc-meter-001/voltage_dc", (0, 900)))

    wait_for(lambda: Notification.objects.filter(status="sent").exists(), timeout=20)
    time.sleep(1.0)
    assert [r.path for r in receiver.received()] == ["/hook?told"]
    assert sorted(Notification.objects.values_list("subscription__name", "alert__sensor__key", "status")) == [
        ("asleep", "dc-meter-001/voltage_dc", "suppressed"),
        ("asleep", TEMP, "suppressed"),
        ("told", "dc-meter-001/voltage_dc", "suppressed"),
        ("told", TEMP, "sent"),
    ]


def test_a_storm_is_held_back_and_sent_as_one_digest(plant, celery_worker, admin_api, receiver, wait_for):
    from workers.tasks.alerts import send_digests

    make_subscription(
        channels=[{"type": "webhook", "target": receiver.url}], secret=SECRET, storm_limit=2, storm_window_s=1
    )

    episodes = [point for i in range(4) for point in ((20 * i, 45), (20 * i + 10, 20))]
    evaluated(post(admin_api, readings(TEMP, *episodes)), wait_for)
    wait_for(lambda: len(receiver.received()) == 2, timeout=20)
    assert Notification.objects.filter(status="held").count() == 6

    time.sleep(1.1)  # the storm window has passed since the first held notification
    assert send_digests() == 1

    requests = wait_for(lambda: received(receiver, 3), timeout=20)
    digest = requests[-1]
    assert digest.signature_valid(SECRET)
    assert (digest.json()["type"], digest.json()["held"], digest.json()["alerts"]) == ("digest", 6, 3)
    wait_for(lambda: Notification.objects.filter(kind="digest", status="sent").exists(), timeout=10)
