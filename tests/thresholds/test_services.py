"""The threshold and mapping services, called directly as the API, the admin and the demo seeder call them."""

from __future__ import annotations

import math
import queue
import threading

import pytest
from django.db import connection, transaction

from apps.core.errors import ApplicationError
from apps.thresholds.models import SensorThresholdMapping, Threshold
from apps.thresholds.selectors import effective_thresholds
from apps.thresholds.services import mapping_create, mapping_update, threshold_create, threshold_update
from tests.concurrency import at_once
from tests.worker import wait_for

pytestmark = pytest.mark.django_db


def refused(call, *args, **kwargs) -> dict[str, list[str]]:
    with pytest.raises(ApplicationError) as refusal:
        call(*args, **kwargs)
    assert refusal.value.status_code == 400
    return refusal.value.errors


# --- thresholds -------------------------------------------------------------------------------------------------


def test_a_threshold_is_created_with_the_defaults(world):
    threshold = threshold_create(sensor_type=world.sensor_types["humidity"], warning_high=70)

    threshold.refresh_from_db()
    assert (threshold.name, threshold.warning_high, threshold.critical_high) == ("default", 70, None)
    assert (threshold.hysteresis, threshold.min_duration_s, threshold.enabled) == (0, 0, True)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"warning_low": 30, "warning_high": 20}, "warning_high"),
        ({"warning_high": 20, "critical_high": 19.5}, "critical_high"),
        ({"critical_low": 5, "critical_high": 5}, "critical_high"),
        ({"warning_high": math.nan}, "warning_high"),
        ({"critical_low": -math.inf}, "critical_low"),
        ({"hysteresis": -0.1}, "hysteresis"),
        ({"hysteresis": math.inf}, "hysteresis"),
    ],
)
def test_a_threshold_breaking_a_rule_is_refused_naming_the_field(world, fields, named):
    errors = refused(threshold_create, sensor_type=world.sensor_types["humidity"], **fields)

    assert list(errors) == [named]
    assert not Threshold.objects.filter(sensor_type=world.sensor_types["humidity"]).exists()


def test_bands_meeting_where_the_order_allows_it_are_accepted(world):
    threshold = threshold_create(
        sensor_type=world.sensor_types["humidity"], critical_low=10, warning_low=10, warning_high=20, critical_high=20
    )

    assert threshold.pk is not None


def test_every_error_of_a_threshold_is_reported_at_once(world):
    errors = refused(
        threshold_create, sensor_type=world.sensor_types["temperature"], warning_low=9, warning_high=8, hysteresis=-1
    )

    assert set(errors) == {"warning_high", "hysteresis", "name"}


def test_an_update_changes_the_given_fields_over_the_stored_ones(world):
    stale = Threshold.objects.get(pk=world.thresholds["temperature"].pk)
    Threshold.objects.filter(pk=stale.pk).update(min_duration_s=300)  # someone else, since `stale` was read

    saved = threshold_update(threshold=stale, data={"warning_high": 33})

    saved.refresh_from_db()
    assert (saved.warning_high, saved.min_duration_s, saved.critical_high) == (33, 300, 40)


def test_an_update_that_would_cross_a_mapped_override_is_refused_naming_the_sensor(world):
    errors = refused(threshold_update, threshold=world.thresholds["temperature"], data={"critical_high": 34})

    assert errors == {
        "critical_high": ["With the override for sensor env-002/temperature: Must be at least warning_high (35.0)."]
    }
    assert Threshold.objects.get(pk=world.thresholds["temperature"].pk).critical_high == 40


def test_an_override_that_sets_both_ends_of_a_band_does_not_hold_the_threshold_back(world):
    mapping_update(mapping=world.mapping, data={"warning_high": 35, "critical_high": 45})

    saved = threshold_update(threshold=world.thresholds["temperature"], data={"critical_high": 34})

    assert saved.critical_high == 34


def test_a_threshold_with_mappings_keeps_its_type_and_one_without_may_move(world):
    errors = refused(
        threshold_update,
        threshold=world.thresholds["temperature"],
        data={"sensor_type": world.sensor_types["humidity"]},
    )
    assert list(errors) == ["sensor_type"]

    moved = threshold_update(
        threshold=world.thresholds["voltage_dc"], data={"sensor_type": world.sensor_types["current_dc"]}
    )
    assert Threshold.objects.get(pk=moved.pk).sensor_type_id == world.sensor_types["current_dc"].pk


def test_an_update_of_a_field_that_is_not_a_threshold_setting_is_a_programming_error(world):
    with pytest.raises(TypeError, match="created_at"):
        threshold_update(threshold=world.thresholds["temperature"], data={"created_at": None})


