import pytest

from apps.thresholds.models import Threshold
from apps.thresholds.selectors import EffectiveThreshold, effective_thresholds
from tests.factories import make_mapping, make_threshold

pytestmark = pytest.mark.django_db


def pairs(world, *keys):
    return [(world.sensors[key].pk, world.sensors[key].sensor_type_id) for key in keys]


def test_sensors_without_mapping_get_their_types_bands(world):
    result = effective_thresholds(pairs(world, "env-001/temperature"))

    [effective] = result[world.sensors["env-001/temperature"].pk]
    assert effective == EffectiveThreshold(
        threshold_id=world.thresholds["temperature"].pk,
        sensor_id=world.sensors["env-001/temperature"].pk,
        warning_low=5,
        warning_high=30,
        critical_low=0,
        critical_high=40,
        hysteresis=0.5,
        min_duration_s=60,
    )


def test_a_mapping_overrides_only_the_fields_it_sets(world):
    sensor = world.sensors["env-002/temperature"]

    [effective] = effective_thresholds(pairs(world, "env-002/temperature"))[sensor.pk]

    assert (effective.warning_high, effective.critical_high, effective.hysteresis) == (35, 40, 0.5)


def test_a_disabled_mapping_switches_the_threshold_off_for_that_sensor_only(world):
    world.mapping.enabled = False
    world.mapping.save()

    result = effective_thresholds(pairs(world, "env-001/temperature", "env-002/temperature"))

    assert world.sensors["env-002/temperature"].pk not in result
    assert world.sensors["env-001/temperature"].pk in result


def test_disabled_thresholds_and_types_without_thresholds_yield_nothing(world):
    Threshold.objects.filter(pk=world.thresholds["voltage_dc"].pk).update(enabled=False)

    result = effective_thresholds(pairs(world, "dc-meter-001/voltage_dc", "env-001/humidity"))

    assert result == {}


def test_query_count_does_not_grow_with_the_number_of_sensors(world, django_assert_num_queries):
    humidity_watch = make_threshold(world.sensor_types["humidity"], name="watch", warning_high=80)
    make_mapping(world.sensors["env-001/humidity"], humidity_watch, warning_high=75)

    with django_assert_num_queries(2):
        result = effective_thresholds(pairs(world, *world.sensors))

    # Every sensor but the DC current one has a threshold: voltage, two temperatures, two humidities.
    assert len(result) == 5


@pytest.mark.parametrize(
    ("value", "severity"), [(20, "normal"), (31, "warning"), (41, "critical"), (4, "warning"), (-1, "critical")]
)
def test_severity_of_a_value(world, value, severity):
    [effective] = effective_thresholds(pairs(world, "env-001/temperature"))[world.sensors["env-001/temperature"].pk]

    assert effective.severity_of(value) == severity


def test_effective_thresholds_are_cached_until_a_threshold_or_mapping_changes(world, django_assert_num_queries):
    asked = pairs(world, "env-001/temperature", "env-002/temperature", "env-001/humidity")
    effective_thresholds(asked)

    with django_assert_num_queries(0):
        effective_thresholds(asked)

    threshold = world.thresholds["temperature"]
    threshold.warning_high = 27
    threshold.save()  # the save signal bumps the generation: every process drops its thresholds
    with django_assert_num_queries(2):
        changed = effective_thresholds(asked)
    assert {t.warning_high for t in changed[world.sensors["env-001/temperature"].pk]} == {27}

    world.mapping.enabled = False
    world.mapping.save()
    assert world.mapping.sensor_id not in effective_thresholds(asked)
