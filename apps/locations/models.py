from __future__ import annotations

from django.db import models


class LocationQuerySet(models.QuerySet):
    def subtree(self, location: Location) -> LocationQuerySet:
        """The location and everything below it, by materialized-path prefix (one index range scan)."""
        return self.filter(tree_path__startswith=location.tree_path)


class Location(models.Model):
    """A node of the plant tree. `tree_path` ("/1/4/9/") makes subtree queries a prefix match."""

    class Kind(models.TextChoices):
        SITE = "site"
        FACTORY = "factory"
        BUILDING = "building"
        FLOOR = "floor"
        AREA = "area"
        LINE = "line"
        ROOM = "room"
        ZONE = "zone"
        OTHER = "other"

    PATH_SEPARATOR = " / "

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.AREA)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    description = models.TextField(blank=True, default="")
    tree_path = models.CharField(max_length=2000, editable=False, default="")
    full_path = models.CharField(max_length=4000, editable=False, default="")
    depth = models.PositiveSmallIntegerField(editable=False, default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = LocationQuerySet.as_manager()

    class Meta:
        ordering = ["tree_path"]
        constraints = [
            models.UniqueConstraint(
                fields=["parent", "name"], nulls_distinct=False, name="location_unique_name_per_parent"
            ),
            models.CheckConstraint(condition=~models.Q(parent=models.F("id")), name="location_not_own_parent"),
        ]
        indexes = [
            # varchar_pattern_ops lets LIKE 'prefix%' use the index whatever the database collation is.
            models.Index(fields=["tree_path"], opclasses=["varchar_pattern_ops"], name="location_tree_path_prefix"),
        ]

    def __str__(self) -> str:
        return self.full_path or self.name
