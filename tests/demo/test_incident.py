"""The demo's scripted incident: its schedule as arithmetic, and the whole demo (every device of the plant
publishing through the broker, the bridge and a real worker) showing the breach open and resolve an alert."""

from __future__ import annotations

import io
import json
import random
from collections import Counter
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.core.management import call_command

from apps.alerts.models import Alert
from apps.demo.incident import (
    CRITICAL_TEMPERATURE,
    WARNING_TEMPERATURE,
    IncidentSchedule,
    breach_value,
    choose_targets,
    phase_at,
)
from apps.demo.plant import threshold_overridden_devices
from apps.demo.simulator import (
    LineProtocolTransport,
    MqttTransport,
    Simulation,
    SplitTransport,
    line_protocol,
    load_devices,
)
from apps.devices.models import Device
from apps.ingest.models import Reading
from apps.mqtt.config import broker_config
from apps.thresholds.models import Threshold
from apps.thresholds.services import threshold_update

SCHEDULE = IncidentSchedule(first_at_s=60, every_s=900, warning_s=120, critical_s=120, offline_s=180, stuck_s=600)


def test_nothing_happens_before_the_first_incident():
    assert phase_at(SCHEDULE, 59.9) == phase_at(SCHEDULE, 0) and phase_at(SCHEDULE, 0).breach is None
    assert not phase_at(SCHEDULE, 0).offline and not phase_at(SCHEDULE, 0).stuck


def test_the_breach_warns_then_escalates_then_clears():
    assert [phase_at(SCHEDULE, t).breach for t in (60, 179, 180, 299, 300, 959)] == [
        "warning",
        "warning",
        "critical",
        "critical",
        None,
        None,
    ]
    assert breach_value(phase_at(SCHEDULE, 100)) == WARNING_TEMPERATURE
    assert breach_value(phase_at(SCHEDULE, 200)) == CRITICAL_TEMPERATURE
    assert breach_value(phase_at(SCHEDULE, 400)) is None


def test_the_incident_repeats_every_cycle():
    for cycle in range(3):
        start = 60 + cycle * 900
        assert phase_at(SCHEDULE, start + 10).breach == "warning"
        assert phase_at(SCHEDULE, start + 130).breach == "critical"
        assert phase_at(SCHEDULE, start + 899).breach is None


def test_the_device_is_offline_for_its_part_and_is_told_how_long():
    assert phase_at(SCHEDULE, 60).offline and phase_at(SCHEDULE, 60).offline_left_s == 180
    assert phase_at(SCHEDULE, 200).offline_left_s == 40
    assert not phase_at(SCHEDULE, 240).offline and phase_at(SCHEDULE, 240).offline_left_s == 0
    assert phase_at(SCHEDULE, 659).stuck and not phase_at(SCHEDULE, 660).stuck


def test_a_cycle_shorter_than_its_parts_is_refused():
    with pytest.raises(ValueError, match="every_s"):
        IncidentSchedule(every_s=300, warning_s=120, critical_s=200)


def test_three_different_devices_play_the_parts_and_overridden_ones_do_not_breach():
    types = {
        "dc-meter-001": {"voltage_dc", "current_dc"},
        "env-a": {"temperature", "humidity"},
        "env-b": {"temperature", "humidity"},
    }
    targets = choose_targets(types, avoid={"env-a"})
    assert (targets.breach, targets.stuck, targets.offline) == ("env-b", "env-a", "dc-meter-001")


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_the_demo_plant_is_seen_and_the_scripted_breach_opens_and_resolves_an_alert(
    start_bridge, mqtt_broker, live_server, tmp_path, wait_for
):
    keys_path = tmp_path / "device-keys.json"
    call_command("seed_demo", f"--device-keys={keys_path}", stdout=io.StringIO())
    # The demo threshold waits a minute before alerting; the compressed incident lasts seconds.
    threshold_update(
        threshold=Threshold.objects.get(sensor_type__code="temperature", name="default"), data={"min_duration_s": 0}
    )
    mqtt_broker.reconcile()  # the seeded devices get their broker accounts
    start_bridge()
    keys = json.loads(keys_path.read_text())
    rng = random.Random(5)
    devices = load_devices(keys, count=50, rate=1.0, rng=rng, tz=ZoneInfo("UTC"))
    targets = choose_targets(
        {device.device_id: {sensor.type_code for sensor in device.signals.sensors} for device in devices},
        avoid=threshold_overridden_devices(),
    )
    schedule = IncidentSchedule(first_at_s=2, every_s=60, warning_s=4, critical_s=4, offline_s=4, stuck_s=4)
    mqtt = MqttTransport(broker_config(), topic_root=settings.MQTT_TOPIC_ROOT, stats=Counter())
    line_ids = {device.device_id for device in devices[-2:]}
    transport = SplitTransport(mqtt, LineProtocolTransport(live_server.url, stats=mqtt.stats), line_ids)
    simulation = Simulation(
        devices,
        transport,
        rng=rng,
        breach_chance_per_minute=0,
        dropout_chance=0,
        silence_chance_per_hour=0,
        incident=(schedule, targets),
    )

    stats = simulation.run(duration_s=16)

    assert len(devices) == Device.objects.exclude(status=Device.Status.INACTIVE).count() == 50
    assert stats["incidents"] == 1 and stats["http_errors"] == 0
    wait_for(lambda: not Device.objects.filter(last_seen=None).exists(), timeout=30)
    alert = wait_for(
        lambda: Alert.objects.filter(device__device_id=targets.breach, state=Alert.State.RESOLVED).first(),
        timeout=60,
    )
    assert alert.sensor.sensor_type.code == "temperature" and alert.max_severity == "critical"
    for device_id in line_ids:  # the line-protocol devices' readings are stored like the others'
        wait_for(lambda device_id=device_id: Reading.objects.filter(sensor__device__device_id=device_id).exists())


def test_a_datagram_becomes_one_line_protocol_line_per_measurement():
    datagram = {
        "device_id": "dc-meter-001",
        "measurements": [
            {"ts": "2026-02-12T16:00:00.250Z", "type": "voltage_dc", "val": 752.3, "unit": "V"},
            {"ts": "2026-02-12T16:00:00.250Z", "type": "temperature", "val": 21.5, "channel": "2"},
        ],
    }
    assert line_protocol(datagram).decode().splitlines() == [
        "telemetry,device=dc-meter-001 voltage_dc=752.3 1770912000250",
        "telemetry,device=dc-meter-001,channel=2 temperature=21.5 1770912000250",
    ]
