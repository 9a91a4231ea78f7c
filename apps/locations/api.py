from __future__ import annotations

from dataclasses import dataclass

import django_filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, viewsets

from apps.core.fields import IdField
from apps.core.filters import FilterSet, IdFilter
from apps.locations.models import Location
from apps.locations.selectors import filter_by_location_subtree, location_subtree_prefix
from apps.locations.services import location_save

SUBTREE_HELP = "Location id: that location and its whole subtree."


class LocationSerializer(serializers.ModelSerializer):
    path = serializers.CharField(source="full_path", read_only=True, help_text="Full readable path from the root.")
    parent = serializers.PrimaryKeyRelatedField(queryset=Location.objects.all(), allow_null=True, required=False)

    class Meta:
        model = Location
        fields = ["id", "name", "kind", "parent", "path", "depth", "description", "created_at", "updated_at"]
        read_only_fields = ["depth", "created_at", "updated_at"]
        # (parent, name) uniqueness is checked by location_save, which names the field and covers roots.
        validators: list = []


class SubtreeFilter(IdFilter):
    """`?location=ID`: rows at that location or anywhere below it; an unknown id matches nothing."""

    def __init__(self, *args, field: str = "location", **kwargs):
        self.subtree_field = field
        kwargs.setdefault("help_text", SUBTREE_HELP + " An unknown id matches nothing.")
        super().__init__(*args, **kwargs)

    def filter(self, qs, value):
        if value in (None, ""):
            return qs
        return filter_by_location_subtree(qs, int(value), field=self.subtree_field)


@dataclass(frozen=True)
class Subtree:
    location_id: int
    prefix: str  # of the tree_path of every location in it


class SubtreeField(IdField):
    """`?location=ID` of the read APIs: that location's Subtree; an unknown id is a 400."""

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", SUBTREE_HELP + " An unknown id is a 400.")
        super().__init__(**kwargs)

    def run_validation(self, data=serializers.empty) -> Subtree | None:
        location_id = super().run_validation(data)
        if location_id is None:
            return None
        prefix = location_subtree_prefix(location_id)
        if prefix is None:
            raise serializers.ValidationError(f"No location {location_id}.")
        return Subtree(location_id=location_id, prefix=prefix)

    def to_representation(self, value: Subtree) -> int:
        return value.location_id


class LocationFilter(FilterSet):
    within = SubtreeFilter(field=None)
    root = django_filters.BooleanFilter(field_name="parent", lookup_expr="isnull", help_text="Only top-level nodes.")

    class Meta:
        model = Location
        fields = ["parent", "kind", "depth"]


@extend_schema_view(
    list=extend_schema(summary="List locations (tree order)"),
    create=extend_schema(summary="Create a location"),
)
class LocationViewSet(viewsets.ModelViewSet):
    queryset = Location.objects.all()
    serializer_class = LocationSerializer
    filterset_class = LocationFilter
    search_fields = ["name", "full_path"]
    ordering_fields = ["id", "name", "kind", "depth", "tree_path", "created_at"]
    ordering = ["tree_path"]

    def perform_create(self, serializer):
        serializer.instance = location_save(Location(**serializer.validated_data))

    def perform_update(self, serializer):
        location = serializer.instance
        for field, value in serializer.validated_data.items():
            setattr(location, field, value)
        serializer.instance = location_save(location)