@pytest.mark.django_db(transaction=True)
def test_thresholds_of_one_name_created_at_the_same_moment_give_one_row_and_field_errors(world):
    outcomes = at_once(lambda: threshold_create(sensor_type=world.sensor_types["humidity"], name="night"), 4)

    created = [outcome for outcome in outcomes if isinstance(outcome, Threshold)]
    refusals = [outcome for outcome in outcomes if not isinstance(outcome, Threshold)]
    assert len(created) == 1
    assert all(isinstance(refusal, ApplicationError) and list(refusal.errors) == ["name"] for refusal in refusals)
    assert Threshold.objects.filter(sensor_type=world.sensor_types["humidity"], name="night").count() == 1


# --- mappings ---------------------------------------------------------------------------------------------------


def test_a_mapping_overrides_what_it_sets_and_inherits_the_rest(world):
    sensor = world.sensors["env-001/temperature"]

    mapping = mapping_create(sensor=sensor, threshold=world.thresholds["temperature"], critical_high=45)

    [effective] = effective_thresholds([(sensor.pk, sensor.sensor_type_id)])[sensor.pk]
    assert (mapping.warning_high, effective.warning_high, effective.critical_high) == (None, 30, 45)


def test_a_mapping_is_checked_against_the_stored_bands_not_the_callers_copy(world):
    stale = Threshold.objects.get(pk=world.thresholds["temperature"].pk)
    Threshold.objects.filter(pk=stale.pk).update(critical_high=32)

    errors = refused(mapping_create, sensor=world.sensors["env-001/temperature"], threshold=stale, warning_high=33)

    assert errors == {"critical_high": ["Must be at least warning_high (33)."]}


@pytest.mark.parametrize(
    ("sensor_key", "fields", "named"),
    [
        ("env-001/humidity", {}, "threshold"),
        ("env-002/temperature", {"warning_high": 36}, "threshold"),
        ("env-001/temperature", {"warning_low": 20, "warning_high": 10}, "warning_high"),
        ("env-001/temperature", {"warning_low": 35}, "warning_high"),
        ("env-001/temperature", {"critical_low": 6}, "warning_low"),
        ("env-001/temperature", {"critical_high": math.nan}, "critical_high"),
        ("env-001/temperature", {"hysteresis": -1}, "hysteresis"),
    ],
)
def test_a_mapping_breaking_a_rule_is_refused_naming_the_field(world, sensor_key, fields, named):
    errors = refused(
        mapping_create, sensor=world.sensors[sensor_key], threshold=world.thresholds["temperature"], **fields
    )

    assert list(errors) == [named]
    assert list(SensorThresholdMapping.objects.values_list("pk", flat=True)) == [world.mapping.pk]


def test_a_mapping_may_switch_a_threshold_off_without_overriding_anything(world):
    mapping = mapping_create(
        sensor=world.sensors["env-001/temperature"], threshold=world.thresholds["temperature"], enabled=False
    )

    assert SensorThresholdMapping.objects.get(pk=mapping.pk).enabled is False


def test_a_mapping_update_is_checked_like_a_new_mapping(world):
    assert list(refused(mapping_update, mapping=world.mapping, data={"critical_high": 34})) == ["critical_high"]
    humidity_watch = threshold_create(sensor_type=world.sensor_types["humidity"], name="watch")
    assert list(refused(mapping_update, mapping=world.mapping, data={"threshold": humidity_watch})) == ["threshold"]

    saved = mapping_update(mapping=world.mapping, data={"critical_high": 38, "min_duration_s": 5})

    saved.refresh_from_db()
    assert (saved.warning_high, saved.critical_high, saved.min_duration_s) == (35, 38, 5)


@pytest.mark.django_db(transaction=True)
def test_a_change_of_the_bands_waits_for_an_override_being_written_and_is_checked_against_it(world):
    """critical_high 33 is fine while the threshold has no override, and an override of warning_high 36 is fine
    under critical_high 40; not both. While one transaction writes the override, the change waits for the
    threshold's lock, then sees the override and is refused (without the lock it would pass unseeing)."""
    SensorThresholdMapping.objects.all().delete()
    threshold = world.thresholds["temperature"]
    backend: queue.Queue[int] = queue.Queue()
    outcome: list = []

    def change_the_bands() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                backend.put(cursor.fetchone()[0])
            outcome.append(threshold_update(threshold=threshold, data={"critical_high": 33}))
        except ApplicationError as exc:
            outcome.append(exc)
        finally:
            connection.close()

    changer = threading.Thread(target=change_the_bands)
    with transaction.atomic():
        mapping_create(sensor=world.sensors["env-001/temperature"], threshold=threshold, warning_high=36)
        changer.start()
        pid = backend.get(timeout=10)

        def blocked_or_done() -> bool:
            with connection.cursor() as cursor:
                cursor.execute("SELECT cardinality(pg_blocking_pids(%s)) > 0", [pid])
                return cursor.fetchone()[0] or not changer.is_alive()

        wait_for(blocked_or_done)
    changer.join(timeout=10)

    [refusal] = outcome
    assert isinstance(refusal, ApplicationError), refusal
    assert refusal.errors == {
        "critical_high": ["With the override for sensor env-001/temperature: Must be at least warning_high (36.0)."]
    }
    assert Threshold.objects.get(pk=threshold.pk).critical_high == 40
