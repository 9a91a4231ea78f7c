"""Line protocol in, readings committed and evaluated by a real Celery worker.

One path uses the official client against the live test server; the other sends what Telegraf sends (a gzip
body streamed with chunked transfer encoding, no Content-Length) to gunicorn, the server `make run` uses, since
Django's test servers do not take chunked bodies.
"""

from __future__ import annotations

import gzip
import http.client
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.db import connection
from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS

from apps.accounts.roles import Role
from apps.alerts.models import Alert
from apps.ingest.models import IngestBatch, LatestReading, Reading
from tests.factories import make_user
from tests.worker import database_url

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def evaluated_batches(count: int):
    def check():
        batches = list(IngestBatch.objects.filter(status="done", evaluated_at__isnull=False))
        return batches if len(batches) >= count else None

    return check


def test_points_from_the_official_client_are_stored_and_evaluated_by_the_worker(
    world, live_server, celery_worker, wait_for
):
    token = make_user("telegraf", Role.OPERATOR)[1]
    when = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    points = [
        Point("meter").tag("device", "dc-meter-001").field("voltage_dc", 760.0).field("current_dc", 12).time(when),
        Point("meter").tag("device", "dc-meter-001").field("voltage_dc", 900.0).time(when + timedelta(seconds=10)),
        Point("env").tag("device", "env-002").field("temperature", 22.5).time(when, WritePrecision.S),
    ]

    with InfluxDBClient(url=live_server.url, token=token, org="plant", enable_gzip=True) as client:
        write_api = client.write_api(write_options=SYNCHRONOUS)
        write_api.write(bucket="telemetry", record=points[:2])
        write_api.write(bucket="telemetry", record=points[2:], write_precision=WritePrecision.S)

    batches = wait_for(evaluated_batches(2), timeout=30)
    assert sorted(batch.stored for batch in batches) == [1, 3]
    voltage = world.sensors["dc-meter-001/voltage_dc"]
    assert list(Reading.objects.filter(sensor=voltage).order_by("ts").values_list("value", flat=True)) == [760.0, 900.0]
    assert LatestReading.objects.get(sensor=voltage).value == 900.0
    assert Reading.objects.get(sensor=world.sensors["env-002/temperature"]).ts == when
    # 900 V is above the critical band: the evaluation the worker ran opened an alert.
    assert wait_for(lambda: Alert.objects.filter(sensor=voltage, severity="critical").first(), timeout=20)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def gunicorn(django_db_setup, django_db_blocker, tmp_path_factory):
    """The web server of `make run`, on a free port, serving the test database and the test Redis database."""
    with django_db_blocker.unblock():
        url = database_url(connection.settings_dict)
    port = free_port()
    log_path = tmp_path_factory.mktemp("gunicorn") / "web.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": url,
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
    }
    command = [sys.executable, "-m", "gunicorn", "telemetry_project.wsgi:application", "--bind", f"127.0.0.1:{port}"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                probe = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                probe.request("GET", "/health")
                if probe.getresponse().status == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_telegraf_style_chunked_gzip_body_is_stored_by_the_worker(world, gunicorn, celery_worker, wait_for):
    token = make_user("telegraf", Role.OPERATOR)[1]
    t = int(time.time()) - 30
    body = gzip.compress(
        "".join(
            f"modbus,device=env-001,host=gw-1,slave_id=1,type=holding_register temperature={20 + n * 0.1:.1f},"
            f"humidity={40 + n}i {(t - n) * 10**9}\n"
            for n in range(50)
        ).encode()
    )
    chunks = (body[start : start + 512] for start in range(0, len(body), 512))

    connection_ = http.client.HTTPConnection("127.0.0.1", gunicorn, timeout=10)
    connection_.request(
        "POST",
        "/api/v2/write?org=plant&bucket=telemetry",
        body=chunks,
        headers={
            "Authorization": f"Token {token}",
            "Content-Encoding": "gzip",
            "Content-Type": "text/plain; charset=utf-8",
            "Transfer-Encoding": "chunked",
        },
        encode_chunked=True,
    )
    response = connection_.getresponse()

    assert response.status == 204, response.read()
    (batch,) = wait_for(evaluated_batches(1), timeout=30)
    assert (batch.received, batch.stored) == (100, 100)
    assert Reading.objects.filter(sensor=world.sensors["env-001/humidity"]).count() == 50
    assert LatestReading.objects.get(sensor=world.sensors["env-001/temperature"]).value == 20.0
