"""List endpoints cost the same number of queries whatever the number of rows: no query per row."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import API, make_device, make_location, make_mapping, make_sensor, make_threshold

pytestmark = pytest.mark.django_db

LISTS = ["locations", "sensor-types", "devices", "sensors", "thresholds", "threshold-mappings"]


def grow(world, n: int) -> None:
    """More of every listed resource, all related to each other."""
    for i in range(n):
        area = make_location(f"Extra {i}", parent=world.floor_b1)
        device, _ = make_device(f"extra-{i}", location=area)
        temperature = make_sensor(device, world.sensor_types["temperature"])
        make_sensor(device, world.sensor_types["humidity"])
        make_mapping(temperature, world.thresholds["temperature"], warning_high=32)
        make_threshold(world.sensor_types["humidity"], name=f"extra-{i}", warning_high=80 + i)


def queries_for(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return len(captured)


@pytest.mark.parametrize("resource", LISTS)
def test_list_query_count_does_not_grow_with_rows(world, viewer_api, resource):
    url = f"{API}/{resource}/"
    queries_for(viewer_api, url)  # warm up: the token user's role is looked up per request either way
    few = queries_for(viewer_api, url)

    grow(world, 5)
    many = queries_for(viewer_api, url)

    assert many == few, f"{resource}: {few} queries for the world, {many} with more rows"
