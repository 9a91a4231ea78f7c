"""Which index on readings.ts: btree or BRIN? Measures both on the same rows in the same run.

For each variant it builds a copy of the readings table shape (primary key (sensor_id, ts) plus the ts
index), loads N readings with COPY in arrival order (time-ordered, sensors interleaved), and times:
the load, a time-range scan over all sensors (what rollups and retention do), and the index size.

    .venv/bin/python bench/reading_indexes.py            # 2,000,000 readings
    .venv/bin/python bench/reading_indexes.py --rows 500000

Uses its own database (`telemetry_bench`, created if missing); the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime, timedelta

import psycopg

VARIANTS = {
    "btree": "CREATE INDEX {table}_ts ON {table} USING btree (ts)",
    "brin": "CREATE INDEX {table}_ts ON {table} USING brin (ts) WITH (pages_per_range = 32)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--sensors", type=int, default=1_000)
    parser.add_argument("--dsn", default="postgresql://postgres@localhost:5432/telemetry_bench")
    args = parser.parse_args()

    with psycopg.connect(args.dsn.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = 'telemetry_bench'").fetchone():
            admin.execute("CREATE DATABASE telemetry_bench")

    start = datetime(2026, 1, 1, tzinfo=UTC)
    per_sensor = args.rows // args.sensors
    results: dict[str, dict] = {}
    with psycopg.connect(args.dsn, autocommit=True) as conn:
        for name, index_sql in VARIANTS.items():
            table = f"bench_readings_{name}"
            conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.execute(
                f"CREATE TABLE {table} (sensor_id bigint NOT NULL, ts timestamptz NOT NULL, value float8 NOT NULL,"
                " PRIMARY KEY (sensor_id, ts))"
            )
            conn.execute(index_sql.format(table=table))
            began = time.perf_counter()
            with (
                conn.cursor() as cursor,
                cursor.copy(f"COPY {table} (sensor_id, ts, value) FROM STDIN (FORMAT BINARY)") as copy,
            ):
                copy.set_types(["int8", "timestamptz", "float8"])
                for step in range(per_sensor):
                    ts = start + timedelta(minutes=step)
                    for sensor in range(1, args.sensors + 1):
                        copy.write_row((sensor, ts, 20.0 + (step % 50) / 10))
            load_s = time.perf_counter() - began
            conn.execute(f"VACUUM ANALYZE {table}")
            # One hour in the middle of the data, all sensors: the shape of a rollup refresh.
            middle = start + timedelta(minutes=per_sensor // 2)
            scans = []
            for _ in range(5):
                began = time.perf_counter()
                conn.execute(
                    f"SELECT sensor_id, avg(value) FROM {table} WHERE ts >= %s AND ts < %s GROUP BY sensor_id",
                    [middle, middle + timedelta(hours=1)],
                ).fetchall()
                scans.append((time.perf_counter() - began) * 1000)
            size = conn.execute("SELECT pg_relation_size(%s)", [f"{table}_ts"]).fetchone()[0]
            results[name] = {
                "load_rows_per_s": round(args.rows / load_s),
                "hour_scan_ms": round(sorted(scans)[len(scans) // 2], 1),
                "index_kb": size // 1024,
            }
            print(
                f"{name:5}: load {results[name]['load_rows_per_s']:,} rows/s, one-hour scan over all sensors "
                f"{results[name]['hour_scan_ms']} ms (median of 5), ts index {results[name]['index_kb']:,} kB"
            )
            conn.execute(f"DROP TABLE {table}")
    summary = {
        "rows": args.rows,
        "btree": results["btree"],
        "brin": results["brin"],
        "load_speedup_brin": round(results["brin"]["load_rows_per_s"] / results["btree"]["load_rows_per_s"], 2),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
