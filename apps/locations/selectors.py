from __future__ import annotations

from django.db.models import QuerySet

from apps.locations.models import Location


def location_subtree_prefix(location_id: int) -> str | None:
    """The tree_path prefix of a location's subtree, or None if it does not exist."""
    return Location.objects.filter(pk=location_id).values_list("tree_path", flat=True).first()


def filter_by_location_subtree(queryset: QuerySet, location_id: int, *, field: str | None = "location") -> QuerySet:
    """Rows whose `field` (a Location foreign key; None for locations themselves) lies in the subtree of
    `location_id`. An unknown id matches nothing."""
    prefix = location_subtree_prefix(location_id)
    if prefix is None:
        return queryset.none()
    lookup = f"{field}__tree_path__startswith" if field else "tree_path__startswith"
    return queryset.filter(**{lookup: prefix})
