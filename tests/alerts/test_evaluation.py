"""Threshold evaluation of stored batches: the severity ladder with hysteresis, minimum duration, late data,
per-sensor overrides, idempotency and set-wise cost. Services are called in-process; tests/alerts/
test_end_to_end.py drives the same through the real worker."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from apps.accounts.roles import Role
from apps.alerts.models import Alert, AlertEvent, ThresholdState
from apps.alerts.services import alert_acknowledge, batch_evaluate
from apps.thresholds.models import Threshold
from tests.alerts.helpers import T0, at, evaluate, events_of, readings, store
from tests.factories import make_device, make_mapping, make_sensor, make_threshold, make_user

pytestmark = pytest.mark.django_db

TEMP = "env-001/temperature"  # world: warning 5..30, critical 0..40, hysteresis 0.5, min duration 60 s


@pytest.fixture
def immediate(world):
    """The world's temperature threshold without a minimum duration."""
    Threshold.objects.filter(pk=world.thresholds["temperature"].pk).update(min_duration_s=0)
    return world


def only_alert() -> Alert:
    return Alert.objects.get()


def state_of(world, sensor: str = TEMP) -> ThresholdState:
    return ThresholdState.objects.get(sensor=world.sensors[sensor], threshold=world.thresholds["temperature"])


def test_open_escalate_deescalate_and_resolve_with_hysteresis(immediate):
    evaluate(readings(TEMP, (0, 20), (10, 31), (20, 41), (30, 39.8)))
    alert = only_alert()
    assert (alert.state, alert.severity, alert.max_severity) == ("open", "critical", "critical")
    assert events_of(alert) == [("opened", "warning"), ("escalated", "critical")]
    # 39.8 is below the critical limit (40) but not by the hysteresis margin (0.5): still critical.

    evaluate(readings(TEMP, (40, 39.4), (50, 29.8)))
    alert.refresh_from_db()
    assert (alert.state, alert.severity) == ("open", "warning")
    # 29.8 is inside the warning band but not by the margin: the alert stays open.

    evaluate(readings(TEMP, (60, 29.5)))
    alert.refresh_from_db()
    assert events_of(alert) == [
        ("opened", "warning"),
        ("escalated", "critical"),
        ("deescalated", "warning"),
        ("resolved", "warning"),
    ]
    assert (alert.state, alert.resolution, alert.resolved_at.isoformat()) == (
        "resolved",
        "cleared",
        "2026-02-12T16:01:00+00:00",
    )
    assert (alert.first_value, alert.peak_value, alert.value, alert.max_severity) == (31.0, 41.0, 29.5, "critical")
    assert alert.breach_started_at == alert.opened_at == T0.replace(second=10)
    assert [event.at.isoformat() for event in AlertEvent.objects.filter(alert=alert).order_by("at")] == [
        at(10).replace("Z", "+00:00"),
        at(20).replace("Z", "+00:00"),
        at(40).replace("Z", "+00:00"),
        at(60).replace("Z", "+00:00"),
    ]
    state = state_of(immediate)
    assert (state.level, state.alert_id, state.last_value) == ("normal", None, 29.5)


def test_low_side_breaches_clear_by_the_margin_above_the_low_limits(immediate):
    evaluate(readings(TEMP, (0, 4), (10, -1), (20, 0.2), (30, 0.6), (40, 5.3), (50, 5.6)))

    alert = only_alert()
    assert events_of(alert) == [
        ("opened", "warning"),
        ("escalated", "critical"),
        ("deescalated", "warning"),
        ("resolved", "warning"),
    ]
    assert (alert.peak_value, alert.resolved_at) == (-1.0, T0.replace(second=50))


def test_a_spike_shorter_than_the_minimum_duration_opens_no_alert(world):
    evaluate(readings(TEMP, (0, 20), (10, 45), (40, 46), (60, 22)))

    assert not Alert.objects.exists()
    state = state_of(world)
    assert (state.level, state.breach_started_at) == ("normal", None)


