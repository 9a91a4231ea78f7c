"""Anomaly benchmark: the detectors on labelled series, scored by their windows.

Series: the NAB series in bench/data/nab (Numenta Anomaly Benchmark, MIT licence, LICENSE-NAB.txt beside
them; windows.json holds each series' labelled anomaly windows) and generated ones with known anomalies
(`--synthetic`: noise, a random walk, noisy daily cycles, a step, a stuck segment, spikes), which check that
the defaults are not tuned to the NAB series alone.

    .venv/bin/python bench/anomaly.py --offline                 # NAB and the generated series
    .venv/bin/python bench/anomaly.py --offline --only nab --sensitivity high
    .venv/bin/python bench/anomaly.py --online                  # the same series through the real pipeline
    .venv/bin/python bench/anomaly.py --micro                   # µs per reading of the vectorised update

`--offline` streams each series through apps.anomaly.detectors in batches, in time order, with the default
rule (no database). The alert opened at a reading is what counts: per series the windows detected (an alert
opened inside the window), the alerts opened outside any window, and how far into the window the first alert
came; overall the windowed precision and recall, and a NAB-style score (see `score_series` and `summary`).

`--online` feeds the same series to the real pipeline: a database of its own (default
`telemetry_bench_anomaly`, dropped and created afresh), a Redis database of its own (default 11), gunicorn and
a Celery worker on the ingest, alerts and default queues. Per series one sensor type (no plausible range, no
threshold), one device, one sensor and one anomaly rule on the type with only `enabled` and `--sensitivity`.
Each series is posted to HTTP ingest with its device's key in requests of `--batch-size` readings, the next
request of a series only once its previous batch is stored and evaluated (the series go round-robin). The
anomaly alerts' opening times are then scored as above, and compared, series by series, with --offline run
in the same process: the JSON says per source whether they are equal (`equals_offline`), and names the series
that differ.

`--micro` times `detect()` on batches of 1,000 readings over 500 sensors with states in memory.

The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from apps.anomaly import detectors  # noqa: E402  (pure numpy: needs no Django set-up)
from bench.harness import Stack, add_database_arguments, bench_environment, create_database  # noqa: E402

NAB_DIR = ROOT / "bench" / "data" / "nab"
STEP_S = 300.0  # the generated series are sampled every five minutes, like most NAB series


@dataclass
class Series:
    name: str
    ts: np.ndarray  # epoch seconds, ascending
    values: np.ndarray
    windows: list[tuple[float, float]]
    source: str  # "nab" or "synthetic"


# --- Series ----------------------------------------------------------------------------------------------------


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def load_nab(directory: Path = NAB_DIR) -> list[Series]:
    windows = json.loads((directory / "windows.json").read_text())
    series = []
    for name in sorted(windows):
        with open(directory / name, newline="") as handle:
            rows = list(csv.DictReader(handle))
        series.append(
            Series(
                name=name.removesuffix(".csv"),
                ts=np.array([_epoch(row["timestamp"]) for row in rows]),
                values=np.array([float(row["value"]) for row in rows]),
                windows=[(_epoch(start), _epoch(end)) for start, end in windows[name]],
                source="nab",
            )
        )
    return series


def _nab_style_windows(ts: np.ndarray, onsets: list[int]) -> list[tuple[float, float]]:
    """Windows as NAB draws them: 10 % of the series' span shared among its anomalies, centred on each onset."""
    if not onsets:
        return []
    half = 0.1 * (ts[-1] - ts[0]) / len(onsets) / 2
    return [(ts[i] - half, ts[i] + half) for i in onsets]


