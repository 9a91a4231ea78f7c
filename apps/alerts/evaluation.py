"""The threshold state machine, free of the database: one (sensor, threshold) pair walked through its
readings in time order.

Levels: normal < warning < critical. A value raises the level as soon as it crosses a band; the level falls
back only once the value is inside the band by the hysteresis margin (each limit has its own deadband, as
alarm systems do, so a value hovering on a limit cannot flap). A breach opens an alert only once it has
lasted the minimum duration, measured in reading time; a breach that ends sooner leaves no trace but the
state. Within an open alert the severity follows the level (escalate, de-escalate), and the return to
normal resolves it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from apps.alerts.models import LEVELS, NORMAL, Alert, AlertEvent, Severity
from apps.thresholds.selectors import EffectiveThreshold


def raw_level(threshold: EffectiveThreshold, value: float) -> str:
    return threshold.severity_of(value)


def _normal_band(threshold: EffectiveThreshold) -> tuple[float | None, float | None]:
    low = threshold.warning_low if threshold.warning_low is not None else threshold.critical_low
    high = threshold.warning_high if threshold.warning_high is not None else threshold.critical_high
    return low, high


def held_level(threshold: EffectiveThreshold, value: float) -> str:
    """The level a breach keeps while the value has not yet cleared a limit by the hysteresis margin.

    Only the limits on the value's side of the band count, so a wide margin on a narrow band can never hold
    a value in breach from both sides at once."""
    margin = threshold.hysteresis or 0.0
    low, high = _normal_band(threshold)
    upper_side = low is None or (high is not None and value >= (low + high) / 2)
    if upper_side:
        if threshold.critical_high is not None and value > threshold.critical_high - margin:
            return Severity.CRITICAL
        if threshold.warning_high is not None and value > threshold.warning_high - margin:
            return Severity.WARNING
    else:
        if threshold.critical_low is not None and value < threshold.critical_low + margin:
            return Severity.CRITICAL
        if threshold.warning_low is not None and value < threshold.warning_low + margin:
            return Severity.WARNING
    return NORMAL


def next_level(threshold: EffectiveThreshold, value: float, current: str) -> str:
    raw = raw_level(threshold, value)
    if LEVELS[raw] >= LEVELS[current]:
        return raw
    held = held_level(threshold, value)
    kept = held if LEVELS[held] < LEVELS[current] else current
    return raw if LEVELS[raw] > LEVELS[kept] else kept


def excess(threshold: EffectiveThreshold, value: float) -> float:
    """How far a value lies outside the normal band (0 inside it): what makes a value the peak."""
    low, high = _normal_band(threshold)
    return max(low - value if low is not None else 0.0, value - high if high is not None else 0.0, 0.0)


@dataclass
class PairState:
    """The mutable state of one (sensor, threshold) pair during one evaluation."""

    state_id: int
    sensor_id: int
    threshold_id: int
    level: str = NORMAL
    breach_started_at: datetime | None = None
    breach_first_value: float | None = None
    breach_peak_value: float | None = None
    breach_peak_at: datetime | None = None
    breach_max_level: str = NORMAL
    alert: Alert | None = None
    last_ts: datetime | None = None
    last_value: float | None = None
    changed: bool = False

    def clear_breach(self) -> None:
        self.breach_started_at = None
        self.breach_first_value = None
        self.breach_peak_value = None
        self.breach_peak_at = None
        self.breach_max_level = NORMAL


@dataclass
class Outcome:
    """What an evaluation decided: alerts to insert, alerts changed, events to record (in order)."""

    new_alerts: list[Alert] = field(default_factory=list)
    changed_alerts: dict[int, Alert] = field(default_factory=dict)
    events: list[AlertEvent] = field(default_factory=list)

    def touch(self, alert: Alert) -> None:
        if alert.pk is not None:
            self.changed_alerts[alert.pk] = alert


class AlertFactory:
    """Builds new alerts with what the evaluation knows about a sensor."""

    def __init__(self, sensor_rows: dict[int, dict]) -> None:
        self.sensor_rows = sensor_rows

    def new(self, pair: PairState, *, severity: str, at: datetime, value: float) -> Alert:
        sensor = self.sensor_rows[pair.sensor_id]
        return Alert(
            kind=Alert.Kind.THRESHOLD,
            sensor_id=pair.sensor_id,
            threshold_id=pair.threshold_id,
            device_id=sensor["device_id"],
            sensor_type_id=sensor["sensor_type_id"],
            location_id=sensor["location_id"],
            severity=severity,
            max_severity=severity,
            state=Alert.State.OPEN,
            breach_started_at=pair.breach_started_at or at,
            opened_at=at,
            first_value=pair.breach_first_value if pair.breach_first_value is not None else value,
            value=value,
            value_at=at,
            peak_value=pair.breach_peak_value if pair.breach_peak_value is not None else value,
            peak_at=pair.breach_peak_at or at,
        )


def _event(alert: Alert, kind: str, *, at: datetime, value: float | None, comment: str = "") -> AlertEvent:
    return AlertEvent(alert=alert, kind=kind, at=at, severity=alert.severity, value=value, comment=comment)


def walk(
    pair: PairState,
    threshold: EffectiveThreshold,
    readings: list[tuple[datetime, float]],
    *,
    factory: AlertFactory,
    outcome: Outcome,
) -> None:
    """Advance one pair through `readings` (ascending ts); readings at or before the pair's last evaluated
    time are skipped, so late data never moves the state back."""
    min_duration = timedelta(seconds=threshold.min_duration_s or 0)
    for ts, value in readings:
        if pair.last_ts is not None and ts <= pair.last_ts:
            continue
        level = next_level(threshold, value, pair.level)
        alert = pair.alert
        if alert is None:
            if level == NORMAL:
                pair.clear_breach()
            else:
                if pair.breach_started_at is None:
                    pair.breach_started_at = ts
                    pair.breach_first_value = value
                    pair.breach_peak_value = value
                    pair.breach_peak_at = ts
                elif excess(threshold, value) > excess(threshold, pair.breach_peak_value):
                    pair.breach_peak_value, pair.breach_peak_at = value, ts
                if LEVELS[level] > LEVELS[pair.breach_max_level]:
                    pair.breach_max_level = level
                if ts - pair.breach_started_at >= min_duration:
                    alert = factory.new(pair, severity=level, at=ts, value=value)
                    if LEVELS[pair.breach_max_level] > LEVELS[level]:
                        alert.max_severity = pair.breach_max_level
                    pair.alert = alert
                    pair.clear_breach()
                    outcome.new_alerts.append(alert)
                    outcome.events.append(_event(alert, AlertEvent.Kind.OPENED, at=ts, value=value))
        else:
            alert.value, alert.value_at = value, ts
            if excess(threshold, value) > excess(threshold, alert.peak_value):
                alert.peak_value, alert.peak_at = value, ts
            if level == NORMAL:
                alert.state = Alert.State.RESOLVED
                alert.resolved_at = ts
                alert.resolution = Alert.Resolution.CLEARED
                outcome.events.append(_event(alert, AlertEvent.Kind.RESOLVED, at=ts, value=value))
                pair.alert = None
            elif LEVELS[level] != LEVELS[alert.severity]:
                escalated = LEVELS[level] > LEVELS[alert.severity]
                alert.severity = level
                if escalated:
                    if LEVELS[level] > LEVELS[alert.max_severity]:
                        alert.max_severity = level
                    # An acknowledgement was given for the lesser severity; the worse one needs its own.
                    if alert.state == Alert.State.ACKNOWLEDGED:
                        alert.state = Alert.State.OPEN
                kind = AlertEvent.Kind.ESCALATED if escalated else AlertEvent.Kind.DEESCALATED
                outcome.events.append(_event(alert, kind, at=ts, value=value))
            outcome.touch(alert)
        pair.level = level
        pair.last_ts, pair.last_value = ts, value
        pair.changed = True