def test_a_breach_opens_once_it_has_lasted_the_minimum_duration_across_batches(world):
    evaluate(readings(TEMP, (100, 35), (130, 36)))
    assert not Alert.objects.exists()
    # The pending breach is in the database, so the next batch (another worker, after a restart) goes on.
    assert state_of(world).breach_started_at == T0.replace(minute=1, second=40)

    evaluate(readings(TEMP, (159, 37), (160, 41)))

    alert = only_alert()
    assert (alert.severity, alert.first_value, alert.peak_value) == ("critical", 35.0, 41.0)
    assert alert.breach_started_at == T0.replace(minute=1, second=40)
    assert alert.opened_at == T0.replace(minute=2, second=40)
    assert events_of(alert) == [("opened", "critical")]


def test_flapping_around_a_limit_produces_one_alert_not_many(immediate):
    flapping = [(10 * i, value) for i, value in enumerate([30.2, 29.8, 30.3, 29.7, 30.1, 29.9, 30.4, 29.6])]
    evaluate(readings(TEMP, *flapping))
    evaluate(readings(TEMP, (100, 30.2), (110, 29.7)))

    assert Alert.objects.count() == 1
    assert events_of(only_alert()) == [("opened", "warning")]

    evaluate(readings(TEMP, (120, 29.0)))
    assert events_of(only_alert()) == [("opened", "warning"), ("resolved", "warning")]


def test_late_readings_never_move_the_state_back(immediate):
    evaluate(readings(TEMP, (100, 45), (110, 46)))
    alert = only_alert()

    # Older than anything evaluated: stored, but the alert neither resolves nor changes.
    late = evaluate(readings(TEMP, (50, 20), (105, 10)))

    alert.refresh_from_db()
    assert late.stored == 2 and late.evaluated_at is not None
    assert (alert.state, alert.value, alert.value_at) == ("open", 46.0, T0.replace(minute=1, second=50))
    assert state_of(immediate).last_ts == T0.replace(minute=1, second=50)
    assert events_of(alert) == [("opened", "critical")]


def test_per_sensor_overrides_and_disabled_mappings_are_honoured(immediate):
    # env-002/temperature's mapping raises its warning limit to 35.
    make_mapping(immediate.sensors["env-001/temperature"], immediate.thresholds["temperature"], enabled=False)
    evaluate(
        readings("env-001/temperature", (0, 45))
        + readings("env-002/temperature", (0, 33))
        + readings("env-002/temperature", (10, 36))
    )

    alert = only_alert()
    assert (alert.sensor.key, alert.severity, alert.first_value) == ("env-002/temperature", "warning", 36.0)
    assert alert.location == immediate.area_b1_hall
    assert alert.device == immediate.devices["env-002"]


def test_each_threshold_of_a_type_has_its_own_alert(immediate):
    make_threshold(immediate.sensor_types["temperature"], name="process", warning_high=25, critical_high=50)

    evaluate(readings(TEMP, (0, 27)))

    assert sorted(Alert.objects.values_list("threshold__name", "severity")) == [("process", "warning")]
    evaluate(readings(TEMP, (10, 31)))
    assert sorted(Alert.objects.values_list("threshold__name", "severity")) == [
        ("default", "warning"),
        ("process", "warning"),
    ]


def test_disabling_a_threshold_resolves_its_open_alerts_on_the_next_batch(immediate):
    evaluate(readings(TEMP, (0, 45)))
    threshold = immediate.thresholds["temperature"]
    threshold.refresh_from_db()
    threshold.enabled = False
    threshold.save()  # as the API and the admin do: the save is what tells every worker

    evaluate(readings(TEMP, (10, 46)))

    alert = only_alert()
    assert (alert.state, alert.resolution) == ("resolved", "threshold_removed")
    assert events_of(alert)[-1] == ("resolved", "critical")


