"""Streaming anomaly detectors over numpy arrays: no database, no Django.

Every sensor has a fixed-size state vector (`STATE_SIZE` float64 slots, laid out below) that the caller keeps
between batches, and a parameter vector (`PARAM_SIZE` slots, from its effective rule). `detect()` walks a batch
of readings of many sensors through their states in reading time and says, per reading, how anomalous it is,
the band it was expected in, which detector fired, and whether an episode (what becomes an alert) opened or
resolved at it.

The detectors (docs/anomaly.md says why these and with which defaults):
- deviation: distance from a robust baseline, in units of its spread. The baseline is an EWMA level and an
  EWMA of the absolute deviation, both fed with residuals clipped at a few spreads, so one outlier moves
  neither much. Optionally seasonal: a 24-slot hour-of-day profile learned Holt-Winters style, with a spread
  per hour, used once three days are learned and (in `auto`) only when it explains the series much better
  than a flat level does.
- rate of change: a step between two readings far beyond the largest usual step (a decaying maximum).
- stuck: no change beyond a fraction of the usual step for longer than the longest usual flat run (learned),
  or than a fixed period.

Late data and replays: a reading at or before the sensor's newest learned reading time is scored against the
state as it is but changes nothing, neither the baseline nor the episode, so replaying a batch or receiving old
readings never moves a state twice or backwards.

Vectorisation: the readings are sorted per sensor by time and processed in rounds; round k takes the k-th
reading of every sensor in the batch, so each round is a handful of numpy operations over the sensors it
touches, and a batch costs (readings per sensor) rounds whatever the number of sensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# --- State layout ----------------------------------------------------------------------------------------------
# Scalars first, then the three 24-slot hour-of-day arrays. Bump STATE_VERSION when the layout changes; states of
# another version are started afresh (apps/anomaly/states.py).
STATE_VERSION = 1
SEASON_SLOTS = 24
(
    N,  # readings learned (drives the warm-up)
    FIRST_TS,  # reading time of the first learned reading (epoch seconds)
    LAST_TS,  # newest learned reading time; readings at or before it are late
    LAST_VALUE,
    INTERVAL,  # EWMA of the time between readings (s)
    FLAT_LEVEL,  # non-seasonal EWMA level
    FLAT_SPREAD,  # EWMA |value - FLAT_LEVEL|
    LEVEL,  # deseasonalised level (Holt-Winters)
    SEASON_SPREAD,  # EWMA |value - LEVEL - profile[hour]|, all hours together
    STEP_PEAK,  # decaying maximum of |step|
    STEP_MEAN,  # EWMA of |step| over steps that moved
    RUN_SINCE,  # start of the current flat run
    RUN_VALUE,  # the value the flat run holds
    RUN_LONGEST,  # longest flat run seen (s)
    PENDING_SINCE,  # first anomalous reading of a pending episode (NaN: none)
    PENDING_COUNT,
    OPEN,  # 1 while an episode is open
    OPENED_AT,
    CALM_COUNT,  # readings back in the band since the last anomalous one, within an open episode
    PEAK_SCORE,  # highest score of the pending or open episode
    PEAK_AT,
    DETECTORS_SEEN,  # bit mask of the detectors that fired during the episode
) = range(22)
PROFILE = 22  # 24 slots: learned offset of each hour of day from LEVEL
PROFILE_SPREAD = PROFILE + SEASON_SLOTS  # 24 slots: EWMA |residual| per hour
PROFILE_COUNT = PROFILE_SPREAD + SEASON_SLOTS  # 24 slots: readings learned per hour
STATE_SIZE = PROFILE_COUNT + SEASON_SLOTS

# --- Parameters ------------------------------------------------------------------------------------------------
(
    P_WARMUP,  # readings before any detector may fire
    P_WARMUP_S,  # and reading time (s) learned before
    P_HALF_LIFE,  # readings after which an old reading weighs half in the baseline
    P_DEVIATION_Z,  # deviation threshold, in robust standard deviations
    P_RATE_FACTOR,  # a step fires beyond this many times the largest usual step
    P_STUCK_FACTOR,  # a flat run fires beyond this many times the longest usual one
    P_STUCK_AFTER_S,  # fixed stuck period instead of the learned one (NaN: learned)
    P_SEASONALITY,  # 0 off, 1 auto, 2 daily
    P_MIN_READINGS,  # anomalous readings in a row before an episode opens
    P_MIN_DURATION_S,  # and the time they must span
    P_CLEAR_READINGS,  # readings back in the band before an open episode resolves
) = range(11)
PARAM_SIZE = 11

SEASONALITY = {"off": 0.0, "auto": 1.0, "daily": 2.0}
# Sensitivity scales every detector's threshold at once (low: fewer, surer alerts).
SENSITIVITY = {"low": 1.4, "medium": 1.0, "high": 0.7}


@dataclass(frozen=True)
class Settings:
    """A sensor's detector parameters (the effective rule, defaults filled in)."""

    sensitivity: str = "medium"
    warmup_readings: int = 200
    warmup_s: float = 86400.0
    half_life_readings: float = 60.0
    deviation_z: float = 6.0
    rate_factor: float = 2.5
    stuck_factor: float = 3.0
    stuck_after_s: float | None = None
    seasonality: str = "auto"
    min_readings: int = 2
    min_duration_s: float = 0.0
    clear_readings: int = 6

    def vector(self) -> np.ndarray:
        scale = SENSITIVITY[self.sensitivity]
        row = np.empty(PARAM_SIZE)
        row[P_WARMUP] = self.warmup_readings
        row[P_WARMUP_S] = self.warmup_s
        row[P_HALF_LIFE] = self.half_life_readings
        row[P_DEVIATION_Z] = self.deviation_z * scale
        row[P_RATE_FACTOR] = self.rate_factor * scale
        row[P_STUCK_FACTOR] = self.stuck_factor * scale
        row[P_STUCK_AFTER_S] = np.nan if self.stuck_after_s is None else self.stuck_after_s
        row[P_SEASONALITY] = SEASONALITY[self.seasonality]
        row[P_MIN_READINGS] = self.min_readings
        row[P_MIN_DURATION_S] = self.min_duration_s
        row[P_CLEAR_READINGS] = self.clear_readings
        return row