def synthetic_series(seed: int = 17, days: int = 14) -> list[Series]:
    """Generated series with known anomalies (and three without), each `days` long at five-minute steps."""
    rng = np.random.default_rng(seed)
    count = int(days * 86400 / STEP_S)
    ts = datetime(2026, 1, 5, tzinfo=UTC).timestamp() + STEP_S * np.arange(count)
    hours = (ts % 86400) / 3600
    daily = 10 * np.sin(2 * np.pi * (hours - 8) / 24)
    at = [int(count * fraction) for fraction in (0.35, 0.6, 0.8)]
    made: list[tuple[str, np.ndarray, list[int]]] = []

    made.append(("noise", 50 + rng.normal(0, 1, count), []))
    made.append(("random_walk", 100 + np.cumsum(rng.normal(0, 0.2, count)), []))
    made.append(("daily_cycle", 20 + daily + rng.normal(0, 0.8, count), []))

    walk = 100 + np.cumsum(rng.normal(0, 0.2, count))
    walk[at[1] :] += 6.0  # a jump of 30 usual steps
    made.append(("random_walk_jump", walk, [at[1]]))

    step = 50 + rng.normal(0, 1, count)
    step[at[1] :] += 6.0
    made.append(("step_change", step, [at[1]]))

    stuck = 20 + daily + rng.normal(0, 0.8, count)
    stuck[at[1] : at[1] + 72] = stuck[at[1]]  # frozen for six hours
    made.append(("stuck_segment", stuck, [at[1]]))

    spikes = 50 + rng.normal(0, 1, count)
    for i in at:
        spikes[i : i + 3] += 12.0  # three readings (fifteen minutes) far out
    made.append(("spikes", spikes, at))

    # The cycle stops: six hours at the daily mean while it should be at its peak (inside the usual range).
    broken = 20 + daily + rng.normal(0, 0.8, count)
    peak_day = at[1] - at[1] % 288 + 14 * 12 - 36
    broken[peak_day : peak_day + 72] = 20 + rng.normal(0, 0.8, 72)
    made.append(("daily_cycle_broken", broken, [peak_day]))

    shifted = 20 + daily + rng.normal(0, 0.8, count)
    shifted[at[0] : at[0] + 144] += 7.0  # twelve hours too warm, still inside the daily range
    made.append(("daily_cycle_shift", shifted, [at[0]]))

    return [
        Series(name=name, ts=ts, values=values, windows=_nab_style_windows(ts, onsets), source="synthetic")
        for name, values, onsets in made
    ]


def load_series(which: str) -> list[Series]:
    series = []
    if which in ("all", "nab"):
        series += load_nab()
    if which in ("all", "synthetic"):
        series += synthetic_series()
    return series


# --- Running the detectors -------------------------------------------------------------------------------------


def run_offline(series: Series, settings: detectors.Settings, batch_size: int) -> list[float]:
    """Opening times of the alerts the detectors raise on `series`, streamed in time-ordered batches."""
    states = detectors.new_states(1)
    params = detectors.params_matrix([settings])
    opened: list[float] = []
    for start in range(0, len(series.ts), batch_size):
        ts = series.ts[start : start + batch_size]
        result = detectors.detect(
            states, params, np.zeros(len(ts), dtype=np.intp), ts, series.values[start:][: len(ts)]
        )
        opened += ts[result.event == detectors.OPENED].tolist()
    return opened


# --- Scoring ---------------------------------------------------------------------------------------------------

# The standard profile of Lavin and Ahmad (2015), "Evaluating real-time anomaly detection algorithms: the
# Numenta Anomaly Benchmark".
A_TP, A_FP, A_FN = 1.0, -0.11, -1.0


def scaled_sigmoid(y: float) -> float:
    """The paper's weight of a detection at relative position y: y = -1 at the window's start, 0 at its end,
    positive after it (in window lengths). A detection early in a window is worth about A_TP, at its end
    about half of that, and one long after a window tends to A_FP."""
    return (A_TP - A_FP) / (1.0 + math.exp(5.0 * y)) + A_FP


@dataclass
class SeriesScore:
    name: str
    source: str
    windows: int
    detected: int = 0
    outside: int = 0
    earliness: list[float] = field(default_factory=list)  # fraction of the window left at the first alert
    delays_h: list[float] = field(default_factory=list)  # hours from the window's start to the first alert
    raw: float = 0.0  # NAB raw score
    null: float = 0.0  # raw score of a detector that never fires
    perfect: float = 0.0  # raw score of one detection at the start of every window


def score_series(series: Series, opened: list[float]) -> SeriesScore:
    """NAB's rules: the first alert inside a window counts (weighted by how early), later ones in the same
    window are ignored; an alert outside every window is a false positive, weighted by the sigmoid of its
    distance after the preceding window (A_FP when no window precedes it); a window without alert costs
    A_FN."""
    result = SeriesScore(name=series.name, source=series.source, windows=len(series.windows))
    result.null = A_FN * len(series.windows)
    result.perfect = scaled_sigmoid(-1.0) * len(series.windows)
    hit = [False] * len(series.windows)
    for at in sorted(opened):
        inside = [i for i, (start, end) in enumerate(series.windows) if start <= at <= end]
        if inside:
            i = inside[0]
            if not hit[i]:
                hit[i] = True
                start, end = series.windows[i]
                y = (at - end) / (end - start)
                result.raw += scaled_sigmoid(y)
                result.earliness.append((end - at) / (end - start))
                result.delays_h.append((at - start) / 3600)
            continue
        result.outside += 1
        before = [(start, end) for start, end in series.windows if end < at]
        if before:
            start, end = max(before, key=lambda window: window[1])
            result.raw += scaled_sigmoid((at - end) / (end - start))
        else:
            result.raw += A_FP
    result.detected = sum(hit)
    result.raw += A_FN * (len(series.windows) - result.detected)
    return result


