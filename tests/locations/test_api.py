import pytest

from apps.locations.models import Location
from tests.factories import API, assert_error_shape, make_location

pytestmark = pytest.mark.django_db

URL = f"{API}/locations/"


def detail(location: Location) -> str:
    return f"{URL}{location.pk}/"


def test_root_location_is_created_without_a_parent(admin_api):
    response = admin_api.post(URL, {"name": "Plant 2", "kind": "factory"}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert {"id", "name", "kind", "parent", "path"} <= set(body)
    assert (body["name"], body["kind"], body["parent"], body["path"]) == ("Plant 2", "factory", None, "Plant 2")
    location = Location.objects.get(pk=body["id"])
    assert (location.parent_id, location.depth, location.tree_path) == (None, 0, f"/{location.pk}/")


def test_child_location_gets_its_full_path(world, admin_api):
    response = admin_api.post(URL, {"name": "Line 3", "kind": "line", "parent": world.area_a1_north.pk}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["parent"] == world.area_a1_north.pk
    assert body["path"] == "Plant 1 / Building A / Floor A1 / A1 North / Line 3"
    assert Location.objects.get(pk=body["id"]).depth == 4


def test_list_is_paginated_in_tree_order(world, admin_api):
    response = admin_api.get(URL)

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == len(world.locations)
    paths = [row["path"] for row in body["results"]]
    assert paths[0] == "Plant 1"
    # Depth-first: a building's floors come before the next building.
    assert paths.index("Plant 1 / Building A / Floor A1") < paths.index("Plant 1 / Building B")


def test_retrieve_shows_the_spec_fields(world, viewer_api):
    response = viewer_api.get(detail(world.floor_a1))

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == world.floor_a1.pk
    assert body["name"] == "Floor A1"
    assert body["kind"] == "floor"
    assert body["parent"] == world.building_a.pk
    assert body["path"] == "Plant 1 / Building A / Floor A1"


def test_full_update_replaces_name_kind_and_description(world, admin_api):
    response = admin_api.put(
        detail(world.area_b1_hall),
        {"name": "B1 Store", "kind": "room", "parent": world.floor_b1.pk, "description": "cold store"},
        format="json",
    )

    assert response.status_code == 200, response.content
    world.area_b1_hall.refresh_from_db()
    assert (world.area_b1_hall.name, world.area_b1_hall.kind, world.area_b1_hall.description) == (
        "B1 Store",
        "room",
        "cold store",
    )
    assert response.json()["path"] == "Plant 1 / Building B / Floor B1 / B1 Store"


def test_partial_update_changes_only_what_is_sent(world, admin_api):
    response = admin_api.patch(detail(world.area_a1_south), {"kind": "zone"}, format="json")

    assert response.status_code == 200, response.content
    world.area_a1_south.refresh_from_db()
    assert (world.area_a1_south.kind, world.area_a1_south.name) == ("zone", "A1 South")


def test_deleting_a_leaf_location_removes_it(world, admin_api):
    spare = make_location("Spare room", kind="room", parent=world.floor_b1)

    response = admin_api.delete(detail(spare))

    assert response.status_code == 204
    assert not Location.objects.filter(pk=spare.pk).exists()


def test_deleting_a_location_with_children_is_a_conflict(world, admin_api):
    response = admin_api.delete(detail(world.building_b))

    assert response.status_code == 409
    assert_error_shape(response)
    assert "locations" in response.json()["detail"]
    assert Location.objects.filter(pk=world.building_b.pk).exists()


def test_deleting_a_location_with_devices_is_a_conflict(world, admin_api):
    response = admin_api.delete(detail(world.area_b1_hall))

    assert response.status_code == 409
    assert "devices" in assert_error_shape(response)["detail"]
    assert Location.objects.filter(pk=world.area_b1_hall.pk).exists()


def test_unknown_parent_is_rejected_naming_parent(admin_api):
    response = admin_api.post(URL, {"name": "Orphan", "parent": 987654321}, format="json")

    assert response.status_code == 400
    assert_error_shape(response, "parent")
    assert not Location.objects.filter(name="Orphan").exists()


def test_moving_a_location_under_its_own_descendant_is_rejected(world, admin_api):
    response = admin_api.patch(detail(world.building_a), {"parent": world.area_a1_north.pk}, format="json")

    assert response.status_code == 400
    assert_error_shape(response, "parent")
    world.building_a.refresh_from_db()
    assert world.building_a.parent_id == world.factory.pk


def test_a_location_cannot_be_its_own_parent(world, admin_api):
    response = admin_api.patch(detail(world.floor_a1), {"parent": world.floor_a1.pk}, format="json")

    assert response.status_code == 400
    assert_error_shape(response, "parent")


def test_duplicate_name_under_the_same_parent_is_rejected_naming_name(world, admin_api):
    response = admin_api.post(
        URL, {"name": "Building A", "kind": "building", "parent": world.factory.pk}, format="json"
    )

    assert response.status_code == 400
    assert_error_shape(response, "name")
    assert Location.objects.filter(name="Building A").count() == 1


def test_two_roots_may_not_share_a_name(world, admin_api):
    response = admin_api.post(URL, {"name": "Plant 1", "kind": "factory", "parent": None}, format="json")

    assert response.status_code == 400
    assert_error_shape(response, "name")
    assert Location.objects.filter(name="Plant 1").count() == 1


def test_renaming_onto_a_sibling_name_is_rejected(world, admin_api):
    response = admin_api.patch(detail(world.building_b), {"name": "Building A"}, format="json")

    assert response.status_code == 400
    assert_error_shape(response, "name")


def test_moving_next_to_a_namesake_is_rejected(world, admin_api):
    make_location("A1 North", parent=world.floor_b1)
    response = admin_api.patch(detail(world.area_a1_north), {"parent": world.floor_b1.pk}, format="json")

    assert response.status_code == 400
    assert_error_shape(response, "name")


def test_the_same_name_under_different_parents_is_fine(world, admin_api):
    response = admin_api.post(URL, {"name": "A1 North", "parent": world.floor_b1.pk}, format="json")

    assert response.status_code == 201, response.content


def test_unknown_kind_is_rejected_naming_kind(admin_api):
    response = admin_api.post(URL, {"name": "Somewhere", "kind": "galaxy"}, format="json")

    assert response.status_code == 400
    assert_error_shape(response, "kind")


def chain(prefix: str, depth: int) -> list[Location]:
    """`depth` nested locations with 200-character names."""
    nodes: list[Location] = []
    for level in range(depth):
        nodes.append(make_location(f"{prefix}{level:02d}".ljust(200, "x"), parent=nodes[-1] if nodes else None))
    return nodes


def test_a_path_too_long_for_its_column_is_rejected_naming_name(admin_api):
    leaf = chain("a", 19)[-1]  # a full path of 19 * 200 + 18 * 3 characters

    response = admin_api.post(URL, {"name": "y" * 200, "parent": leaf.pk}, format="json")

    assert response.status_code == 400
    assert_error_shape(response, "name")
    assert not Location.objects.filter(name="y" * 200).exists()


def test_a_move_that_would_make_a_descendants_path_too_long_is_rejected_naming_parent(admin_api):
    target = chain("a", 10)[-1]
    moved = chain("b", 10)
    before = list(Location.objects.order_by("pk").values())

    response = admin_api.patch(detail(moved[0]), {"parent": target.pk}, format="json")

    assert response.status_code == 400
    assert_error_shape(response, "parent")
    assert list(Location.objects.order_by("pk").values()) == before
