"""The demo's scripted incident: what goes wrong, when, so a fresh `make run` shows the product at work.

Every cycle (the first `first_at_s` after the simulator starts, then every `every_s`), three things happen at
once on three different devices:
- a breach: one temperature sensor climbs into its warning band, then into the critical band, then back to
  normal, so an alert opens, escalates and resolves (the bands are the demo plant's default temperature
  threshold, 30 and 38 degrees, with a minimum duration of 60 s);
- an outage: one device stops publishing (and drops its connection, so the broker sends its last will), then
  comes back;
- a stuck sensor: one humidity sensor repeats the same value, the pattern the seeded anomaly rule looks for.

The schedule is plain arithmetic on the seconds since start, so it can be tested without a clock.
"""

from __future__ import annotations

from dataclasses import dataclass

# Values the breach holds, between the default temperature bands (warning 30, critical 38): far enough inside
# each band that the noise and the hysteresis never flip the state back.
WARNING_TEMPERATURE = 34.0
CRITICAL_TEMPERATURE = 42.0
STUCK_HUMIDITY = 47.3


@dataclass(frozen=True)
class IncidentSchedule:
    first_at_s: float = 60.0
    every_s: float = 900.0
    # The breach: warning for warning_s, then critical for critical_s, then normal again.
    warning_s: float = 120.0
    critical_s: float = 120.0
    offline_s: float = 180.0
    stuck_s: float = 600.0

    def __post_init__(self) -> None:
        if self.every_s <= 0 or self.first_at_s < 0:
            raise ValueError("every_s must be above 0 and first_at_s at least 0")
        longest = max(self.warning_s + self.critical_s, self.offline_s, self.stuck_s)
        if longest >= self.every_s:
            # Otherwise one cycle's incident would run into the next one's and the breach would never clear.
            raise ValueError(f"every_s ({self.every_s}) must be longer than the longest part ({longest})")


@dataclass(frozen=True)
class IncidentPhase:
    breach: str | None = None  # "warning", "critical" or None (normal)
    offline: bool = False
    stuck: bool = False
    offline_left_s: float = 0.0  # how long the outage still lasts, when offline


def cycle_position(schedule: IncidentSchedule, elapsed_s: float) -> float | None:
    """Seconds into the current cycle, or None before the first one."""
    if elapsed_s < schedule.first_at_s:
        return None
    return (elapsed_s - schedule.first_at_s) % schedule.every_s


def phase_at(schedule: IncidentSchedule, elapsed_s: float) -> IncidentPhase:
    position = cycle_position(schedule, elapsed_s)
    if position is None:
        return IncidentPhase()
    if position < schedule.warning_s:
        breach = "warning"
    elif position < schedule.warning_s + schedule.critical_s:
        breach = "critical"
    else:
        breach = None
    offline = position < schedule.offline_s
    return IncidentPhase(
        breach=breach,
        offline=offline,
        stuck=position < schedule.stuck_s,
        offline_left_s=schedule.offline_s - position if offline else 0.0,
    )


def breach_value(phase: IncidentPhase) -> float | None:
    """The temperature the breached sensor reports, or None for its normal signal."""
    return {"warning": WARNING_TEMPERATURE, "critical": CRITICAL_TEMPERATURE}.get(phase.breach or "")


@dataclass(frozen=True)
class IncidentTargets:
    """Which devices play which part (external ids); each None when no device fits."""

    breach: str | None
    offline: str | None
    stuck: str | None


def choose_targets(sensor_types_by_device: dict[str, set[str]], *, avoid: set[str] = frozenset()) -> IncidentTargets:
    """Three different devices, in id order so every run picks the same: the first with a temperature sensor
    (not in `avoid`, e.g. one whose threshold is overridden) breaches, the next with humidity gets stuck, and
    the first remaining device goes offline."""
    taken: set[str] = set()

    def first(predicate) -> str | None:
        for device_id in sorted(sensor_types_by_device):
            if device_id not in taken and predicate(device_id):
                taken.add(device_id)
                return device_id
        return None

    breach = first(lambda d: "temperature" in sensor_types_by_device[d] and d not in avoid)
    stuck = first(lambda d: "humidity" in sensor_types_by_device[d])
    offline = first(lambda d: True)
    return IncidentTargets(breach=breach, offline=offline, stuck=stuck)