def summary(scores: list[SeriesScore]) -> dict:
    windows = sum(s.windows for s in scores)
    detected = sum(s.detected for s in scores)
    outside = sum(s.outside for s in scores)
    raw, null, perfect = (sum(getattr(s, name) for s in scores) for name in ("raw", "null", "perfect"))
    return {
        "series": len(scores),
        "windows": windows,
        "detected": detected,
        "outside": outside,
        "recall": round(detected / windows, 3) if windows else None,
        "precision": round(detected / (detected + outside), 3) if detected + outside else None,
        "nab_score": round(100 * (raw - null) / (perfect - null), 1) if perfect != null else None,
    }


def print_table(title: str, scores: list[SeriesScore]) -> None:
    print(f"\n{title}")
    print("| series | windows | detected | alerts outside | first alert (h into window) | window left |")
    print("| --- | ---: | ---: | ---: | --- | --- |")
    for s in scores:
        delays = ", ".join(f"{d:.1f}" for d in s.delays_h) or "-"
        left = ", ".join(f"{e:.0%}" for e in s.earliness) or "-"
        print(f"| {s.name} | {s.windows} | {s.detected} | {s.outside} | {delays} | {left} |")
    figures = summary(scores)
    print(
        f"windows {figures['detected']}/{figures['windows']} detected, {figures['outside']} alerts outside; "
        f"recall {figures['recall']}, precision {figures['precision']}, NAB-style score {figures['nab_score']}"
    )


def offline(args: argparse.Namespace) -> dict:
    settings = detectors.Settings(sensitivity=args.sensitivity)
    scores_by_source: dict[str, list[SeriesScore]] = {}
    for series in load_series(args.only):
        opened = run_offline(series, settings, args.batch_size)
        scores_by_source.setdefault(series.source, []).append(score_series(series, opened))
    figures = {}
    for source, scores in scores_by_source.items():
        print_table(f"{source} series, sensitivity {args.sensitivity}", scores)
        figures[source] = summary(scores)
    return figures


# --- Online: the real pipeline ---------------------------------------------------------------------------------


@dataclass
class OnlineSensor:
    series: Series
    sensor_id: int
    key: str
    device_key: str
    bodies: list[bytes]
    sent: int = 0  # requests posted
    pending: str | None = None  # the batch id of the request posted and not yet evaluated


def online_environment(args: argparse.Namespace) -> dict[str, str]:
    # One device sends a request as soon as its previous batch is evaluated, far above what a real device does.
    return bench_environment(
        db_url_base=args.db_url_base,
        database=args.database,
        redis_url=args.redis_url,
        THROTTLE_DEVICE_RATE="off",
        THROTTLE_INGEST_READINGS_RATE="off",
    )


def online_world(series_list: list[Series], sensitivity: str) -> list[tuple[int, str, str]]:
    """Per series a sensor type (no plausible range, no threshold), a device, a sensor and one anomaly rule
    on the type with only its sensitivity set: (sensor id, sensor key, device key) per series."""
    import django

    django.setup()
    from apps.anomaly.models import AnomalyRule
    from apps.devices.models import Sensor, SensorType
    from apps.devices.services import device_create

    world = []
    for series in series_list:
        code = f"anomaly_{series.source}_{series.name}"
        sensor_type = SensorType.objects.create(code=code, name=f"{series.source} {series.name}")
        device, device_key = device_create(device_id=code)
        sensor = Sensor.objects.create(device=device, sensor_type=sensor_type, key=f"{code}/{code}")
        AnomalyRule.objects.create(sensor_type=sensor_type, enabled=True, sensitivity=sensitivity)
        world.append((sensor.id, sensor.key, device_key))
    return world