def params_matrix(settings: list[Settings]) -> np.ndarray:
    """One parameter row per sensor, in the order of the state rows."""
    if not settings:
        return np.empty((0, PARAM_SIZE))
    # Sensors without an override share their type's Settings object: one vector per distinct object (all
    # are alive during the call, so their ids are distinct), then repeated by index.
    slot: dict[int, int] = {}
    vectors: list[np.ndarray] = []
    index = np.empty(len(settings), dtype=np.intp)
    for position, entry in enumerate(settings):
        row = slot.get(id(entry))
        if row is None:
            row = slot[id(entry)] = len(vectors)
            vectors.append(entry.vector())
        index[position] = row
    return np.vstack(vectors)[index]


def new_states(count: int) -> np.ndarray:
    """Fresh states: nothing learned yet."""
    states = np.zeros((count, STATE_SIZE))
    states[:, [FIRST_TS, LAST_TS, LAST_VALUE, PENDING_SINCE, OPENED_AT, PEAK_AT]] = np.nan
    return states


# --- Constants that are not knobs ------------------------------------------------------------------------------
CLIP = 3.0  # residuals are clipped at this many spreads before they update the baseline
HOLD = 0.5  # a pending or open episode goes on while the score stays above this fraction of the threshold
MAD_TO_SIGMA = 1.2533  # E|X - mu| = sigma * sqrt(2 / pi) for a normal X
SEASON_WARMUP_S = 3 * 86400.0  # the profile is used once this much reading time is learned
SEASON_GAIN = 0.5  # auto: the profile is used when it halves the spread of a flat level
STEP_PEAK_HALF_LIFE_S = 2 * 86400.0
STUCK_MIN_READINGS = 10  # a flat run shorter than this many usual intervals is never stuck
REL_FLOOR = 1e-3  # spreads are never taken below this fraction of the level (a noiseless sensor ...)
ABS_FLOOR = 1e-6  # ... nor below this, around zero

# Detector bits in `fired`.
DEVIATION, RATE, STUCK = 1, 2, 4
DETECTOR_NAMES = {DEVIATION: "deviation", RATE: "rate_of_change", STUCK: "stuck"}

# Episode events.
NO_EVENT, OPENED, RESOLVED = 0, 1, 2


def _floor(expected: np.ndarray) -> np.ndarray:
    return np.maximum(REL_FLOOR * np.abs(expected), ABS_FLOOR)


