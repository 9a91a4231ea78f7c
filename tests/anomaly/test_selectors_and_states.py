import numpy as np
import pytest
from django.contrib.auth.models import Group
from django.db import connection

from apps.accounts.group_permissions import sync_role_permissions
from apps.accounts.roles import Role
from apps.anomaly import detectors as d
from apps.anomaly.models import AnomalyRule, AnomalyState
from apps.anomaly.selectors import effective_anomaly_rules
from apps.anomaly.states import states_load, states_save
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def pairs(world, *keys):
    return [(world.sensors[key].pk, world.sensors[key].sensor_type_id) for key in keys]


# --- effective rules ---------------------------------------------------------------------------------------------


def test_a_type_rule_applies_to_every_sensor_of_the_type_with_defaults(world):
    rule = AnomalyRule.objects.create(sensor_type=world.sensor_types["temperature"], sensitivity="low")

    result = effective_anomaly_rules(pairs(world, "env-001/temperature", "env-002/temperature", "env-001/humidity"))

    assert set(result) == {world.sensors["env-001/temperature"].pk, world.sensors["env-002/temperature"].pk}
    effective = result[world.sensors["env-001/temperature"].pk]
    assert (effective.type_rule_id, effective.override_id) == (rule.pk, None)
    assert effective.settings == d.Settings(sensitivity="low")


def test_an_override_replaces_only_what_it_sets(world):
    AnomalyRule.objects.create(sensor_type=world.sensor_types["temperature"], sensitivity="high", deviation_z=5)
    override = AnomalyRule.objects.create(sensor=world.sensors["env-002/temperature"], deviation_z=9)

    result = effective_anomaly_rules(pairs(world, "env-001/temperature", "env-002/temperature"))

    overridden = result[world.sensors["env-002/temperature"].pk]
    assert overridden.override_id == override.pk
    assert overridden.settings == d.Settings(sensitivity="high", deviation_z=9)
    assert result[world.sensors["env-001/temperature"].pk].settings == d.Settings(sensitivity="high", deviation_z=5)


def test_overrides_switch_detection_off_or_on_for_one_sensor(world):
    AnomalyRule.objects.create(sensor_type=world.sensor_types["temperature"])
    AnomalyRule.objects.create(sensor=world.sensors["env-002/temperature"], enabled=False)
    AnomalyRule.objects.create(sensor=world.sensors["env-001/humidity"], stuck_after_s=600)  # no humidity rule
    AnomalyRule.objects.create(sensor_type=world.sensor_types["voltage_dc"], enabled=False)

    result = effective_anomaly_rules(
        pairs(world, "env-001/temperature", "env-002/temperature", "env-001/humidity", "dc-meter-001/voltage_dc")
    )

    assert set(result) == {world.sensors["env-001/temperature"].pk, world.sensors["env-001/humidity"].pk}
    assert result[world.sensors["env-001/humidity"].pk].settings == d.Settings(stuck_after_s=600)


def test_effective_rules_cost_two_queries_whatever_the_number_of_sensors(world, django_assert_num_queries):
    for sensor_type in world.sensor_types.values():
        AnomalyRule.objects.create(sensor_type=sensor_type)
    for sensor in list(world.sensors.values())[:3]:
        AnomalyRule.objects.create(sensor=sensor, min_readings=3)

    with django_assert_num_queries(2):
        result = effective_anomaly_rules(pairs(world, *world.sensors))

    assert len(result) == len(world.sensors)


def test_effective_rules_are_cached_until_a_rule_changes(world, django_assert_num_queries):
    rule = AnomalyRule.objects.create(sensor_type=world.sensor_types["temperature"], sensitivity="low")
    asked = pairs(world, "env-001/temperature", "env-001/humidity")
    effective_anomaly_rules(asked)

    with django_assert_num_queries(0):
        cached = effective_anomaly_rules(asked)
    assert set(cached) == {world.sensors["env-001/temperature"].pk}  # the humidity sensor's "no rule" is cached too

    rule.sensitivity = "high"
    rule.save()  # the save signal bumps the generation: every process drops its rules
    with django_assert_num_queries(2):
        changed = effective_anomaly_rules(asked)
    assert changed[world.sensors["env-001/temperature"].pk].settings == d.Settings(sensitivity="high")

    AnomalyRule.objects.create(sensor_type=world.sensor_types["humidity"])
    assert set(effective_anomaly_rules(asked)) == {sensor_id for sensor_id, _ in asked}


def test_a_sensor_that_changes_type_gets_the_rule_of_its_new_type(world):
    AnomalyRule.objects.create(sensor_type=world.sensor_types["temperature"])
    sensor = world.sensors["env-001/humidity"]
    assert effective_anomaly_rules([(sensor.pk, sensor.sensor_type_id)]) == {}

    found = effective_anomaly_rules([(sensor.pk, world.sensor_types["temperature"].pk)])

    assert set(found) == {sensor.pk}


# --- states --------------------------------------------------------------------------------------------------


