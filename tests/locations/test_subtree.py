"""Subtree queries and the materialized paths that make them cheap."""

import pytest

from apps.core.errors import ApplicationError
from apps.locations.models import Location
from apps.locations.services import location_save
from tests.factories import API, make_location

pytestmark = pytest.mark.django_db


def ids(response) -> set[int]:
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


def test_within_returns_the_node_and_everything_below_it(world, viewer_api):
    response = viewer_api.get(f"{API}/locations/", {"within": world.building_a.pk})

    assert ids(response) == {
        world.building_a.pk,
        world.floor_a1.pk,
        world.area_a1_north.pk,
        world.area_a1_south.pk,
    }


def test_within_an_unknown_location_matches_nothing(world, viewer_api):
    assert ids(viewer_api.get(f"{API}/locations/", {"within": 987654321})) == set()


def test_root_filter_lists_only_top_level_nodes(world, viewer_api):
    make_location("Plant 2", kind="factory")

    response = viewer_api.get(f"{API}/locations/", {"root": "true"})

    assert {row["name"] for row in response.json()["results"]} == {"Plant 1", "Plant 2"}


def test_devices_filtered_by_a_building_are_exactly_those_below_it(world, viewer_api):
    response = viewer_api.get(f"{API}/devices/", {"location": world.building_a.pk})

    assert ids(response) == {world.devices["dc-meter-001"].pk, world.devices["env-001"].pk}


def test_devices_filtered_by_a_leaf_area(world, viewer_api):
    response = viewer_api.get(f"{API}/devices/", {"location": world.area_b1_hall.pk})

    assert ids(response) == {world.devices["env-002"].pk}


def test_sensors_filtered_by_a_building_are_exactly_those_below_it(world, viewer_api):
    response = viewer_api.get(f"{API}/sensors/", {"location": world.building_a.pk})

    assert response.status_code == 200
    keys = {row["key"] for row in response.json()["results"]}
    assert keys == world.sensors_below(world.building_a)
    assert keys == {"dc-meter-001/voltage_dc", "dc-meter-001/current_dc", "env-001/temperature", "env-001/humidity"}


def test_sensors_filtered_by_the_factory_are_all_sensors(world, viewer_api):
    response = viewer_api.get(f"{API}/sensors/", {"location": world.factory.pk})

    assert {row["key"] for row in response.json()["results"]} == set(world.sensors)


def test_subtree_filter_of_an_unknown_location_matches_nothing(world, viewer_api):
    assert ids(viewer_api.get(f"{API}/devices/", {"location": 987654321})) == set()
    assert ids(viewer_api.get(f"{API}/sensors/", {"location": 987654321})) == set()


def test_threshold_mappings_filtered_by_location(world, viewer_api):
    assert ids(viewer_api.get(f"{API}/threshold-mappings/", {"location": world.building_b.pk})) == {world.mapping.pk}
    assert ids(viewer_api.get(f"{API}/threshold-mappings/", {"location": world.building_a.pk})) == set()


def test_moving_a_subtree_rewrites_the_path_of_every_descendant(world, admin_api):
    response = admin_api.patch(f"{API}/locations/{world.floor_a1.pk}/", {"parent": world.building_b.pk}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["path"] == "Plant 1 / Building B / Floor A1"
    moved = {
        location.pk: location
        for location in Location.objects.filter(
            pk__in=[world.floor_a1.pk, world.area_a1_north.pk, world.area_a1_south.pk]
        )
    }
    building_b = world.building_b
    assert moved[world.floor_a1.pk].tree_path == f"{building_b.tree_path}{world.floor_a1.pk}/"
    assert moved[world.floor_a1.pk].depth == 2
    for area in (world.area_a1_north, world.area_a1_south):
        row = moved[area.pk]
        assert row.tree_path == f"{building_b.tree_path}{world.floor_a1.pk}/{area.pk}/"
        assert row.full_path == f"Plant 1 / Building B / Floor A1 / {area.name}"
        assert row.depth == 3
    # The subtree queries follow the move.
    assert ids(admin_api.get(f"{API}/devices/", {"location": world.building_b.pk})) == {
        device.pk for device in world.devices.values()
    }
    assert ids(admin_api.get(f"{API}/devices/", {"location": world.building_a.pk})) == set()


def test_moving_a_subtree_up_shortens_depths(world, admin_api):
    response = admin_api.patch(f"{API}/locations/{world.floor_a1.pk}/", {"parent": None}, format="json")

    assert response.status_code == 200, response.content
    north = Location.objects.get(pk=world.area_a1_north.pk)
    assert (north.full_path, north.depth) == ("Floor A1 / A1 North", 1)
    assert north.tree_path == f"/{world.floor_a1.pk}/{north.pk}/"


def test_renaming_rewrites_the_readable_path_of_descendants(world, admin_api):
    response = admin_api.patch(f"{API}/locations/{world.building_a.pk}/", {"name": "Hall A"}, format="json")

    assert response.status_code == 200, response.content
    paths = dict(
        Location.objects.filter(tree_path__startswith=world.building_a.tree_path).values_list("pk", "full_path")
    )
    assert paths == {
        world.building_a.pk: "Plant 1 / Hall A",
        world.floor_a1.pk: "Plant 1 / Hall A / Floor A1",
        world.area_a1_north.pk: "Plant 1 / Hall A / Floor A1 / A1 North",
        world.area_a1_south.pk: "Plant 1 / Hall A / Floor A1 / A1 South",
    }
    # Nodes outside the subtree keep their paths.
    assert Location.objects.get(pk=world.area_b1_hall.pk).full_path == "Plant 1 / Building B / Floor B1 / B1 Hall"
    response = admin_api.get(f"{API}/locations/{world.area_a1_north.pk}/")
    assert response.json()["path"] == "Plant 1 / Hall A / Floor A1 / A1 North"


def test_location_save_refuses_a_cycle(world):
    world.factory.parent = world.area_b1_hall

    with pytest.raises(ApplicationError) as raised:
        location_save(world.factory)

    assert "parent" in raised.value.errors
    assert Location.objects.get(pk=world.factory.pk).parent_id is None


def test_sibling_tree_paths_do_not_match_each_others_prefix(db):
    """/1/ must not match /12/: the trailing separator is part of every prefix."""
    roots = [make_location(f"Root {n}", kind="site") for n in range(12)]
    first, twelfth = roots[0], roots[11]
    assert not twelfth.tree_path.startswith(first.tree_path)
    assert set(Location.objects.subtree(first).values_list("pk", flat=True)) == {first.pk}
