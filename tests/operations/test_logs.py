"""Log lines: readable text for people, JSON for log shippers, both with the request id; and a real worker
logs its routine per-task lines at DEBUG, not INFO."""

from __future__ import annotations

import copy
import io
import json
import logging
import logging.config
import os
import re
import secrets
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from django.conf import settings

from apps.ingest.models import IngestBatch
from apps.operations.request_id import request_id_var
from tests.ingest.helpers import post_readings
from workers.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[2]


def configured_logger(formatter_name: str) -> tuple[logging.Logger, io.StringIO]:
    """A logger writing through the formatter and filters LOGGING configures, into a string."""
    config = copy.deepcopy(settings.LOGGING)  # the configurator consumes what it reads
    configurator = logging.config.DictConfigurator(config)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(configurator.configure_formatter(config["formatters"][formatter_name]))
    handler.addFilter(configurator.configure_filter(config["filters"]["request_id"]))
    logger = logging.getLogger(f"tests.logs.{formatter_name}.{secrets.token_hex(3)}")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, stream


@contextmanager
def under_request(request_id: str):
    """Code in the block runs as a request with this id would (it logs and queues tasks under it)."""
    token = request_id_var.set(request_id)
    try:
        yield
    finally:
        request_id_var.reset(token)


def test_text_lines_carry_time_level_logger_request_id_and_message():
    logger, stream = configured_logger("text")
    with under_request("req-42"):
        logger.info("stored %d readings", 3)
    logger.warning("no request here")

    first, second = stream.getvalue().splitlines()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} INFO    tests\.logs\.text\.\w+ \[req-42\] stored 3 readings", first
    )
    assert re.fullmatch(r"\S+ \S+ WARNING tests\.logs\.text\.\w+ no request here", second)


def test_text_lines_are_followed_by_the_traceback_of_an_exception():
    logger, stream = configured_logger("text")
    try:
        raise ValueError("bad reading")
    except ValueError:
        logger.exception("batch failed")

    lines = stream.getvalue().splitlines()
    assert lines[0].endswith(" batch failed") and " ERROR " in lines[0]
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == "ValueError: bad reading"


def test_json_lines_are_one_object_each_with_the_request_id():
    logger, stream = configured_logger("json")
    with under_request("req-43"):
        logger.info("stored %d readings", 3)

    [line] = stream.getvalue().splitlines()
    record = json.loads(line)
    assert {key: record[key] for key in ("level", "message", "request_id")} == {
        "level": "INFO",
        "message": "stored 3 readings",
        "request_id": "req-43",
    }
    assert record["logger"].startswith("tests.logs.json.") and record["process"] == os.getpid() and record["time"]


def test_the_log_format_is_text_with_debug_and_json_without_unless_chosen():
    # The settings module run afresh under each environment; a local .env is not read, so it cannot interfere.
    script = """
import os, runpy, environ
environ.Env.read_env = classmethod(lambda cls, *args, **kwargs: None)
for debug, chosen in [("true", None), ("false", None), ("false", "text"), ("true", "json"), ("false", "plain")]:
    os.environ["DEBUG"] = debug
    os.environ.pop("LOG_FORMAT", None) if chosen is None else os.environ.update(LOG_FORMAT=chosen)
    print(runpy.run_path("telemetry_project/settings.py")["LOG_FORMAT"])
"""
    environment = {key: value for key, value in os.environ.items() if key != "LOG_FORMAT"}
    environment["SECRET_KEY"] = "x" * 50
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["text", "json", "text", "json", "text"]


def ping(request_id: str, **options) -> str:
    """Send housekeeping.ping as a request with this id would; its task id once a worker answered."""
    with under_request(request_id):
        result = celery_app.send_task("housekeeping.ping", **options)
    assert result.get(timeout=60) == "pong"
    return result.id


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_worker_at_info_logs_no_line_for_a_task_or_a_batch_that_succeeded(world, celery_worker, admin_api, wait_for):
    task_id = ping("req-info-1")
    response = post_readings(admin_api, [{"sensor": "env-001/temperature", "ts": "2026-02-12T16:00:00Z", "value": 20}])
    batch = IngestBatch.objects.filter(pk=response.json()["batch_id"])
    wait_for(lambda: batch.filter(status=IngestBatch.Status.DONE).exists(), timeout=30)
    celery_worker.wait_until_idle()

    log = celery_worker.log()
    assert "ready" in log  # the worker logs at INFO (its start-up lines)...
    assert task_id not in log  # ...but neither the task's receipt nor its success,
    assert response.json()["batch_id"] not in log  # nor what ingest stored


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_worker_at_debug_logs_received_and_succeeded_as_debug_lines_with_the_request_id(tmp_path):
    queue = f"logs-{secrets.token_hex(4)}"  # no other worker consumes it
    log_path = tmp_path / "worker.log"
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CELERY_RESULT_BACKEND": settings.CELERY_RESULT_BACKEND,
        "LOG_FORMAT": "text",
        "PYTHONUNBUFFERED": "1",
    }
    command = [sys.executable, "-m", "celery", "-A", "workers", "worker", "-Q", queue, "-c", "1", "-l", "debug"]
    command += ["-n", f"{queue}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    with log_path.open("wb") as log_file:
        worker = subprocess.Popen(
            command, cwd=ROOT, env=environment, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        task_id = ping("req-debug-7", queue=queue)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        # Sending to the queue declared it in this process's app and bound it in the broker: neither outlives the test.
        celery_app.amqp.queues.pop(queue, None)
        broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
        try:
            broker.delete(f"_kombu.binding.{queue}", queue)
        finally:
            broker.close()

    lines = [line for line in log_path.read_text().splitlines() if task_id in line]
    received = [line for line in lines if f"Task housekeeping.ping[{task_id}] received" in line]
    succeeded = [line for line in lines if f"Task housekeeping.ping[{task_id}] succeeded in " in line]
    assert len(received) == 1 and " DEBUG   celery.worker.strategy " in received[0], lines
    assert len(succeeded) == 1 and " DEBUG   celery.app.trace [req-debug-7] " in succeeded[0], lines
