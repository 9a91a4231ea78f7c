"""The project's broker lets in only who logs in, and each device only under its own topics; its accounts
follow the devices (created, rotated, deactivated, deleted), at once and through the reconciliation."""

from __future__ import annotations

from dataclasses import replace

import pytest

from apps.devices.models import Device
from apps.devices.services import device_rotate_key
from apps.ingest.models import Reading
from apps.mqtt import topics
from apps.mqtt.config import accepts_anonymous, broker_config
from tests.factories import API, make_device
from tests.mqtt.broker import DeviceClient, datagram, free_port
from workers.tasks.mqtt import reconcile_broker_accounts, sync_device_account

NOT_AUTHORIZED = 135  # the MQTT 5 reason code of a refused PUBLISH or SUBSCRIBE

pytestmark = pytest.mark.django_db(transaction=True)


def _login(device_id: str, key: str) -> DeviceClient:
    """A fresh connection with this device's password for `key`; ConnectionRefusedError when refused."""
    return DeviceClient(device_id, key).connect()


def _refused(device_id: str, key: str) -> bool:
    try:
        client = _login(device_id, key)
    except ConnectionRefusedError:
        return True
    client.close()
    return False


def test_clients_without_a_login_or_with_a_wrong_password_are_refused(world, device_mqtt, mqtt_broker):
    anonymous = replace(broker_config(), username="", password="")
    assert accepts_anonymous(anonymous) is False
    assert _refused("env-001", "not-its-key")
    assert _refused("no-such-device", "any-key")
    assert device_mqtt("env-001").client.is_connected()


@pytest.mark.worker
def test_a_device_publishes_and_subscribes_only_under_its_own_topics(world, start_bridge, device_mqtt, wait_for):
    bridge = start_bridge()
    meter = device_mqtt("dc-meter-001")
    env = device_mqtt("env-001")
    assert [code.value for code in env.subscribe(env.topic(topics.COMMAND))] == [1]  # its own: granted, QoS 1
    as_env = meter.signed(topics.TELEMETRY, {**datagram(1, [("temperature", 21.0)]), "device_id": "env-001"})

    assert meter.publish_raw(topics.TELEMETRY, as_env, topic=env.topic(topics.TELEMETRY)).value == NOT_AUTHORIZED
    assert meter.publish(topics.COMMAND, {"cmd": "reboot"}).value == NOT_AUTHORIZED  # its own command topic
    assert [code.value for code in meter.subscribe(env.topic(topics.COMMAND))] == [NOT_AUTHORIZED]
    assert [code.value for code in meter.subscribe(f"{bridge.bridge.options.topic_root}/+/telemetry")] == [
        NOT_AUTHORIZED
    ]
    assert not meter.publish(topics.TELEMETRY, datagram(2, [("voltage_dc", 750.0)])).is_failure

    wait_for(lambda: Reading.objects.filter(sensor=world.sensors["dc-meter-001/voltage_dc"]).exists(), timeout=20)
    assert bridge.bridge.stats["received"] == 1  # only its own message reached the bridge
    assert not Reading.objects.filter(sensor__device__device_id="env-001").exists()


@pytest.mark.worker
def test_a_device_created_over_the_api_logs_in_at_once(celery_worker, broker_accounts, admin_api, wait_for):
    response = admin_api.post(f"{API}/devices/", {"device_id": "press-042", "name": "Press 42"}, format="json")
    assert response.status_code == 201, response.content

    wait_for(lambda: not _refused("press-042", response.json()["ingest_key"]), timeout=20)


@pytest.mark.worker
def test_a_rotated_key_locks_the_old_password_out_and_drops_its_connection(
    world, celery_worker, broker_accounts, device_mqtt, admin_api
):
    device = world.devices["env-001"]
    old_key = world.device_keys["env-001"]
    connected = device_mqtt("env-001")

    response = admin_api.post(f"{API}/devices/{device.pk}/rotate-key/")
    assert response.status_code == 200
    new_key = response.json()["ingest_key"]

    assert connected.dropped.wait(20), "the connection made with the old password stays up"
    assert _refused("env-001", old_key)
    _login("env-001", new_key).close()


@pytest.mark.worker
def test_deactivating_a_device_shuts_it_out_until_it_is_active_again(
    world, celery_worker, broker_accounts, device_mqtt, admin_api, wait_for
):
    device = world.devices["env-002"]
    key = world.device_keys["env-002"]
    connected = device_mqtt("env-002")

    assert admin_api.patch(f"{API}/devices/{device.pk}/", {"status": "inactive"}, format="json").status_code == 200
    assert connected.dropped.wait(20)
    assert _refused("env-002", key)

    assert admin_api.patch(f"{API}/devices/{device.pk}/", {"status": "active"}, format="json").status_code == 200
    wait_for(lambda: not _refused("env-002", key), timeout=20)


def test_the_reconciliation_makes_up_for_changes_the_broker_missed(world, device_mqtt, mqtt_broker, settings):
    """Changes made while no sync reached the broker (here: syncs off) are caught up by the next run of the
    beat's reconciliation, including an account of a device that is gone and the backend's own."""
    new_key = device_rotate_key(device=Device.objects.get(device_id="env-001"))
    Device.objects.filter(device_id="env-002").delete()
    with mqtt_broker.admin() as dynsec:
        dynsec.run([{"command": "deleteClient", "username": mqtt_broker.backend_username}])
    assert _refused("env-001", new_key)
    settings.MQTT_ADMIN_USERNAME, settings.MQTT_ADMIN_PASSWORD = mqtt_broker.admin_username, mqtt_broker.admin_password

    done = reconcile_broker_accounts()

    assert (done["created"], done["updated"], done["deleted"], done["failed"]) == (1, 1, 1, 0)
    _login("env-001", new_key).close()
    assert _refused("env-002", world.device_keys["env-002"])
    with mqtt_broker.admin() as dynsec:
        accounts = dynsec.clients()
    assert "env-002" not in accounts and mqtt_broker.backend_username in accounts
    assert reconcile_broker_accounts() == {"accounts": 3}  # in step: nothing to do


def test_a_sync_the_broker_cannot_take_now_is_left_to_the_reconciliation(world, mqtt_broker, settings):
    settings.MQTT_ADMIN_USERNAME, settings.MQTT_ADMIN_PASSWORD = mqtt_broker.admin_username, mqtt_broker.admin_password
    assert sync_device_account("env-001") in {"updated", "created", "nothing to do"}
    settings.MQTT_BROKER_URL = f"mqtt://127.0.0.1:{free_port()}"  # nothing listens there

    assert sync_device_account("env-001") == "deferred"
    assert reconcile_broker_accounts() == {"skipped": 1}


def test_a_device_named_like_a_backend_account_gets_no_account(world, mqtt_broker):
    make_device(mqtt_broker.backend_username)

    mqtt_broker.reconcile()

    with mqtt_broker.admin() as dynsec:
        backend = dynsec.clients()[mqtt_broker.backend_username]
    assert [role["rolename"] for role in backend["roles"]] == ["telemetry-backend"]
