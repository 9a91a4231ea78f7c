"""The Sparkplug B host in the bridge, against the real Mosquitto with a real worker behind it."""

from __future__ import annotations

import pytest

from apps.alerts.models import Alert
from apps.commands.models import Command
from apps.devices.models import Device
from apps.devices.services import device_create
from apps.ingest.models import Reading
from apps.sparkplug import payloads
from apps.sparkplug.models import Endpoint
from apps.sparkplug.services import endpoint_accept
from tests.factories import API, assert_error_shape
from tests.sparkplug.edge import DOUBLE, EdgeNode

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

METER_BIRTH = [
    {"name": "Inputs/Voltage_DC", "alias": 1, "datatype": DOUBLE, "double_value": 750.0},
    {"name": "Inputs/Current_DC", "alias": 2, "datatype": DOUBLE, "double_value": 300.0},
    {"name": "Inputs/Vibration", "alias": 3, "datatype": DOUBLE, "double_value": 0.1},
]


@pytest.fixture
def edge(world, settings, mqtt_broker, start_bridge):
    """An edge node plant1/edge1 with its broker account, and a bridge hosting Sparkplug."""
    settings.SPARKPLUG_ENABLED = True
    settings.SPARKPLUG_AUTO_PROVISION = True
    _, key = device_create(device_id="plant1:edge1")
    mqtt_broker.reconcile()  # the node's account, and the bridge's Sparkplug ACLs
    start_bridge()
    node = EdgeNode("plant1", "edge1", key, bd_seq=4).connect()
    yield node
    node.close()


def _values(device_id: str, code: str) -> list[float]:
    readings = Reading.objects.filter(sensor__device__device_id=device_id, sensor__sensor_type__code=code)
    return list(readings.order_by("ts").values_list("value", flat=True))


def test_births_provision_devices_and_data_is_stored_and_evaluated(edge, wait_for):
    edge.nbirth()
    edge.dbirth("meter1", METER_BIRTH)
    # Later data names metrics by alias only, as edge nodes do; the metric timestamp is the reading time.
    edge.ddata("meter1", [{"alias": 1, "datatype": DOUBLE, "double_value": 900.0, "timestamp": 1_770_000_000_000}])

    wait_for(lambda: _values("plant1:edge1:meter1", "voltage_dc") == [900.0], timeout=20)
    reading = Reading.objects.get(sensor__key="plant1:edge1:meter1/voltage_dc")
    assert int(reading.ts.timestamp() * 1000) == 1_770_000_000_000
    wait_for(lambda: Alert.objects.filter(sensor__key="plant1:edge1:meter1/voltage_dc").exists(), timeout=20)
    meter = Endpoint.objects.get(device_name="meter1")
    assert meter.unmapped_metrics == ["Inputs/Vibration"]
    assert meter.aliases == {"1": "Inputs/Voltage_DC", "2": "Inputs/Current_DC", "3": "Inputs/Vibration"}
    assert Device.objects.get(device_id="plant1:edge1:meter1").connection_status == "online"


def test_a_sequence_gap_asks_for_a_rebirth_and_stores_nothing(edge, wait_for):
    edge.nbirth()
    edge.dbirth("meter1", METER_BIRTH)
    wait_for(lambda: Endpoint.objects.filter(device_name="meter1").exists(), timeout=10)

    edge.ddata("meter1", [{"alias": 1, "datatype": DOUBLE, "double_value": 760.0}], seq=edge.seq + 3)

    topic, command = edge.wait_for_command()
    assert topic == "spBv1.0/plant1/NCMD/edge1"
    assert [(metric.name, metric.boolean_value) for metric in command.metrics] == [(payloads.REBIRTH_METRIC, True)]
    assert _values("plant1:edge1:meter1", "voltage_dc") == []


def test_data_before_any_birth_asks_for_a_rebirth(edge):
    edge.ddata("meter1", [{"alias": 1, "datatype": DOUBLE, "double_value": 760.0}])

    topic, command = edge.wait_for_command()
    assert topic == "spBv1.0/plant1/NCMD/edge1"
    assert command.metrics[0].name == payloads.REBIRTH_METRIC


def test_a_death_takes_the_devices_offline_but_not_a_stale_one(edge, wait_for):
    edge.nbirth()
    edge.dbirth("meter1", METER_BIRTH)
    wait_for(lambda: Device.objects.filter(device_id="plant1:edge1:meter1", connection_status="online").exists())

    edge.ndeath(bd_seq=3)  # of an earlier session: ignored
    edge.ddata("meter1", [{"alias": 2, "datatype": DOUBLE, "double_value": 310.0}])
    wait_for(lambda: _values("plant1:edge1:meter1", "current_dc") == [310.0], timeout=20)
    assert Device.objects.get(device_id="plant1:edge1:meter1").connection_status == "online"

    edge.ndeath()
    wait_for(lambda: Device.objects.get(device_id="plant1:edge1:meter1").connection_status == "offline")
    assert Device.objects.get(device_id="plant1:edge1").connection_status == "offline"


