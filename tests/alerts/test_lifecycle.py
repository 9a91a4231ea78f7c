"""The alert lifecycle as model methods (apps/alerts/models.py): opening, the event each step records,
escalation and de-escalation, acknowledging and resolving, and what each refuses. The methods only change
the instance, so these tests build alerts in memory and save nothing but the users who act."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.alerts.evaluation import Outcome, PairState, SensorRow, walk
from apps.alerts.models import NORMAL, Alert, AlertEvent, AlertStateError, ThresholdState
from apps.thresholds.selectors import EffectiveThreshold

T0 = datetime(2026, 2, 12, 16, 0, tzinfo=UTC)
LATER = T0 + timedelta(minutes=5)


def threshold_alert(severity: str = "warning", **fields) -> Alert:
    return Alert.opened(
        Alert.Kind.THRESHOLD,
        at=T0,
        severity=severity,
        device_id=1,
        location_id=2,
        sensor_id=3,
        sensor_type_id=4,
        threshold_id=5,
        value=31.0,
        **fields,
    )


@pytest.fixture
def operator(db):
    return get_user_model().objects.create_user("operator", password="a-long-test-password")


def test_an_opened_alert_starts_open_with_the_value_it_opened_on():
    alert = threshold_alert()

    assert (alert.kind, alert.state, alert.severity, alert.max_severity) == ("threshold", "open", "warning", "warning")
    assert (alert.breach_started_at, alert.opened_at, alert.value_at, alert.peak_at) == (T0, T0, T0, T0)
    assert (alert.first_value, alert.value, alert.peak_value) == (31.0, 31.0, 31.0)
    assert (alert.sensor_id, alert.threshold_id, alert.device_id, alert.sensor_type_id, alert.location_id) == (
        3,
        5,
        1,
        4,
        2,
    )
    assert alert.pk is None


def test_an_alert_opened_after_its_minimum_duration_carries_the_breach_that_led_to_it():
    started = T0 - timedelta(seconds=60)

    alert = threshold_alert(
        breach_started_at=started, first_value=30.5, peak_value=41.0, peak_at=started, max_severity="critical"
    )

    assert (alert.breach_started_at, alert.opened_at) == (started, T0)
    assert (alert.first_value, alert.value, alert.peak_value, alert.peak_at) == (30.5, 31.0, 41.0, started)
    # The breach was critical on the way; the alert opens at the level of its last reading.
    assert (alert.severity, alert.max_severity) == ("warning", "critical")


def test_an_alert_without_values_opens_without_value_times():
    since = T0 - timedelta(minutes=12)

    alert = Alert.opened(Alert.Kind.DEVICE_OFFLINE, at=T0, severity="critical", device_id=1, location_id=None)

    assert (alert.breach_started_at, alert.value, alert.value_at, alert.peak_value, alert.peak_at) == (
        T0,
        None,
        None,
        None,
        None,
    )
    offline = Alert.opened(
        Alert.Kind.DEVICE_OFFLINE, at=T0, severity="critical", device_id=1, location_id=None, breach_started_at=since
    )
    assert (offline.breach_started_at, offline.opened_at, offline.sensor_id) == (since, T0, None)


def test_an_event_records_the_alerts_severity_and_value_after_the_step():
    alert = threshold_alert()

    event = alert.event(AlertEvent.Kind.OPENED, at=T0, comment="why")

    assert isinstance(event, AlertEvent) and event.pk is None
    assert (event.alert, event.kind, event.at, event.severity, event.value, event.comment, event.user) == (
        alert,
        "opened",
        T0,
        "warning",
        31.0,
        "why",
        None,
    )


def test_observing_a_value_moves_the_peak_only_when_it_is_further_out():
    alert = threshold_alert()

    alert.observe(35.0, at=T0 + timedelta(seconds=10), peak=True)
    alert.observe(32.0, at=T0 + timedelta(seconds=20), peak=False)

    assert (alert.value, alert.value_at) == (32.0, T0 + timedelta(seconds=20))
    assert (alert.peak_value, alert.peak_at) == (35.0, T0 + timedelta(seconds=10))


def test_escalating_raises_the_worst_severity_and_de_escalating_keeps_it():
    alert = threshold_alert()

    escalated = alert.change_severity("critical", at=LATER)
    deescalated = alert.change_severity("warning", at=LATER + timedelta(seconds=1))

    assert (escalated.kind, escalated.severity, escalated.at) == ("escalated", "critical", LATER)
    assert (deescalated.kind, deescalated.severity) == ("deescalated", "warning")
    assert (alert.severity, alert.max_severity, alert.state) == ("warning", "critical", "open")


def test_the_same_severity_is_no_step():
    alert = threshold_alert()

    assert alert.change_severity("warning", at=LATER) is None
    assert (alert.severity, alert.max_severity) == ("warning", "warning")


def test_an_acknowledged_alert_that_escalates_is_open_again(operator):
    alert = threshold_alert()
    alert.acknowledge(at=T0, user=operator, comment="on it")

    event = alert.change_severity("critical", at=LATER)

    assert (event.kind, alert.state, alert.severity) == ("escalated", "open", "critical")
    # Who acknowledged the lesser severity stays on record.
    assert (alert.acknowledged_by, alert.acknowledged_at, alert.acknowledge_comment) == (operator, T0, "on it")
    # Open again, it can be acknowledged again, for the worse severity.
    assert alert.acknowledge(at=LATER, user=operator).kind == "acknowledged"


def test_an_acknowledged_alert_that_de_escalates_stays_acknowledged(operator):
    alert = threshold_alert("critical")
    alert.acknowledge(at=T0, user=operator)

    event = alert.change_severity("warning", at=LATER)

    assert (event.kind, alert.state, alert.max_severity) == ("deescalated", "acknowledged", "critical")


def test_a_resolved_alert_keeps_its_severity_and_normal_is_not_a_severity():
    alert = threshold_alert()
    with pytest.raises(ValueError, match="not an alert severity"):
        alert.change_severity(NORMAL, at=LATER)
    alert.resolve(Alert.Resolution.CLEARED, at=LATER)

    with pytest.raises(AlertStateError) as refused:
        alert.change_severity("critical", at=LATER)

    assert refused.value.status_code == 409
    assert (alert.severity, alert.max_severity) == ("warning", "warning")


def test_acknowledging_records_who_when_and_why(operator):
    alert = threshold_alert()

    event = alert.acknowledge(at=LATER, user=operator, comment="Checking the chiller")

    assert (alert.state, alert.acknowledged_at, alert.acknowledged_by, alert.acknowledge_comment) == (
        "acknowledged",
        LATER,
        operator,
        "Checking the chiller",
    )
    assert (event.kind, event.at, event.user, event.comment, event.severity, event.value) == (
        "acknowledged",
        LATER,
        operator,
        "Checking the chiller",
        "warning",
        31.0,
    )


def test_a_second_acknowledgement_is_refused_naming_the_first(operator):
    alert = threshold_alert()
    alert.acknowledge(at=T0, user=operator)

    with pytest.raises(AlertStateError) as refused:
        alert.acknowledge(at=LATER, user=operator, comment="me too")

    assert refused.value.message == f"Already acknowledged by operator at {T0.isoformat()}."
    assert (refused.value.status_code, refused.value.errors) == (409, {"state": ["The alert is acknowledged."]})
    assert (alert.acknowledged_at, alert.acknowledge_comment) == (T0, "")


def test_acknowledging_a_resolved_alert_is_refused_with_a_clear_error(operator):
    alert = threshold_alert()
    alert.resolve(Alert.Resolution.CLEARED, at=LATER)

    with pytest.raises(AlertStateError) as refused:
        alert.acknowledge(at=LATER, user=operator)

    assert refused.value.message == "A resolved alert cannot be acknowledged."
    assert (refused.value.status_code, refused.value.errors) == (409, {"state": ["The alert is resolved."]})
    assert (alert.state, alert.acknowledged_by, alert.acknowledged_at) == ("resolved", None, None)


@pytest.mark.parametrize(
    ("resolution", "reason", "by_a_person"),
    [
        (Alert.Resolution.CLEARED, "", False),
        (Alert.Resolution.THRESHOLD_REMOVED, "The threshold was disabled or removed for this sensor.", False),
        (Alert.Resolution.DEVICE_ONLINE, "The device reported again.", False),
        (Alert.Resolution.MANUAL, "Sensor was in the oven", True),
    ],
)
def test_resolving_records_how_the_episode_ended(operator, resolution, reason, by_a_person):
    alert = threshold_alert()
    user = operator if by_a_person else None

    event = alert.resolve(resolution, at=LATER, reason=reason, user=user)

    assert (alert.state, alert.resolved_at, alert.resolution, alert.resolution_reason, alert.resolved_by) == (
        "resolved",
        LATER,
        resolution,
        reason,
        user,
    )
    assert (event.kind, event.at, event.comment, event.user, event.value) == ("resolved", LATER, reason, user, 31.0)


def test_resolving_an_already_resolved_alert_is_refused_and_changes_nothing(operator):
    alert = threshold_alert()
    alert.resolve(Alert.Resolution.CLEARED, at=T0)

    with pytest.raises(AlertStateError) as refused:
        alert.resolve(Alert.Resolution.MANUAL, at=LATER, reason="again", user=operator)

    assert refused.value.message == "The alert is already resolved."
    assert (alert.resolved_at, alert.resolution, alert.resolution_reason, alert.resolved_by) == (
        T0,
        "cleared",
        "",
        None,
    )


def test_the_lifecycle_methods_make_no_queries(operator, django_assert_num_queries):
    alert = threshold_alert()
    with django_assert_num_queries(0):
        alert.change_severity("critical", at=T0)
        alert.acknowledge(at=T0, user=operator)
        alert.observe(45.0, at=LATER, peak=True)
        alert.resolve(Alert.Resolution.CLEARED, at=LATER)
        alert.event(AlertEvent.Kind.REMINDER, at=LATER)


def test_a_state_started_afresh_forgets_its_breach_and_alert_but_not_how_far_it_got():
    state = ThresholdState(
        level="critical",
        breach_started_at=T0,
        breach_first_value=41.0,
        breach_peak_value=45.0,
        breach_peak_at=T0,
        breach_max_level="critical",
        alert=threshold_alert(),
        last_ts=LATER,
        last_value=45.0,
    )

    state.start_afresh()

    assert (state.level, state.alert, state.breach_max_level) == ("normal", None, "normal")
    assert (state.breach_started_at, state.breach_first_value, state.breach_peak_value, state.breach_peak_at) == (
        None,
        None,
        None,
        None,
    )
    assert (state.last_ts, state.last_value) == (LATER, 45.0)


def test_the_database_free_evaluation_walks_a_pair_without_a_query(db):
    """apps/alerts/evaluation.py is the house example of a state machine without the database: a whole episode
    (open, escalate, resolve) is decided in memory."""
    threshold = EffectiveThreshold(
        sensor_id=3,
        threshold_id=5,
        warning_low=None,
        warning_high=30.0,
        critical_low=None,
        critical_high=40.0,
        hysteresis=0.5,
        min_duration_s=0,
    )
    pair, outcome = PairState(state_id=1, sensor_id=3, threshold_id=5), Outcome()
    points = [(T0 + timedelta(seconds=10 * i), value) for i, value in enumerate([20.0, 31.0, 41.0, 20.0])]

    with CaptureQueriesContext(connection) as queries:
        walk(pair, threshold, points, sensor=SensorRow(3, 4, 1, 2), outcome=outcome)

    assert len(queries) == 0
    assert [(e.kind, e.severity) for e in outcome.events] == [
        ("opened", "warning"),
        ("escalated", "critical"),
        ("resolved", "critical"),
    ]
    (alert,) = outcome.new_alerts
    assert (alert.state, alert.resolution, alert.peak_value, alert.max_severity) == (
        "resolved",
        "cleared",
        41.0,
        "critical",
    )
    assert (pair.level, pair.alert, pair.last_value) == ("normal", None, 20.0)