def request_bodies(series: Series, key: str, batch_size: int) -> list[bytes]:
    """The series as ingest requests of `batch_size` readings, in the loader's order (the order --offline
    feeds them in)."""
    import orjson

    stamps = [datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z") for ts in series.ts.tolist()]
    values = series.values.tolist()
    return [
        orjson.dumps(
            [
                {"sensor": key, "ts": ts, "value": value}
                for ts, value in zip(
                    stamps[start : start + batch_size], values[start : start + batch_size], strict=True
                )
            ]
        )
        for start in range(0, len(stamps), batch_size)
    ]


def stream_online(args: argparse.Namespace, sensors: list[OnlineSensor]) -> float:
    """Round-robin over the series: post the next request of every series whose last batch is evaluated,
    then look (one query) which posted batches are now stored and evaluated. So one sensor's readings reach
    the detectors in order while the series go in parallel. Returns the time of the first request."""
    from django.db import connection

    http_connection = http.client.HTTPConnection("127.0.0.1", args.port, timeout=60)
    started = time.time()
    deadline = time.monotonic() + args.timeout
    while True:
        for sensor in sensors:
            if sensor.pending is None and sensor.sent < len(sensor.bodies):
                headers = {"Authorization": f"Device {sensor.device_key}", "Content-Type": "application/json"}
                http_connection.request("POST", "/api/v1/ingest/", body=sensor.bodies[sensor.sent], headers=headers)
                response = http_connection.getresponse()
                payload = response.read()
                if response.status != 202:
                    raise SystemExit(f"ingest of {sensor.series.name} answered {response.status}: {payload[:300]!r}")
                sensor.pending = json.loads(payload)["batch_id"]
                sensor.sent += 1
        waiting = {sensor.pending: sensor for sensor in sensors if sensor.pending is not None}
        if not waiting:
            return started
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT id::text, status FROM ingest_ingestbatch WHERE id = ANY(%s::uuid[])"
                " AND (status = 'failed' OR (status = 'done' AND evaluated_at IS NOT NULL))",
                [list(waiting)],
            )
            finished = cursor.fetchall()
        for batch_id, status in finished:
            if status == "failed":
                raise SystemExit(f"batch {batch_id} of {waiting[batch_id].series.name} failed")
            waiting[batch_id].pending = None
        if finished:
            deadline = time.monotonic() + args.timeout
        elif time.monotonic() > deadline:
            raise SystemExit(f"{len(waiting)} batches not evaluated within {args.timeout} s")
        else:
            time.sleep(0.01)


def online_openings(sensor_ids: list[int]) -> dict[int, list[float]]:
    """The opening times (the reading time each opened at) of the anomaly alerts of these sensors."""
    from apps.alerts.models import Alert

    opened: dict[int, list[float]] = {sensor_id: [] for sensor_id in sensor_ids}
    for sensor_id, opened_at in Alert.objects.filter(kind=Alert.Kind.ANOMALY, sensor_id__in=sensor_ids).values_list(
        "sensor_id", "opened_at"
    ):
        opened[sensor_id].append(opened_at.timestamp())
    return {sensor_id: sorted(times) for sensor_id, times in opened.items()}


def online(args: argparse.Namespace) -> dict:
    """1. A database of its own, created fresh; per series a sensor type, a device, a sensor, one rule.
    2. gunicorn and a Celery worker on the ingest, alerts and default queues, on a Redis database of its own.
    3. Every series posted over HTTP ingest with its device's key (stream_online); the end is the last
       batch's evaluation as the database recorded it.
    4. The anomaly alerts of each sensor scored as --offline scores the detectors' openings, and the
       openings compared, series by series, with --offline run here on the same series."""
    import redis

    series_list = load_series(args.only)
    env = online_environment(args)
    create_database(args.db_url_base, args.database, env, fresh=True)
    world = online_world(series_list, args.sensitivity)
    sensors = [
        OnlineSensor(series, sensor_id, key, device_key, request_bodies(series, key, args.batch_size))
        for series, (sensor_id, key, device_key) in zip(series_list, world, strict=True)
    ]
    redis.Redis.from_url(args.redis_url).flushdb()
    stack = Stack(env, Path(os.environ.get("BENCH_LOG_DIR", "/tmp")), "bench-anomaly")
    try:
        stack.web(args.port, args.web_workers)
        stack.worker("worker", "ingest,alerts,default", args.worker_concurrency)
        stack.wait_for_workers(1)
        started = stream_online(args, sensors)
    finally:
        stack.stop()

    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT sum(received), sum(stored), sum(duplicates), sum(rejected), extract(epoch FROM max(evaluated_at))"
            " FROM ingest_ingestbatch"
        )
        received, stored, duplicates, rejected, last_evaluated = (float(x) for x in cursor.fetchone())
    elapsed = last_evaluated - started
    print(
        f"online: {int(received):,} readings in {sum(len(s.bodies) for s in sensors):,} requests of up to "
        f"{args.batch_size}, {int(stored):,} stored, {int(duplicates)} duplicates, {int(rejected)} rejected; "
        f"{elapsed:.1f} s from the first request to the last batch evaluated ({received / elapsed:,.0f} readings/s)"
    )

    opened_online = online_openings([sensor.sensor_id for sensor in sensors])
    settings = detectors.Settings(sensitivity=args.sensitivity)
    by_source: dict[str, tuple[list[SeriesScore], list[SeriesScore], list[str]]] = {}
    for sensor in sensors:
        series = sensor.series
        here = opened_online[sensor.sensor_id]
        there = run_offline(series, settings, args.batch_size)
        online_scores, offline_scores, differing = by_source.setdefault(series.source, ([], [], []))
        online_scores.append(score_series(series, here))
        offline_scores.append(score_series(series, there))
        if sorted(there) != here:
            differing.append(series.name)
            print(f"{series.name}: online opened {_times(here)}, offline {_times(there)}")
    figures: dict = {}
    for source, (online_scores, offline_scores, differing) in by_source.items():
        print_table(f"{source} series online, sensitivity {args.sensitivity}", online_scores)
        figures[source] = summary(online_scores)
        offline_figures = summary(offline_scores)
        figures[source]["equals_offline"] = figures[source] == offline_figures and not differing
        if not figures[source]["equals_offline"]:
            figures[source]["offline"] = offline_figures
            figures[source]["differing"] = differing
        print(
            f"online = offline: {'yes, every alert at the same reading' if not differing else 'no: ' + ', '.join(differing)}"
        )
    figures.update(
        readings=int(received),
        elapsed_s=round(elapsed, 1),
        readings_per_s=round(received / elapsed),
        duplicates=int(duplicates),
        rejected=int(rejected),
    )
    return figures


