"""The threshold state machine, free of the database: one (sensor, threshold) pair walked through its
readings in time order.

Levels: normal < warning < critical. A value raises the level as soon as it crosses a band; the level falls
back only once the value is inside the band by the hysteresis margin (each limit has its own deadband, as
alarm systems do, so a value hovering on a limit cannot flap). A breach opens an alert only once it has
lasted the minimum duration, measured in reading time; a breach that ends sooner leaves no trace but the
state. Within an open alert the severity follows the level (escalate, de-escalate), and the return to
normal resolves it.

This module decides when; what each step does to the alert, and the event it records, are the Alert model's
methods (`Alert.opened`, `change_severity`, `resolve`), which touch the instance only. The services load the
state rows and readings and save what `walk` decided (apps/alerts/services/thresholds.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from apps.alerts.models import LEVELS, NORMAL, Alert, AlertEvent, Severity, worse
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


class SensorRow(NamedTuple):
    """What evaluation knows of a sensor: what an alert of it copies when it opens."""

    sensor_id: int
    sensor_type_id: int
    device_id: int
    location_id: int | None


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
    last_ts: datetime | None = None
    last_value: float | None = None
    alert: Alert | None = None
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

    def opened(self, alert: Alert, *, at: datetime) -> None:
        self.new_alerts.append(alert)
        self.events.append(alert.event(AlertEvent.Kind.OPENED, at=at))

    def record(self, event: AlertEvent | None) -> None:
        """A lifecycle step of an alert already in the database (None: the step changed nothing)."""
        if event is not None:
            self.events.append(event)
            self.touch(event.alert)


def _open(pair: PairState, sensor: SensorRow, *, severity: str, at: datetime, value: float) -> Alert:
    """The alert a pending breach opens once it has lasted its minimum duration."""
    return Alert.opened(
        Alert.Kind.THRESHOLD,
        at=at,
        severity=severity,
        sensor_id=pair.sensor_id,
        threshold_id=pair.threshold_id,
        device_id=sensor.device_id,
        sensor_type_id=sensor.sensor_type_id,
        location_id=sensor.location_id,
        value=value,
        breach_started_at=pair.breach_started_at,
        first_value=pair.breach_first_value,
        peak_value=pair.breach_peak_value,
        peak_at=pair.breach_peak_at,
        max_severity=pair.breach_max_level,
    )


def walk(
    pair: PairState,
    threshold: EffectiveThreshold,
    readings: list[tuple[datetime, float]],
    *,
    sensor: SensorRow,
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
                pair.breach_max_level = worse(pair.breach_max_level, level)
                if ts - pair.breach_started_at >= min_duration:
                    pair.alert = _open(pair, sensor, severity=level, at=ts, value=value)
                    pair.clear_breach()
                    outcome.opened(pair.alert, at=ts)
        else:
            alert.observe(value, at=ts, peak=excess(threshold, value) > excess(threshold, alert.peak_value))
            if level == NORMAL:
                outcome.record(alert.resolve(Alert.Resolution.CLEARED, at=ts))
                pair.alert = None
            else:
                outcome.record(alert.change_severity(level, at=ts))
            outcome.touch(alert)
        pair.level = level
        pair.last_ts, pair.last_value = ts, value
        pair.changed = True