def test_an_acknowledged_alert_that_escalates_is_open_again_and_one_that_calms_down_stays_acknowledged(immediate):
    evaluate(readings(TEMP, (0, 31)))
    alert = only_alert()
    operator, _ = make_user("operator", Role.OPERATOR)
    alert_acknowledge(alert_id=alert.pk, user=operator, comment="on it")

    evaluate(readings(TEMP, (10, 41)))
    alert.refresh_from_db()
    assert (alert.state, alert.severity, alert.acknowledged_by) == ("open", "critical", operator)

    alert_acknowledge(alert_id=alert.pk, user=operator, comment="still on it")
    evaluate(readings(TEMP, (20, 31)))
    alert.refresh_from_db()
    assert (alert.state, alert.severity, alert.max_severity) == ("acknowledged", "warning", "critical")
    # In the order they were recorded (acknowledgements are in wall time, the others in reading time).
    assert list(alert.events.order_by("id").values_list("kind", "severity")) == [
        ("opened", "warning"),
        ("acknowledged", "warning"),
        ("escalated", "critical"),
        ("acknowledged", "critical"),
        ("deescalated", "warning"),
    ]


def test_a_new_breach_after_a_resolution_opens_a_new_alert(immediate):
    evaluate(readings(TEMP, (0, 45), (10, 20), (20, 45)))

    assert list(Alert.objects.order_by("id").values_list("state", flat=True)) == ["resolved", "open"]


def test_one_batch_may_resolve_an_alert_and_open_the_next_for_the_same_pair(immediate):
    evaluate(readings(TEMP, (0, 45)))

    evaluate(readings(TEMP, (10, 20), (20, 31)))

    assert list(Alert.objects.order_by("id").values_list("state", "severity")) == [
        ("resolved", "critical"),
        ("open", "warning"),
    ]
    assert state_of(immediate).alert_id == Alert.objects.get(state="open").pk


def test_evaluating_a_batch_again_changes_nothing(immediate):
    batch = store(readings(TEMP, (0, 45), (10, 20)))
    first = batch_evaluate(batch_id=str(batch.pk))

    again = batch_evaluate(batch_id=str(batch.pk))

    assert first.opened == 1 and len(first.event_ids) == 2
    assert again is None
    assert (Alert.objects.count(), AlertEvent.objects.count()) == (1, 2)


def test_batches_without_thresholds_or_not_done_are_stamped_or_skipped(immediate):
    batch = store(readings("env-001/humidity", (0, 99)))

    result = batch_evaluate(batch_id=str(batch.pk))
    batch.refresh_from_db()

    assert result.readings == 0 and result.event_ids == []
    assert batch.evaluated_at is not None
    assert batch_evaluate(batch_id="00000000-0000-0000-0000-000000000000") is None


def queries_to_evaluate(batch) -> int:
    with CaptureQueriesContext(connection) as context:
        batch_evaluate(batch_id=str(batch.pk))
    return len(context.captured_queries)


def test_evaluation_costs_the_same_queries_for_three_sensors_or_thirty(immediate):
    for number in range(33):
        device, _ = make_device(f"many-{number}", location=immediate.area_a1_south)
        make_sensor(device, immediate.sensor_types["temperature"])

    def batch_of(sensors: int, *points):
        numbers = range(3) if sensors == 3 else range(3, 33)
        return store([item for i in numbers for item in readings(f"many-{i}/temperature", *points)])

    # First sight of the sensors (states created), an alert opened for each.
    first = [queries_to_evaluate(batch_of(3, (0, 45))), queries_to_evaluate(batch_of(30, (0, 45)))]
    # Then the steady state: states there, open alerts updated.
    steady = [queries_to_evaluate(batch_of(3, (10, 46))), queries_to_evaluate(batch_of(30, (10, 46)))]
    # Then all clear: every alert resolved.
    clear = [queries_to_evaluate(batch_of(3, (20, 20))), queries_to_evaluate(batch_of(30, (20, 20)))]

    # (Counts include the test transaction's savepoint and its release.)
    assert first[0] == first[1] <= 16
    assert steady[0] == steady[1] <= 13
    assert clear[0] == clear[1] <= 14
    assert Alert.objects.filter(sensor__key__startswith="many-", state="resolved").count() == 33