def _times(epochs: list[float]) -> str:
    return ", ".join(datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M") for at in epochs) or "none"


# --- Cost ------------------------------------------------------------------------------------------------------


def micro(args: argparse.Namespace) -> dict:
    """µs per reading of `detect()`: batches of `--readings` over `--sensors`, after a warm-up that takes every
    sensor past its warm-up period (so every detector runs)."""
    rng = np.random.default_rng(1)
    sensors, readings = args.sensors, args.readings
    states = detectors.new_states(sensors)
    params = detectors.params_matrix([detectors.Settings()] * sensors)
    clock = 1.7e9
    per_sensor = readings // sensors

    def batch() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        nonlocal clock
        rows = np.repeat(np.arange(sensors), per_sensor)
        ts = clock + np.tile(np.arange(per_sensor), sensors) * 10.0 + rng.uniform(0, 1, len(rows))
        clock += per_sensor * 10.0
        shuffled = rng.permutation(len(rows))
        return rows[shuffled], ts[shuffled], rng.normal(20, 1, len(rows))

    for _ in range(250 // per_sensor + 1):
        detectors.detect(states, params, *batch())
    batches = [batch() for _ in range(args.repeat)]
    timings = []
    for rows, ts, values in batches:
        started = time.perf_counter()
        detectors.detect(states, params, rows, ts, values)
        timings.append(time.perf_counter() - started)
    median = float(np.median(timings))
    per_reading_us = median / readings * 1e6
    print(
        f"detect(): {readings} readings over {sensors} sensors, median {median * 1e3:.2f} ms per batch, "
        f"{per_reading_us:.2f} µs per reading ({args.repeat} batches)"
    )
    return {"batch_ms": round(median * 1e3, 3), "us_per_reading": round(per_reading_us, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--offline", action="store_true", help="stream the series through the detectors")
    mode.add_argument("--online", action="store_true", help="stream the series through HTTP ingest and a worker")
    mode.add_argument("--micro", action="store_true", help="time the vectorised update")
    parser.add_argument("--only", choices=["all", "nab", "synthetic"], default="all")
    parser.add_argument("--sensitivity", choices=sorted(detectors.SENSITIVITY), default="medium")
    parser.add_argument("--batch-size", type=int, default=100, help="readings per batch or request")
    parser.add_argument("--sensors", type=int, default=500)
    parser.add_argument("--readings", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=50)
    online_group = parser.add_argument_group("online")
    add_database_arguments(online_group, database="telemetry_bench_anomaly", redis_db=11)
    online_group.add_argument("--port", type=int, default=8767)
    online_group.add_argument("--web-workers", type=int, default=1, help="gunicorn worker processes")
    online_group.add_argument("--worker-concurrency", type=int, default=2, help="processes of the Celery worker")
    online_group.add_argument("--timeout", type=float, default=120, help="seconds to wait for any batch to finish")
    args = parser.parse_args()
    figures = offline(args) if args.offline else online(args) if args.online else micro(args)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
