"""What the end-to-end benchmarks share: their own database, and a web server plus Celery workers started and
stopped around a run."""

from __future__ import annotations

import argparse
import http.client
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def add_database_arguments(parser: argparse._ActionsContainer, *, database: str, redis_db: int) -> None:
    """--database, --db-url-base and --redis-url: where a benchmark keeps its own database and Redis database
    (each benchmark has its defaults, so that two of them never share a queue)."""
    parser.add_argument("--database", default=database)
    parser.add_argument(
        "--db-url-base", default=os.environ.get("BENCH_DB_URL_BASE", "postgres://postgres@localhost:5432")
    )
    parser.add_argument("--redis-url", default=f"redis://localhost:6379/{redis_db}")


# What a run writes; emptied before a run so every run starts equal (CASCADE takes the tables that refer to them).
RUN_TABLES = (
    "ingest_reading", "ingest_latestreading", "ingest_datagramseq", "ingest_ingestbatch", "alerts_alert",
    "alerts_thresholdstate", "anomaly_anomalystate",
)  # fmt: skip


def run_tables_empty(*also: str) -> None:
    """Empty RUN_TABLES and `also` (Django set up)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(RUN_TABLES + also)} CASCADE")


def dc_voltage_type():
    """The benchmarks' sensor type, DC voltage with a plausible range (Django set up)."""
    from apps.devices.models import SensorType

    sensor_type, _ = SensorType.objects.get_or_create(
        code="voltage_dc", defaults={"name": "DC voltage", "unit": "V", "plausible_min": 0, "plausible_max": 1500}
    )
    return sensor_type


def bench_environment(*, db_url_base: str, database: str, redis_url: str, **overrides: str) -> dict[str, str]:
    """The environment of a benchmark and the processes it starts: a database and a Redis database of its own,
    production settings, quiet logs. Set in this process too; returned whole for the processes it starts."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"{db_url_base}/{database}",
        REDIS_URL=redis_url,
        # A key of its own per run: production settings refuse a short or placeholder key.
        SECRET_KEY=os.environ.get("SECRET_KEY") or secrets.token_urlsafe(50),
        DEBUG="false",
        DJANGO_SETTINGS_MODULE="telemetry_project.settings",
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
        **overrides,
    )
    os.environ.update(env)
    return env


def create_database(db_url_base: str, database: str, env: dict[str, str], *, fresh: bool = False) -> None:
    """Create the benchmark's database if missing (`fresh`: drop it first, so every run starts equal) and
    migrate it."""
    import psycopg

    with psycopg.connect(f"{db_url_base}/postgres", autocommit=True) as conn:
        if fresh:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone():
            conn.execute(f'CREATE DATABASE "{database}"')
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)


class Stack:
    """gunicorn and Celery workers in process groups of their own, logging to `log_dir/{prefix}-{name}.log`."""

    def __init__(self, env: dict[str, str], log_dir: Path, prefix: str) -> None:
        self.env, self.log_dir, self.prefix = env, log_dir, prefix
        self.processes: list[subprocess.Popen] = []

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{self.prefix}-{name}.log"

    def spawn(self, name: str, command: list[str]) -> None:
        log = open(self.log_path(name), "w")  # noqa: SIM115 (the child writes to it until stopped)
        self.processes.append(
            subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        )

    def web(self, port: int, workers: int) -> None:
        self.spawn("web", [
            sys.executable, "-m", "gunicorn", "telemetry_project.wsgi:application", "--bind", f"127.0.0.1:{port}",
            "--workers", str(workers), "--worker-class", "gthread", "--threads", "4", "--log-level", "warning",
        ])  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", "/health")
                if connection.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise SystemExit(f"the web server did not start; see {self.log_path('web')}")

    def worker(self, name: str, queues: str, concurrency: int) -> None:
        self.spawn(name, [
            sys.executable, "-m", "celery", "-A", "workers", "worker", "-Q", queues, "-c", str(concurrency),
            "-n", f"bench-{name}@%h", "--without-gossip", "--without-mingle", "-l", "warning",
        ])  # fmt: skip

    def wait_for_workers(self, expected: int, timeout: float = 60) -> None:
        from workers.celery import app

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(app.control.ping(timeout=1) or []) < expected:
            time.sleep(0.5)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