def test_the_database_refuses_a_second_unresolved_alert_for_a_sensor_and_threshold(immediate):
    evaluate(readings(TEMP, (0, 45)))
    alert = only_alert()

    duplicate = Alert(
        sensor=alert.sensor,
        threshold=alert.threshold,
        device=alert.device,
        severity="warning",
        max_severity="warning",
        breach_started_at=alert.opened_at,
        opened_at=alert.opened_at,
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        duplicate.save()
    # Once the first is resolved, a new episode may open.
    Alert.objects.filter(pk=alert.pk).update(state="resolved", resolved_at=alert.opened_at)
    duplicate.save()


@pytest.mark.django_db(transaction=True)
def test_concurrent_evaluation_of_the_same_sensor_opens_one_alert(world, monkeypatch):
    """Two workers evaluating two batches of the same sensor at the same moment: the threshold state rows
    serialize them, so the second continues the first's alert instead of opening another."""
    # These rows are committed: keep a session worker, if one runs, from storing (and with that evaluating)
    # or evaluating them too.
    monkeypatch.setattr("apps.ingest.services.enqueue_batch", lambda *, batch_id: True)
    monkeypatch.setattr("apps.ingest.pipeline.enqueue_evaluation", lambda *, batch_id: None)
    Threshold.objects.filter(pk=world.thresholds["temperature"].pk).update(min_duration_s=0)
    batches = [store(readings(TEMP, (0, 45), (5, 46))), store(readings(TEMP, (10, 47), (15, 48)))]
    start = threading.Barrier(len(batches))
    results, errors = {}, []

    def run(batch) -> None:
        try:
            start.wait()
            results[batch.pk] = batch_evaluate(batch_id=str(batch.pk))
        except Exception as exc:  # reported below with the test's failure
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert not errors, errors
    assert sum(result.opened for result in results.values()) == 1
    alert = only_alert()
    assert events_of(alert) == [("opened", "critical")]
    assert alert.peak_value == 48.0


@pytest.mark.django_db(transaction=True)
def test_an_evaluation_that_waited_for_the_locks_sees_the_alert_the_other_opened(world, monkeypatch):
    """Forces the interleaving: both evaluations queue on the sensor's (existing) state rows; whichever goes
    second must find the alert the first committed while it waited, not open a duplicate."""
    monkeypatch.setattr("apps.ingest.services.enqueue_batch", lambda *, batch_id: True)
    monkeypatch.setattr("apps.ingest.pipeline.enqueue_evaluation", lambda *, batch_id: None)
    Threshold.objects.filter(pk=world.thresholds["temperature"].pk).update(min_duration_s=0)
    evaluate(readings(TEMP, (0, 20)))  # the state rows exist from here on
    batches = [store(readings(TEMP, (10, 45))), store(readings(TEMP, (20, 46)))]
    settings_dict = connection.settings_dict
    blocker = psycopg.connect(
        dbname=settings_dict["NAME"], user=settings_dict["USER"], host=settings_dict["HOST"] or "localhost",
        port=settings_dict["PORT"] or 5432,
    )  # fmt: skip
    blocker.execute("SELECT 1 FROM alerts_thresholdstate FOR UPDATE")
    results, errors = {}, []

    def run(batch) -> None:
        try:
            results[batch.pk] = batch_evaluate(batch_id=str(batch.pk))
        except Exception as exc:  # reported below with the test's failure
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(batch,)) for batch in batches]
    try:
        for thread in threads:
            thread.start()

        def both_waiting() -> bool:
            # The first waits on the blocker's transaction, the second on the row (a tuple lock).
            waiting = blocker.execute("SELECT count(DISTINCT pid) FROM pg_locks WHERE NOT granted").fetchone()[0]
            return waiting >= 2

        deadline = time.monotonic() + 20
        while not both_waiting():
            assert time.monotonic() < deadline, "the evaluations never queued on the state rows"
            time.sleep(0.05)
    finally:
        blocker.rollback()
        blocker.close()
    for thread in threads:
        thread.join(timeout=30)

    assert not errors, errors
    assert sum(result.opened for result in results.values()) == 1
    assert Alert.objects.filter(sensor__key=TEMP).exclude(state="resolved").count() == 1
