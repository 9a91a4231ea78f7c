"""Learned anomaly states for tests: readings streamed through detect() and the state stored, as the worker's
evaluation would have left it."""

from __future__ import annotations

from datetime import datetime

import numpy as np

from apps.anomaly import detectors as d
from apps.anomaly.states import states_save

HOUR = 3600.0


def daily_cycle(hour_of_day: np.ndarray, *, level: float = 20.0) -> np.ndarray:
    """A value 5 above `level` at 06:00 UTC and 5 below it at 18:00 UTC."""
    return level + 5.0 * np.sin(2 * np.pi * hour_of_day / 24.0)


def learn(
    sensor_id: int,
    *,
    until: datetime,
    days: float,
    every_s: float = 300.0,
    level: float = 20.0,
    cycle: bool = True,
    settings: d.Settings | None = None,
    seed: int = 1,
) -> np.ndarray:
    """Store the state `days` of readings up to `until` teach the detectors (a daily cycle around `level` with
    a little noise, or noise alone); the state."""
    end = until.timestamp()
    ts = np.arange(end - days * 86400.0, end, every_s) + every_s
    noise = np.random.default_rng(seed).normal(0.0, 0.2, len(ts))
    values = (daily_cycle((ts / HOUR) % 24, level=level) if cycle else np.full(len(ts), level)) + noise
    states = d.new_states(1)
    d.detect(states, d.params_matrix([settings or d.Settings()]), np.zeros(len(ts), dtype=np.intp), ts, values)
    states_save([sensor_id], states)
    return states[0]