def _sigma(mean_absolute_deviation: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """A robust standard deviation from an EWMA of absolute deviations, never below the floor."""
    return np.maximum(mean_absolute_deviation * MAD_TO_SIGMA, _floor(expected))


@dataclass
class Detection:
    """Per reading, in the order the readings were given."""

    score: np.ndarray  # highest detector score; 1.0 is the threshold (0 during warm-up)
    expected: np.ndarray  # the baseline's value for the reading
    low: np.ndarray  # the deviation band the reading was expected in
    high: np.ndarray
    fired: np.ndarray  # bit mask of DEVIATION, RATE, STUCK (0 during warm-up)
    learned: np.ndarray  # False for late readings (and replays): scored, but nothing changed
    event: np.ndarray  # NO_EVENT, OPENED or RESOLVED
    episode_start: np.ndarray  # for OPENED: the first anomalous reading's time
    episode_peak: np.ndarray  # for OPENED and RESOLVED: the episode's highest score so far
    episode_detectors: np.ndarray  # for OPENED and RESOLVED: bit mask of detectors seen in the episode


def detect(states: np.ndarray, params: np.ndarray, rows: np.ndarray, ts: np.ndarray, values: np.ndarray) -> Detection:
    """Walk readings through the sensors' states, updating `states` in place.

    `states` (sensors x STATE_SIZE) and `params` (sensors x PARAM_SIZE) are row-aligned; `rows` gives each
    reading's sensor row, `ts` its time in epoch seconds, `values` its value. Readings may come in any order:
    they are processed per sensor in time order.

    1. Sort the readings by (row, ts) and number them within their sensor (rank).
    2. For each rank: gather the states of the sensors that have a reading of that rank, score and update
       them in one vectorised step, scatter them back.
    3. Return the per-reading results in the caller's order.
    """
    rows = np.asarray(rows, dtype=np.intp)
    ts = np.asarray(ts, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    count = len(rows)
    result = Detection(
        score=np.zeros(count),
        expected=np.zeros(count),
        low=np.zeros(count),
        high=np.zeros(count),
        fired=np.zeros(count, dtype=np.int8),
        learned=np.zeros(count, dtype=bool),
        event=np.zeros(count, dtype=np.int8),
        episode_start=np.full(count, np.nan),
        episode_peak=np.zeros(count),
        episode_detectors=np.zeros(count, dtype=np.int8),
    )
    if count == 0:
        return result
    order = np.lexsort((ts, rows))
    sorted_rows = rows[order]
    first_of_sensor = np.r_[True, sorted_rows[1:] != sorted_rows[:-1]]
    positions = np.arange(count)
    rank = positions - np.maximum.accumulate(np.where(first_of_sensor, positions, 0))
    by_rank = order[np.argsort(rank, kind="stable")]
    bounds = np.r_[0, np.cumsum(np.bincount(rank))]
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        readings = by_rank[start:stop]
        sensor_rows = rows[readings]
        state = states[sensor_rows]
        _step(state, params[sensor_rows], ts[readings], values[readings], result, readings)
        states[sensor_rows] = state
    return result


@dataclass
class Band:
    """The deviation band of a state at given times: what a reading there is scored against."""

    expected: np.ndarray  # the baseline's value
    low: np.ndarray  # expected - deviation_z robust sigmas
    high: np.ndarray  # expected + deviation_z robust sigmas
    seasonal: np.ndarray  # True where the hour-of-day profile shapes it, False where the flat level does


def expected_band(states: np.ndarray, params: np.ndarray, ts: np.ndarray) -> Band:
    """The band a reading at `ts` would be scored against by `detect()` with these states as they are, row by
    row (`states`, `params` and `ts` are row-aligned; broadcast one sensor's rows to project it over many
    times). The same function `detect()` uses, so a band drawn from it and an alert's expected range agree."""
    states = np.asarray(states, dtype=np.float64)
    params = np.asarray(params, dtype=np.float64)
    ts = np.asarray(ts, dtype=np.float64)
    hour = ((ts // 3600.0) % SEASON_SLOTS).astype(np.intp)
    expected, half_width, seasonal = _band(states, params, ts, hour, np.arange(len(ts)))
    return Band(expected=expected, low=expected - half_width, high=expected + half_width, seasonal=seasonal)


def warmed_up(states: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Per row, whether the states have learned their warm-up (readings and reading time), so that any
    reading after the newest learned one may fire."""
    span = states[:, LAST_TS] - states[:, FIRST_TS]  # NaN (nothing learned) compares False
    return (states[:, N] >= params[:, P_WARMUP]) & (span >= params[:, P_WARMUP_S])


def _band(
    state: np.ndarray, param: np.ndarray, t: np.ndarray, hour: np.ndarray, index: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The centre of the deviation band, its half-width (deviation_z robust sigmas) and whether it is seasonal:
    the seasonal model once learned (and, in auto, clearly better), else the flat one."""
    profile = state[index, PROFILE + hour]
    profile_spread = state[index, PROFILE_SPREAD + hour]
    seasonality = param[:, P_SEASONALITY]
    season_learned = (seasonality > 0) & (t - state[:, FIRST_TS] >= SEASON_WARMUP_S)
    season_better = state[:, SEASON_SPREAD] < SEASON_GAIN * state[:, FLAT_SPREAD]
    seasonal = season_learned & ((seasonality == SEASONALITY["daily"]) | season_better)
    expected = np.where(seasonal, state[:, LEVEL] + profile, state[:, FLAT_LEVEL])
    # An hour's own spread, but never below a quarter of the all-hours one: an hour that happened to be quiet
    # while it was learned must not make every later wiggle in it an anomaly.
    spread = np.where(seasonal, np.maximum(profile_spread, 0.25 * state[:, SEASON_SPREAD]), state[:, FLAT_SPREAD])
    return expected, param[:, P_DEVIATION_Z] * _sigma(spread, expected), seasonal


def _step(
    state: np.ndarray, param: np.ndarray, t: np.ndarray, x: np.ndarray, result: Detection, readings: np.ndarray
) -> None:
    """One reading for each of these sensors (one state row each): score, then learn, then the episode."""
    late = t <= state[:, LAST_TS]  # NaN (nothing learned) compares False
    fresh = ~late
    n = state[:, N]
    first = np.isnan(state[:, LAST_TS])
    warm = (n >= param[:, P_WARMUP]) & (t - state[:, FIRST_TS] >= param[:, P_WARMUP_S])
    hour = ((t // 3600.0) % SEASON_SLOTS).astype(np.intp)
    index = np.arange(len(t))

    # Deviation: the distance from the band's centre in units of its half-width.
    expected, half_width, _seasonal = _band(state, param, t, hour, index)
    floor = _floor(expected)
    deviation_score = np.abs(x - expected) / half_width

    # Rate of change against the decaying largest step.
    step = np.abs(x - state[:, LAST_VALUE])
    step = np.where(first, 0.0, step)
    elapsed = np.where(first, 0.0, t - state[:, LAST_TS])
    peak_decay = np.exp2(-np.maximum(elapsed, 0.0) / STEP_PEAK_HALF_LIFE_S)
    step_peak = state[:, STEP_PEAK] * peak_decay
    rate_score = step / (param[:, P_RATE_FACTOR] * np.maximum(step_peak, floor))

    # Stuck: a flat run (no move beyond a tenth of the usual step) longer than the usual longest one.
    tolerance = np.maximum(0.1 * state[:, STEP_MEAN], ABS_FLOOR)
    flat = ~first & (np.abs(x - state[:, RUN_VALUE]) <= tolerance)
    run = np.where(flat, t - state[:, RUN_SINCE], 0.0)
    learned_period = np.maximum(
        param[:, P_STUCK_FACTOR] * state[:, RUN_LONGEST], STUCK_MIN_READINGS * state[:, INTERVAL]
    )
    stuck_after = np.where(np.isnan(param[:, P_STUCK_AFTER_S]), learned_period, param[:, P_STUCK_AFTER_S])
    stuck_score = np.where(stuck_after > 0, run / np.where(stuck_after > 0, stuck_after, 1.0), 0.0)

    scores = np.stack([deviation_score, rate_score, stuck_score])
    score = np.where(warm, scores.max(axis=0), 0.0)
    fired = np.where(
        warm, (deviation_score >= 1) * DEVIATION + (rate_score >= 1) * RATE + (stuck_score >= 1) * STUCK, 0
    ).astype(np.int8)

    result.score[readings] = score
    result.expected[readings] = expected
    result.low[readings] = expected - half_width
    result.high[readings] = expected + half_width
    result.fired[readings] = fired
    result.learned[readings] = fresh

    learned = state.copy()
    _learn(learned, param, t, x, first, flat, step, step_peak, elapsed, hour, index)
    _advance_episodes(learned, param, t, score, fired, result, readings, fresh)
    state[fresh] = learned[fresh]


def _learn(
    state: np.ndarray,
    param: np.ndarray,
    t: np.ndarray,
    x: np.ndarray,
    first: np.ndarray,
    flat: np.ndarray,
    step: np.ndarray,
    step_peak: np.ndarray,
    elapsed: np.ndarray,
    hour: np.ndarray,
    index: np.ndarray,
) -> None:
    n = state[:, N]
    # Running means while young (1/n), then an EWMA of the configured half-life; no clipping while warming up,
    # when the spread is not known yet.
    alpha = np.maximum(1.0 / (n + 1.0), 1.0 - np.exp2(-1.0 / param[:, P_HALF_LIFE]))
    warming = (n < param[:, P_WARMUP]) | (t - np.where(first, t, state[:, FIRST_TS]) < param[:, P_WARMUP_S])

    flat_level = np.where(first, x, state[:, FLAT_LEVEL])
    flat_residual = x - flat_level
    flat_limit = np.where(warming, np.inf, CLIP * _sigma(state[:, FLAT_SPREAD], flat_level))
    state[:, FLAT_LEVEL] = flat_level + alpha * np.clip(flat_residual, -flat_limit, flat_limit)
    state[:, FLAT_SPREAD] += alpha * (np.minimum(np.abs(flat_residual), flat_limit) - state[:, FLAT_SPREAD])

    level = np.where(first, x, state[:, LEVEL])
    profile = state[index, PROFILE + hour]
    residual = x - level - profile
    hour_spread = np.maximum(state[index, PROFILE_SPREAD + hour], 0.25 * state[:, SEASON_SPREAD])
    season_limit = np.where(warming, np.inf, CLIP * _sigma(hour_spread, level + profile))
    clipped = np.clip(residual, -season_limit, season_limit)
    state[:, LEVEL] = level + alpha * clipped
    state[:, SEASON_SPREAD] += alpha * (np.minimum(np.abs(residual), season_limit) - state[:, SEASON_SPREAD])
    seasonal_on = param[:, P_SEASONALITY] > 0
    hour_count = state[index, PROFILE_COUNT + hour]
    gamma = np.where(seasonal_on, np.maximum(1.0 / (hour_count + 1.0), alpha), 0.0)
    state[index, PROFILE + hour] = profile + gamma * clipped
    state[index, PROFILE_SPREAD + hour] += gamma * (
        np.minimum(np.abs(residual), season_limit) - state[index, PROFILE_SPREAD + hour]
    )
    state[index, PROFILE_COUNT + hour] = hour_count + seasonal_on

    # Steps: the decaying peak grows at most to twice itself per reading, so one wild step does not blind the
    # detector for days, while a sensor that really became jumpier is learned within a few readings.
    grown = np.where(warming, step, np.minimum(step, 2.0 * np.maximum(step_peak, ABS_FLOOR)))
    state[:, STEP_PEAK] = np.maximum(step_peak, grown)
    moved = ~first & ~flat
    state[:, STEP_MEAN] = np.where(
        moved, state[:, STEP_MEAN] + alpha * (step - state[:, STEP_MEAN]), state[:, STEP_MEAN]
    )
    state[:, INTERVAL] = np.where(
        first, 0.0, np.where(n <= 1, elapsed, state[:, INTERVAL] + alpha * (elapsed - state[:, INTERVAL]))
    )

    # Flat runs: a run that ends is learned, capped at twice the longest so far once warm (a sensor that was
    # stuck once must not teach the detector that being stuck is normal); while warming up the current run
    # counts too, so a sensor that starts on a long plateau does not look stuck at the end of its warm-up.
    run_so_far = np.where(first, 0.0, state[:, LAST_TS] - state[:, RUN_SINCE])
    cap = np.where(warming, np.inf, 2.0 * np.maximum(state[:, RUN_LONGEST], STUCK_MIN_READINGS * state[:, INTERVAL]))
    ended = moved | (warming & flat)
    candidate = np.where(warming & flat, t - state[:, RUN_SINCE], run_so_far)
    state[:, RUN_LONGEST] = np.where(
        ended, np.maximum(state[:, RUN_LONGEST], np.minimum(candidate, cap)), state[:, RUN_LONGEST]
    )
    restart = first | ~flat
    state[:, RUN_SINCE] = np.where(restart, t, state[:, RUN_SINCE])
    state[:, RUN_VALUE] = np.where(restart, x, state[:, RUN_VALUE])

    state[:, FIRST_TS] = np.where(first, t, state[:, FIRST_TS])
    state[:, LAST_TS] = t
    state[:, LAST_VALUE] = x
    state[:, N] = n + 1


def _advance_episodes(
    state: np.ndarray,
    param: np.ndarray,
    t: np.ndarray,
    score: np.ndarray,
    fired: np.ndarray,
    result: Detection,
    readings: np.ndarray,
    fresh: np.ndarray,
) -> None:
    """The episode logic: a pending episode opens after enough anomalous readings over enough time, goes on
    while the score stays above HOLD (hysteresis, so one episode is one alert) and resolves after enough
    readings back in the band. Only fresh readings move it; the caller keeps the late ones' changes out."""
    is_open = state[:, OPEN] > 0
    pending = ~np.isnan(state[:, PENDING_SINCE])
    anomalous = fired > 0
    holding = score >= HOLD
    # A jump is one reading by nature: a rate-of-change reading counts as enough readings on its own (the
    # minimum duration still applies). The others must persist, which keeps single noisy readings quiet.
    weight = np.where((fired & RATE) > 0, param[:, P_MIN_READINGS], anomalous.astype(np.float64))
    # Pending: started by an anomalous reading, kept by one above HOLD, dropped otherwise.
    keep = ~is_open & ((pending & holding) | anomalous)
    starts = ~is_open & ~pending & anomalous
    state[:, PENDING_SINCE] = np.where(starts, t, np.where(keep, state[:, PENDING_SINCE], np.nan))
    state[:, PENDING_COUNT] = np.where(keep, state[:, PENDING_COUNT] + weight, 0.0)
    in_episode = keep | is_open
    new_peak = in_episode & (score > state[:, PEAK_SCORE])
    state[:, PEAK_AT] = np.where(new_peak, t, np.where(in_episode, state[:, PEAK_AT], np.nan))
    state[:, PEAK_SCORE] = np.where(in_episode, np.maximum(state[:, PEAK_SCORE], score), 0.0)
    state[:, DETECTORS_SEEN] = np.where(in_episode, state[:, DETECTORS_SEEN].astype(np.int64) | fired, 0)

    opens = (
        keep
        & (state[:, PENDING_COUNT] >= param[:, P_MIN_READINGS])
        & (t - state[:, PENDING_SINCE] >= param[:, P_MIN_DURATION_S])
    )
    episode_start = state[:, PENDING_SINCE].copy()
    state[:, OPEN] = np.where(opens, 1.0, state[:, OPEN])
    state[:, OPENED_AT] = np.where(opens, t, state[:, OPENED_AT])
    state[:, PENDING_SINCE] = np.where(opens, np.nan, state[:, PENDING_SINCE])
    state[:, PENDING_COUNT] = np.where(opens, 0.0, state[:, PENDING_COUNT])

    calm = np.where(is_open & ~holding, state[:, CALM_COUNT] + 1, 0.0)
    resolves = is_open & (calm >= param[:, P_CLEAR_READINGS])
    state[:, CALM_COUNT] = np.where(resolves, 0.0, calm)
    event = np.where(opens, OPENED, np.where(resolves, RESOLVED, NO_EVENT)).astype(np.int8)
    reported = fresh & (event != NO_EVENT)
    result.event[readings] = np.where(fresh, event, NO_EVENT)
    result.episode_start[readings] = np.where(reported & opens, episode_start, np.nan)
    result.episode_peak[readings] = np.where(reported, state[:, PEAK_SCORE], 0.0)
    result.episode_detectors[readings] = np.where(reported, state[:, DETECTORS_SEEN], 0)
    state[:, OPEN] = np.where(resolves, 0.0, state[:, OPEN])
    state[:, OPENED_AT] = np.where(resolves, np.nan, state[:, OPENED_AT])
    state[:, PEAK_SCORE] = np.where(resolves, 0.0, state[:, PEAK_SCORE])
    state[:, PEAK_AT] = np.where(resolves, np.nan, state[:, PEAK_AT])
    state[:, DETECTORS_SEEN] = np.where(resolves, 0, state[:, DETECTORS_SEEN])
