"""Writes to the location tree. Paths of a node and its whole subtree are kept right here, set-wise."""

from __future__ import annotations

from django.db import connection, transaction
from django.db.models import Max
from django.db.models.functions import Length

from apps.core.errors import ApplicationError
from apps.locations.models import Location


def _check_parent(location: Location, parent: Location | None) -> None:
    if parent is None or location.pk is None:
        return
    if parent.pk == location.pk or parent.tree_path.startswith(location.tree_path):
        raise ApplicationError(
            "A location cannot be moved under itself or its own descendants.",
            errors={"parent": ["Would create a cycle in the location tree."]},
        )


def _check_name_free(location: Location) -> None:
    # The unique constraint treats NULL parents as equal (two roots may not share a name either); checking
    # here names the field instead of surfacing an IntegrityError. Siblings are serialized by the parent's
    # row lock taken before this check.
    siblings = Location.objects.filter(parent_id=location.parent_id, name=location.name)
    if location.pk is not None:
        siblings = siblings.exclude(pk=location.pk)
    if siblings.exists():
        where = "at the top level" if location.parent_id is None else "under this parent"
        raise ApplicationError(
            f"A location named {location.name!r} already exists {where}.",
            errors={"name": [f"A location with this name already exists {where}."]},
        )


def _check_path_lengths(location: Location, old: dict | None) -> None:
    """The paths live in bounded columns: refuse a name or a move that would overflow them, here or anywhere
    in the subtree below (`old`: this node's paths before a change of them), rather than fail in the database."""
    longest_tree, longest_full = len(location.tree_path), len(location.full_path)
    if old is not None:
        below = (
            Location.objects.filter(tree_path__startswith=old["tree_path"])
            .exclude(pk=location.pk)
            .aggregate(tree=Max(Length("tree_path")), full=Max(Length("full_path")))
        )
        if below["tree"] is not None:
            longest_tree = max(longest_tree, below["tree"] - len(old["tree_path"]) + len(location.tree_path))
            longest_full = max(longest_full, below["full"] - len(old["full_path"]) + len(location.full_path))
    meta = Location._meta
    if longest_tree > meta.get_field("tree_path").max_length or longest_full > meta.get_field("full_path").max_length:
        field = "parent" if old is not None and old["parent_id"] != location.parent_id else "name"
        raise ApplicationError(
            "The location tree would get too deep, or its path too long, here.",
            errors={field: ["The full path of this location or of one below it would exceed its maximum length."]},
        )


@transaction.atomic
def location_save(location: Location) -> Location:
    """Insert or update one location and rewrite the paths of its subtree when its name or parent changed.

    1. Lock the parent row, refuse cycles and sibling name clashes, and compute this node's tree_path,
       full_path and depth from the parent's (a new node is inserted first: its path contains its id).
    2. Refuse paths longer than their columns allow, here or below; save the node.
    3. If the path prefix changed, rewrite every descendant's paths in one UPDATE.
    """
    parent = Location.objects.select_for_update().get(pk=location.parent_id) if location.parent_id else None
    _check_parent(location, parent)
    _check_name_free(location)
    old = (
        Location.objects.filter(pk=location.pk).values("parent_id", "tree_path", "full_path", "depth").first()
        if location.pk
        else None
    )
    if location.pk is None:
        location.save()
    location.tree_path = f"{parent.tree_path if parent else '/'}{location.pk}/"
    location.full_path = f"{parent.full_path}{Location.PATH_SEPARATOR}{location.name}" if parent else location.name
    location.depth = parent.depth + 1 if parent else 0
    paths_changed = old is not None and (
        old["tree_path"] != location.tree_path or old["full_path"] != location.full_path
    )
    _check_path_lengths(location, old if paths_changed else None)
    location.save()
    if paths_changed:
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                UPDATE {Location._meta.db_table}
                   SET tree_path = %s || substr(tree_path, %s),
                       full_path = %s || substr(full_path, %s),
                       depth = depth + %s
                 WHERE tree_path LIKE %s AND id <> %s
                """,
                [
                    location.tree_path,
                    len(old["tree_path"]) + 1,
                    location.full_path,
                    len(old["full_path"]) + 1,
                    location.depth - old["depth"],
                    old["tree_path"].replace("%", r"\%").replace("_", r"\_") + "%",
                    location.pk,
                ],
            )
    return location