def test_an_unknown_device_waits_for_acceptance_without_auto_provisioning(edge, settings, wait_for):
    settings.SPARKPLUG_AUTO_PROVISION = False
    edge.nbirth()
    edge.dbirth("meter2", METER_BIRTH)
    waiting = wait_for(lambda: Endpoint.objects.filter(device_name="meter2").first(), timeout=10)
    assert waiting.waiting and not Device.objects.filter(device_id="plant1:edge1:meter2").exists()

    edge.ddata("meter2", [{"alias": 1, "datatype": DOUBLE, "double_value": 755.0}])
    endpoint_accept(endpoint=waiting)
    edge.ddata("meter2", [{"alias": 1, "datatype": DOUBLE, "double_value": 756.0}])

    wait_for(lambda: _values("plant1:edge1:meter2", "voltage_dc") == [756.0], timeout=20)


def _commands_url(device_id: str) -> str:
    return f"{API}/devices/{Device.objects.get(device_id=device_id).pk}/commands/"


def test_a_write_command_becomes_a_dcmd_of_writable_metrics(edge, operator_api, wait_for):
    edge.nbirth()
    edge.dbirth(
        "meter1", [*METER_BIRTH, {"name": "Setpoint", "datatype": DOUBLE, "double_value": 0.0, "writable": True}]
    )
    wait_for(lambda: Device.objects.filter(device_id="plant1:edge1:meter1", connection_status="online").exists())

    response = operator_api.post(
        _commands_url("plant1:edge1:meter1"), {"cmd": "write", "params": {"Setpoint": 42.5}}, format="json"
    )

    assert response.status_code == 201, response.json()
    topic, command = edge.wait_for_command()
    assert topic == "spBv1.0/plant1/DCMD/edge1/meter1"
    assert [(metric.name, metric.datatype, metric.double_value) for metric in command.metrics] == [
        ("Setpoint", DOUBLE, 42.5)
    ]


def test_a_command_the_device_cannot_take_is_a_400_naming_the_field(edge, operator_api, wait_for):
    edge.nbirth()
    edge.dbirth("meter1", METER_BIRTH)
    wait_for(lambda: Device.objects.filter(device_id="plant1:edge1:meter1").exists())
    url = _commands_url("plant1:edge1:meter1")

    not_writable = operator_api.post(url, {"cmd": "write", "params": {"Inputs/Voltage_DC": 1}}, format="json")
    not_a_write = operator_api.post(url, {"cmd": "reboot"}, format="json")

    assert not_writable.status_code == 400
    assert_error_shape(not_writable, "params.Inputs/Voltage_DC")
    assert not_a_write.status_code == 400
    assert_error_shape(not_a_write, "cmd")
    assert not Command.objects.exists()


def test_waiting_endpoints_and_unmapped_metrics_are_listed_and_accepted_through_the_api(
    edge, settings, admin_api, wait_for
):
    settings.SPARKPLUG_AUTO_PROVISION = False
    edge.nbirth()
    edge.dbirth("meter3", METER_BIRTH)
    wait_for(lambda: Endpoint.objects.filter(device_name="meter3").exists(), timeout=10)

    (listed,) = admin_api.get(f"{API}/sparkplug/endpoints/", {"waiting": "true"}).json()["results"]
    assert (listed["device_id"], listed["waiting"], listed["unmapped_metrics"]) == (
        "plant1:edge1:meter3",
        True,
        ["Inputs/Vibration"],
    )
    accepted = admin_api.post(f"{API}/sparkplug/endpoints/{listed['id']}/accept/")

    assert accepted.status_code == 200 and accepted.json()["waiting"] is False
    device = Device.objects.get(device_id="plant1:edge1:meter3")
    assert set(device.sensors.values_list("sensor_type__code", flat=True)) == {"voltage_dc", "current_dc"}
    assert admin_api.get(f"{API}/sparkplug/endpoints/", {"waiting": "maybe"}).status_code == 400


def test_a_sensor_type_alias_maps_a_metric(edge, world, wait_for):
    world.sensor_types["temperature"].aliases = ["OilTemp"]
    world.sensor_types["temperature"].save()
    edge.nbirth()
    edge.dbirth("pump1", [{"name": "Motor/OilTemp", "alias": 7, "datatype": DOUBLE, "double_value": 40.0}])
    edge.ddata("pump1", [{"alias": 7, "datatype": DOUBLE, "double_value": 41.5}])

    wait_for(lambda: _values("plant1:edge1:pump1", "temperature") == [41.5], timeout=20)
    assert Endpoint.objects.get(device_name="pump1").unmapped_metrics == []
