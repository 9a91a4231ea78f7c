"""The detectors on generated series: pure numpy, no database."""

from __future__ import annotations

import numpy as np
import pytest

from apps.anomaly import detectors as d

STEP = 60.0  # one reading a minute
START = 1.7e9
DAY = int(86400 / STEP)


def series(count: int, *, seed: int = 3, level: float = 20.0, noise: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return START + STEP * np.arange(count), level + rng.normal(0, noise, count)


def run(ts, values, settings: d.Settings | None = None, *, batch: int = 500, states=None):
    """Stream one sensor's readings through detect() in batches; the concatenated results and the state."""
    states = d.new_states(1) if states is None else states
    params = d.params_matrix([settings or d.Settings()])
    parts = [
        d.detect(
            states, params, np.zeros(len(ts[i : i + batch]), dtype=np.intp), ts[i : i + batch], values[i : i + batch]
        )
        for i in range(0, len(ts), batch)
    ]
    merged = d.Detection(
        **{name: np.concatenate([getattr(p, name) for p in parts]) for name in d.Detection.__dataclass_fields__}
    )
    return merged, states


def opened_at(result, ts) -> list[float]:
    return ts[result.event == d.OPENED].tolist()


def test_gaussian_noise_opens_no_alert():
    ts, values = series(5 * DAY)

    result, _ = run(ts, values)

    assert opened_at(result, ts) == []
    assert result.score.max() < 1


def test_a_spike_is_found_and_opens_one_alert_that_resolves():
    ts, values = series(2 * DAY)
    at = int(1.5 * DAY)
    values[at : at + 3] += 5  # ten standard deviations, three readings

    result, _ = run(ts, values)

    assert result.fired[at] & d.DEVIATION
    assert opened_at(result, ts) == [ts[at + 1]]  # the second anomalous reading (min_readings 2)
    assert result.episode_start[at + 1] == ts[at]
    resolved = ts[result.event == d.RESOLVED].tolist()
    assert len(resolved) == 1 and resolved[0] > ts[at + 2]
    assert result.expected[at] == pytest.approx(20, abs=0.3)
    assert result.low[at] < 20 < result.high[at] < values[at]


def test_a_single_noisy_reading_does_not_open_an_alert_but_is_scored():
    ts, values = series(2 * DAY)
    at = int(1.5 * DAY)
    values[at] += 4  # eight standard deviations, once: below the rate detector, deviation fires alone

    result, _ = run(ts, values)

    assert result.fired[at] == d.DEVIATION
    assert opened_at(result, ts) == []


def test_a_single_reading_opens_with_min_readings_one():
    ts, values = series(2 * DAY)
    at = int(1.5 * DAY)
    values[at] += 6

    result, _ = run(ts, values, d.Settings(min_readings=1))

    assert opened_at(result, ts) == [ts[at]]


def test_warm_up_holds_alerts_back():
    ts, values = series(2 * DAY)
    values[100:110] += 20  # inside the first day

    result, states = run(ts, values)

    assert not result.fired[: DAY - 1].any()
    assert (result.score[: DAY - 1] == 0).all()
    assert opened_at(result, ts) == []
    assert states[0, d.N] == len(ts)


def test_warm_up_in_readings_holds_when_time_has_passed():
    ts = START + 3600 * np.arange(300.0)  # hourly readings: a day passes after 24, 200 readings take 8 days
    values = np.full(300, 5.0) + np.random.default_rng(1).normal(0, 0.1, 300)
    values[150:160] = 50

    result, _ = run(ts, values)

    assert opened_at(result, ts) == []


def test_a_level_shift_opens_one_episode_despite_noise_around_the_threshold():
    ts, values = series(3 * DAY)
    at = 2 * DAY
    values[at:] += 4.0  # eight standard deviations, for good

    result, _ = run(ts, values)

    assert len(opened_at(result, ts)) == 1
    assert opened_at(result, ts)[0] <= ts[at + 10]
    assert int(result.episode_detectors[result.event == d.OPENED][0]) & d.DEVIATION


def test_a_jump_is_found_by_the_rate_of_change_detector_at_its_reading():
    ts = START + STEP * np.arange(3 * DAY)
    values = 100 + np.cumsum(np.random.default_rng(5).normal(0, 0.2, len(ts)))  # a random walk
    at = 2 * DAY
    values[at:] += 8.0  # forty usual steps at once

    result, _ = run(ts, values)

    assert result.fired[at] & d.RATE
    assert opened_at(result, ts) == [ts[at]]


def test_a_random_walk_without_jumps_opens_nothing():
    ts = START + STEP * np.arange(4 * DAY)
    values = 100 + np.cumsum(np.random.default_rng(8).normal(0, 0.2, len(ts)))

    result, _ = run(ts, values)

    assert opened_at(result, ts) == []


def test_a_stuck_sensor_is_found_after_its_learned_period():
    ts, values = series(3 * DAY)
    at = 2 * DAY
    values[at:] = values[at]  # frozen

    result, _ = run(ts, values)

    [opened] = opened_at(result, ts)
    assert ts[at] < opened <= ts[at] + 30 * STEP  # ten usual intervals, two readings to open
    assert int(result.episode_detectors[result.event == d.OPENED][0]) == d.STUCK


def test_long_usual_plateaus_are_not_stuck():
    """A sensor that holds its value for hours every day (a set point) is learned as such."""
    ts = START + STEP * np.arange(6 * DAY)
    hours = ((ts - START) / 3600) % 24
    values = np.where(hours < 8, 20.0, 60.0)  # a square wave, exactly flat in between

    result, _ = run(ts, values)

    assert not (result.fired & d.STUCK).any()


def test_stuck_after_a_fixed_period():
    ts, values = series(3 * DAY)
    at = 2 * DAY
    values[at:] = values[at]

    result, _ = run(ts, values, d.Settings(stuck_after_s=3600))

    [opened] = opened_at(result, ts)
    assert opened == pytest.approx(ts[at] + 3600 + STEP, abs=STEP)


MIDNIGHT = START - START % 86400


def cycle(ts: np.ndarray) -> np.ndarray:
    return 20 + 10 * np.sin(2 * np.pi * ((ts % 86400) / 3600) / 24)


def daily_cycle(days: int, seed: int = 4) -> tuple[np.ndarray, np.ndarray]:
    ts = MIDNIGHT + 300.0 * np.arange(days * 288)  # five-minute readings from midnight UTC
    return ts, cycle(ts) + np.random.default_rng(seed).normal(0, 0.5, len(ts))


def test_a_daily_cycle_is_normal_and_its_absence_is_not():
    ts, values = daily_cycle(10)
    quiet, _ = run(ts, values)
    assert opened_at(quiet, ts) == []

    broken = values.copy()
    start = 8 * 288  # day 8 at midnight: the cycle stays at its mean (20) for twelve hours instead of rising
    broken[start : start + 144] = 20 + np.random.default_rng(9).normal(0, 0.5, 144)
    result, states = run(ts, broken)

    [opened] = opened_at(result, ts)
    assert ts[start] < opened < ts[start + 72]  # within six hours: the peak would be at 06:00
    # The band follows the hour of day (learned per hour: within an hour the cycle moves by up to 2.6).
    day_before = slice(start - 288, start - 192)
    np.testing.assert_allclose(quiet.expected[day_before], cycle(ts[day_before]), atol=1.5)


def test_seasonality_off_misses_the_broken_cycle():
    ts, values = daily_cycle(10)
    start = 8 * 288
    values[start : start + 144] = 20 + np.random.default_rng(9).normal(0, 0.5, 144)

    result, _ = run(ts, values, d.Settings(seasonality="off"))

    assert opened_at(result, ts) == []


def test_late_readings_are_scored_but_change_nothing():
    ts, values = series(2 * DAY)
    result, states = run(ts, values)
    learned = states.copy()
    params = d.params_matrix([d.Settings()])

    late_ts = np.array([ts[-10], ts[-1], ts[-500]])  # older than, and equal to, the newest learned
    late = d.detect(states, params, np.zeros(3, dtype=np.intp), late_ts, np.array([20.0, 80.0, 80.0]))

    np.testing.assert_array_equal(states, learned)
    assert not late.learned.any()
    assert (late.event == d.NO_EVENT).all()
    assert late.fired[1] & d.DEVIATION  # scored against the state as it is
    assert late.score[0] < 1


def test_a_replayed_batch_does_not_update_twice():
    ts, values = series(2 * DAY)
    values[-5:] += 10
    states = d.new_states(1)
    params = d.params_matrix([d.Settings()])
    rows = np.zeros(len(ts), dtype=np.intp)
    first = d.detect(states, params, rows, ts, values)
    after_first = states.copy()

    again = d.detect(states, params, rows, ts, values)

    np.testing.assert_array_equal(states, after_first)
    assert (first.event == d.OPENED).sum() == 1
    assert (again.event == d.NO_EVENT).all()


def test_readings_of_a_batch_may_come_in_any_order():
    ts, values = series(DAY + 200)
    in_order, states_in_order = run(ts, values, batch=len(ts))
    shuffled = np.random.default_rng(2).permutation(len(ts))

    states = d.new_states(1)
    result = d.detect(
        states, d.params_matrix([d.Settings()]), np.zeros(len(ts), dtype=np.intp), ts[shuffled], values[shuffled]
    )

    np.testing.assert_array_equal(states, states_in_order)
    np.testing.assert_array_equal(result.score, in_order.score[shuffled])


def test_vectorised_over_sensors_equals_a_per_sensor_reference_loop():
    """Many sensors in mixed batches (one to several readings each, interleaved, some late) give exactly what
    each sensor gives when its readings are fed one at a time on its own."""
    rng = np.random.default_rng(11)
    sensors = 40
    settings = [
        d.Settings(
            warmup_readings=50,
            warmup_s=3600,
            sensitivity=["low", "medium", "high"][i % 3],
            min_readings=1 + i % 3,
            seasonality=["auto", "off"][i % 2],
        )
        for i in range(sensors)
    ]
    per_sensor = 400
    ts = START + STEP * np.arange(per_sensor)[None, :] + rng.uniform(0, 30, (sensors, 1))
    values = 10 + rng.normal(0, 1, (sensors, per_sensor)) * (1 + np.arange(sensors)[:, None] % 4)
    values[::5, 300:305] += 25  # spikes on some sensors
    values[1::7, 320:] = values[1::7, 320:321]  # some get stuck
    rows = np.repeat(np.arange(sensors), per_sensor)
    flat_ts, flat_values = ts.ravel(), values.ravel()
    # Readings arrive roughly in time order, up to ten minutes out of it: some are late for their batch.
    order = np.argsort(flat_ts + rng.uniform(0, 600, len(rows)), kind="stable")
    # And some are sent again later (replays), which must change nothing.
    order = np.concatenate([order, order[rng.choice(len(order), 200)]])
    params = d.params_matrix(settings)

    states = d.new_states(sensors)
    vectorised = {name: np.empty(len(order)) for name in ("score", "expected", "fired", "event", "learned")}
    for start in range(0, len(order), 1000):
        chunk = order[start : start + 1000]
        result = d.detect(states, params, rows[chunk], flat_ts[chunk], flat_values[chunk])
        for name in vectorised:
            vectorised[name][start : start + len(chunk)] = getattr(result, name)

    # The reference: each batch's readings one at a time, each sensor's in time order (what detect() promises).
    reference_states = d.new_states(sensors)
    reference = {name: np.empty(len(order)) for name in vectorised}
    for start in range(0, len(order), 1000):
        chunk = order[start : start + 1000]
        for position in start + np.lexsort((flat_ts[chunk], rows[chunk])):
            reading, row = order[position], rows[order[position]]
            single = reference_states[row : row + 1]
            result = d.detect(
                single,
                params[row : row + 1],
                np.zeros(1, dtype=np.intp),
                flat_ts[reading : reading + 1],
                flat_values[reading : reading + 1],
            )
            reference_states[row] = single[0]
            for name in reference:
                reference[name][position] = getattr(result, name)[0]

    np.testing.assert_array_equal(states, reference_states)
    for name in vectorised:
        np.testing.assert_array_equal(vectorised[name], reference[name], err_msg=name)
    # The comparison covered episodes, late readings and replays.
    assert (vectorised["event"] == d.OPENED).sum() > 5
    assert (vectorised["learned"] == 0).sum() > 200


def test_an_empty_batch_changes_nothing():
    states = d.new_states(2)
    before = states.copy()

    result = d.detect(
        states, d.params_matrix([d.Settings()] * 2), np.array([], dtype=np.intp), np.array([]), np.array([])
    )

    assert len(result.score) == 0
    np.testing.assert_array_equal(states, before)


def test_sensitivity_scales_the_thresholds():
    low, medium, high = (d.Settings(sensitivity=s).vector() for s in ("low", "medium", "high"))
    assert low[d.P_DEVIATION_Z] > medium[d.P_DEVIATION_Z] > high[d.P_DEVIATION_Z]
    assert medium[d.P_DEVIATION_Z] == d.Settings().deviation_z
