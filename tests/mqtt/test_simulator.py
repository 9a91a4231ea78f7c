"""The simulator: realistic signals, and `manage.py simulate` feeding the backend over MQTT and HTTP."""

from __future__ import annotations

import io
import json
import random
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.demo.simulator import SensorSpec, SignalModel
from apps.devices.models import Device
from apps.ingest.models import Reading

TEMPERATURE = SensorSpec("temperature", "", "°C", -50, 150)


def _temperature(model: SignalModel, hour: int, day: int) -> float:
    return model.sample(datetime(2026, 2, day, hour, tzinfo=UTC), now=0.0)[0]["val"]


def test_temperature_follows_a_daily_cycle_with_noise():
    model = SignalModel([TEMPERATURE], random.Random(1), ZoneInfo("UTC"))

    night = [_temperature(model, 3, day) for day in range(1, 21)]
    afternoon = [_temperature(model, 15, day) for day in range(1, 21)]

    assert sum(afternoon) / 20 - sum(night) / 20 > 5
    assert len(set(night)) > 15  # noise: hardly two nights alike


def test_a_breach_ramps_past_the_band_and_back():
    model = SignalModel([TEMPERATURE], random.Random(2), ZoneInfo("UTC"))
    model.maybe_start_breach(now=1000.0, chance=1.0)
    breach = model.breach
    moment = datetime(2026, 2, 1, 12, tzinfo=UTC)

    peak = model.sample(moment, now=1000.0 + breach.duration_s / 2)[0]["val"]
    after = model.sample(moment, now=1000.0 + breach.duration_s + 1)[0]["val"]

    assert breach.offset >= 12 and peak - after > 10


def _keys_file(tmp_path, world) -> str:
    path = tmp_path / "device-keys.json"
    path.write_text(json.dumps(world.device_keys))
    return str(path)


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_simulated_devices_over_mqtt_reach_the_database(world, start_bridge, mqtt_broker, tmp_path, wait_for):
    mqtt_broker.reconcile()  # the world's devices get their broker accounts
    start_bridge()
    out = io.StringIO()

    call_command(
        "simulate",
        "--devices=2",
        "--rate=10",
        "--duration=3",
        "--dropout-chance=0.3",
        "--seed=3",
        f"--keys={_keys_file(tmp_path, world)}",
        stdout=out,
    )

    assert "2 device(s) via mqtt" in out.getvalue() and "done" in out.getvalue()
    for key in ("dc-meter-001/voltage_dc", "env-001/temperature"):
        wait_for(lambda key=key: Reading.objects.filter(sensor=world.sensors[key]).count() >= 10, timeout=20)
    meter = wait_for(lambda: Device.objects.filter(device_id="dc-meter-001", seq_gaps__gt=0).first(), timeout=20)
    assert meter.fw_version == "1.4.2" and meter.last_seq >= 10


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_simulated_devices_over_http_use_the_ingest_api(world, celery_worker, live_server, tmp_path, wait_for):
    call_command(
        "simulate",
        "--devices=1",
        "--via=http",
        f"--url={live_server.url}",
        "--rate=5",
        "--duration=2",
        "--dropout-chance=0",
        f"--keys={_keys_file(tmp_path, world)}",
        stdout=io.StringIO(),
    )

    voltage = world.sensors["dc-meter-001/voltage_dc"]
    wait_for(lambda: Reading.objects.filter(sensor=voltage).count() >= 5, timeout=20)
    assert Device.objects.get(device_id="dc-meter-001").fw_version == "1.4.2"


def test_a_missing_keys_file_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="seed_demo --device-keys"):
        call_command("simulate", f"--keys={tmp_path / 'none.json'}")
