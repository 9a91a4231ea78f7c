"""A real Celery worker in a subprocess, talking to the test database and the test Redis database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redis
from celery import Celery, current_app
from celery.exceptions import TimeoutError as CeleryTimeoutError
from django.conf import settings
from kombu.exceptions import ChannelError

from workers.celery import app as celery_app

QUEUES = ("ingest", "alerts", "default", "exports")
# Where kombu's Redis transport keeps delivered but unacknowledged messages; left over from an earlier run
# they would be restored into the queues once their visibility timeout passes.
UNACKED_KEYS = ("unacked", "unacked_index", "unacked_mutex")


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll `predicate` until it returns something truthy and return that; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout} s: {getattr(predicate, '__name__', predicate)}")
        time.sleep(interval)


def database_url(settings_dict: dict) -> str:
    """A DATABASE_URL for the database Django is connected to (after test setup: the test database)."""
    user = quote(settings_dict.get("USER") or "", safe="")
    password = quote(settings_dict.get("PASSWORD") or "", safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = quote(settings_dict.get("HOST") or "localhost", safe="")
    port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
    return f"postgres://{credentials}{host}{port}/{quote(settings_dict['NAME'], safe='')}"


def purge_queues(app: Celery = celery_app) -> None:
    """Drop every message waiting in (or taken but not acknowledged from) the broker's queues."""
    client = redis.Redis.from_url(app.conf.broker_url)
    try:
        client.delete(*UNACKED_KEYS)
    finally:
        client.close()
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        for queue in QUEUES:
            channel.queue_purge(queue)


@contextmanager
def celery_app_on(redis_url: str) -> Iterator[Celery]:
    """A fresh Celery app configured like the project's, with broker and results on `redis_url`, made the
    current app (what the services' send_task goes through) until the block ends."""
    app = Celery("telemetry-private", set_as_current=False)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.broker_url = app.conf.result_backend = redis_url
    previous = current_app._get_current_object()
    app.set_current()
    try:
        yield app
    finally:
        previous.set_current()
        app.close()


@contextmanager
def private_worker(tmp_path: Path, **start: Any) -> Iterator[CeleryWorker]:
    """A worker on a Redis server of its own (started here in `tmp_path`), whose app is the current one while it
    runs, so the test's own publishes go to it too; `start`: CeleryWorker.start's options (env, include, ...)."""
    from django.db import connection

    from tests.services import PrivateRedis

    server = PrivateRedis(tmp_path / "redis").start()
    try:
        with celery_app_on(server.url(0)) as app:
            worker = CeleryWorker.start(
                database_url=database_url(connection.settings_dict),
                log_path=tmp_path / "worker.log",
                app=app,
                **start,
            )
            try:
                yield worker
            finally:
                worker.stop()
    finally:
        server.stop()


@dataclass
class CeleryWorker:
    process: subprocess.Popen
    log_path: Path
    database_url: str
    app: Celery = celery_app

    @classmethod
    def start(
        cls,
        *,
        database_url: str,
        log_path: Path,
        startup_timeout: float = 30.0,
        app: Celery = celery_app,
        env: dict[str, str] | None = None,
        include: tuple[str, ...] = (),
        concurrency: int = 2,
        purge: bool = True,
    ) -> CeleryWorker:
        """A worker on `app`'s broker (by default the test Redis database) and `database_url`, with `env` on top
        of the test environment and the modules of `include` imported besides the project's tasks. The queues
        are emptied first unless `purge` is false (a worker restarted to take over what is waiting)."""
        broker_url = app.conf.broker_url
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": database_url,
            "REDIS_URL": broker_url if app is not celery_app else settings.REDIS_URL,
            "CELERY_BROKER_URL": broker_url,
            "CELERY_RESULT_BACKEND": app.conf.result_backend,
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "workers",
            "worker",
            "-Q",
            ",".join(QUEUES),
            "-c",
            str(concurrency),
            "--without-gossip",
            "--without-mingle",
            "-l",
            "info",
        ]
        for module in include:
            command += ["--include", module]
        if purge:
            purge_queues(app)
        log_file = log_path.open("ab")
        try:
            # A session of its own, so the whole pool (parent and forked children) can be killed together.
            process = subprocess.Popen(
                command,
                cwd=settings.BASE_DIR,
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log_file.close()
        worker = cls(process=process, log_path=log_path, database_url=database_url, app=app)
        try:
            worker.wait_until_ready(startup_timeout)
        except BaseException:
            worker.stop()
            raise
        return worker

    def wait_until_ready(self, timeout: float) -> None:
        """Round-trip `housekeeping.ping` through the broker; the first answer proves the worker consumes."""
        deadline = time.monotonic() + timeout
        result = self.app.send_task("housekeeping.ping")
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"Celery worker exited with {self.process.returncode}:\n{self.log()}")
            try:
                if result.get(timeout=0.5) == "pong":
                    return
            except CeleryTimeoutError:
                pass
            if time.monotonic() >= deadline:
                raise RuntimeError(f"Celery worker did not answer a ping within {timeout} s:\n{self.log()}")

    def pending(self) -> int:
        """Messages waiting in the worker's queues plus those delivered and not yet acknowledged: with late
        acknowledgement, that is every task still reserved or running."""
        with self.app.connection_for_write() as connection:
            channel = connection.default_channel
            waiting = 0
            for queue in QUEUES:
                try:
                    waiting += channel.queue_declare(queue=queue, passive=True).message_count
                except ChannelError:  # an empty queue has no key in Redis
                    pass
            return waiting + channel.client.hlen(channel.unacked_key)

    def wait_until_idle(self, timeout: float = 60.0) -> None:
        """Wait until nothing is queued or running. Idle must be seen twice in a row: a message the worker has
        just popped is briefly in neither place."""
        deadline = time.monotonic() + timeout
        idle_checks = 0
        while idle_checks < 2:
            idle_checks = idle_checks + 1 if self.pending() == 0 else 0
            if time.monotonic() >= deadline:
                raise RuntimeError(f"Celery worker still busy after {timeout} s:\n{self.log()[-5000:]}")
            time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole worker, main process and pool, the way a host that dies takes it."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self, grace: float = 10.0) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL for the worker's whole process group."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            # The leader is still alive, so the group id is still the worker's own.
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
