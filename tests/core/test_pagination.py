import pytest

from apps.devices.models import SensorType
from tests.factories import API, assert_error_shape

pytestmark = pytest.mark.django_db


def test_lists_page_with_page_size_and_links(world, viewer_api):
    first = viewer_api.get(f"{API}/sensors/", {"page_size": 4})

    assert first.status_code == 200
    body = first.json()
    assert body["count"] == len(world.sensors)
    assert len(body["results"]) == 4
    assert body["previous"] is None and body["next"]
    second = viewer_api.get(body["next"]).json()
    assert {row["key"] for row in body["results"] + second["results"]} == set(world.sensors)


def test_page_size_is_capped(world, viewer_api):
    SensorType.objects.bulk_create(SensorType(code=f"type-{n:04d}", name=f"Type {n}") for n in range(1005))

    body = viewer_api.get(f"{API}/sensor-types/", {"page_size": 5000}).json()

    assert len(body["results"]) == 1000


def test_a_page_past_the_end_is_404_in_the_error_shape(world, viewer_api):
    response = viewer_api.get(f"{API}/devices/", {"page": 99})

    assert response.status_code == 404
    assert_error_shape(response)


def test_ordering_and_search(world, viewer_api):
    by_device_id_desc = viewer_api.get(f"{API}/devices/", {"ordering": "-device_id"}).json()["results"]
    assert [row["device_id"] for row in by_device_id_desc] == ["env-002", "env-001", "dc-meter-001"]

    found = viewer_api.get(f"{API}/devices/", {"search": "meter"}).json()["results"]
    assert [row["device_id"] for row in found] == ["dc-meter-001"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"page": "1e20"}, "page"),
        ({"page": "0"}, "page"),
        ({"page": "-3"}, "page"),
        ({"page": "two"}, "page"),
        ({"page_size": "1e20"}, "page_size"),
        ({"page_size": "0"}, "page_size"),
    ],
)
def test_a_page_or_page_size_that_is_not_a_positive_integer_is_a_400_naming_it(world, viewer_api, params, field):
    response = viewer_api.get(f"{API}/devices/", params)

    assert response.status_code == 400, response.content
    assert_error_shape(response, field)


def test_huge_page_numbers_and_sizes_are_a_404_past_the_end_or_capped(world, viewer_api):
    assert viewer_api.get(f"{API}/devices/", {"page": str(10**30)}).status_code == 404
    capped = viewer_api.get(f"{API}/devices/", {"page_size": str(10**30)})
    assert capped.status_code == 200 and len(capped.json()["results"]) == 3
    assert viewer_api.get(f"{API}/devices/", {"page": "last"}).status_code == 200