def learned_states(count: int) -> np.ndarray:
    states = d.new_states(count)
    rng = np.random.default_rng(0)
    rows = np.repeat(np.arange(count), 50)
    ts = 1.7e9 + np.tile(np.arange(50.0), count) * 60
    d.detect(states, d.params_matrix([d.Settings()] * count), rows, ts, rng.normal(5, 1, len(rows)))
    return states


def test_states_round_trip_through_the_database_in_one_statement_each_way(world, django_assert_num_queries):
    sensor_ids = sorted(sensor.pk for sensor in world.sensors.values())
    states = learned_states(len(sensor_ids))

    with django_assert_num_queries(1):
        states_save(sensor_ids, states)
    with django_assert_num_queries(1):
        loaded = states_load(sensor_ids)

    np.testing.assert_array_equal(loaded, states)  # NaN slots included
    row = AnomalyState.objects.get(sensor_id=sensor_ids[0])
    assert row.version == d.STATE_VERSION
    assert row.last_ts.timestamp() == states[0, d.LAST_TS]


def test_sensors_without_a_state_or_of_an_old_layout_start_afresh(world):
    first, second, third = sorted(sensor.pk for sensor in world.sensors.values())[:3]
    states_save([first, second], learned_states(2))
    AnomalyState.objects.filter(sensor_id=second).update(version=d.STATE_VERSION + 1)

    loaded = states_load([third, second, first])  # any order: rows follow the ids asked for

    np.testing.assert_array_equal(loaded[0], d.new_states(1)[0])
    np.testing.assert_array_equal(loaded[1], d.new_states(1)[0])
    assert loaded[2, d.N] == 50


def test_saving_again_overwrites_and_a_fresh_state_has_no_time(world):
    sensor_id = world.sensors["env-001/temperature"].pk
    states_save([sensor_id], learned_states(1))
    states_save([sensor_id], d.new_states(1))

    row = AnomalyState.objects.get(sensor_id=sensor_id)
    assert row.last_ts is None
    assert AnomalyState.objects.count() == 1
    np.testing.assert_array_equal(states_load([sensor_id]), d.new_states(1))


def test_a_batch_evaluated_twice_through_stored_states_learns_once(world):
    """What the integration will do per batch: load, detect, save; a redelivered batch changes nothing."""
    sensor_ids = sorted(sensor.pk for sensor in world.sensors.values())
    params = d.params_matrix([d.Settings()] * len(sensor_ids))
    rows = np.repeat(np.arange(len(sensor_ids)), 3)
    ts = 1.7e9 + np.tile([0.0, 60.0, 120.0], len(sensor_ids))
    values = np.arange(len(rows), dtype=float)

    for _ in range(2):
        states = states_load(sensor_ids, lock=True)
        d.detect(states, params, rows, ts, values)
        states_save(sensor_ids, states)

    assert (states_load(sensor_ids)[:, d.N] == 3).all()


def test_lock_takes_the_state_rows_for_update(world):
    sensor_id = world.sensors["env-001/temperature"].pk
    states_save([sensor_id], learned_states(1))

    states_load([sensor_id], lock=True)

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND mode = 'RowShareLock'"
            " AND relation = %s::regclass",
            [AnomalyState._meta.db_table],
        )
        assert cursor.fetchone()[0] == 1


# --- admin ---------------------------------------------------------------------------------------------------


def test_operators_manage_anomaly_rules_in_the_admin_and_everyone_sees_states(world, client):
    sync_role_permissions()
    assert "change_anomalyrule" in set(
        Group.objects.get(name="operator").permissions.values_list("codename", flat=True)
    )
    assert "change_anomalyrule" not in set(
        Group.objects.get(name="viewer").permissions.values_list("codename", flat=True)
    )
    AnomalyRule.objects.create(sensor_type=world.sensor_types["temperature"])
    sensor_id = world.sensors["env-001/temperature"].pk
    states_save([sensor_id], learned_states(1))
    user, _ = make_user("ops", Role.OPERATOR, password="a-long-test-password")
    client.force_login(user)

    assert client.get("/admin/anomaly/anomalyrule/").status_code == 200
    assert client.get("/admin/anomaly/anomalyrule/add/").status_code == 200
    listing = client.get("/admin/anomaly/anomalystate/")
    assert listing.status_code == 200
    assert b"env-001/temperature" in listing.content
    detail = client.get(f"/admin/anomaly/anomalystate/{sensor_id}/change/")
    assert detail.status_code == 200
    assert b"hour-of-day profile" in detail.content


def test_the_admin_refuses_a_rule_with_both_or_neither_scope(world, admin_client):
    response = admin_client.post(
        "/admin/anomaly/anomalyrule/add/",
        {
            "sensor_type": world.sensor_types["temperature"].pk,
            "sensor": world.sensors["env-001/humidity"].pk,
            "enabled": "on",
        },
    )

    assert response.status_code == 200  # the form again, with the error
    assert b"Give a sensor type or a sensor, not both." in response.content
    assert not AnomalyRule.objects.exists()

    response = admin_client.post(
        "/admin/anomaly/anomalyrule/add/",
        {"sensor_type": world.sensor_types["temperature"].pk, "enabled": "on", "sensitivity": "low"},
    )
    assert response.status_code == 302
    assert AnomalyRule.objects.get().sensitivity == "low"
