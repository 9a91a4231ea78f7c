"""Writes to the location tree. Paths of a node and its whole subtree are kept right here, set-wise."""

from __future__ import annotations

from django.db import connection, transaction

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


@transaction.atomic
def location_save(location: Location) -> Location:
    """Insert or update one location and rewrite the paths of its subtree when its name or parent changed.

    1. Lock the parent row and compute this node's tree_path, full_path and depth from it.
    2. Save the node (a new node needs its id before its own path can be known).
    3. If the path prefix changed, rewrite every descendant's paths in one UPDATE.
    """
    parent = Location.objects.select_for_update().get(pk=location.parent_id) if location.parent_id else None
    _check_parent(location, parent)
    _check_name_free(location)
    old = (
        Location.objects.filter(pk=location.pk).values("tree_path", "full_path", "depth").first()
        if location.pk
        else None
    )
    if location.pk is None:
        location.save()
    location.tree_path = f"{parent.tree_path if parent else '/'}{location.pk}/"
    location.full_path = f"{parent.full_path}{Location.PATH_SEPARATOR}{location.name}" if parent else location.name
    location.depth = parent.depth + 1 if parent else 0
    location.save()
    if old and (old["tree_path"] != location.tree_path or old["full_path"] != location.full_path):
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
