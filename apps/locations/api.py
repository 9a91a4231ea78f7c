from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, viewsets

from apps.locations.models import Location
from apps.locations.selectors import filter_by_location_subtree
from apps.locations.services import location_save


class LocationSerializer(serializers.ModelSerializer):
    path = serializers.CharField(source="full_path", read_only=True, help_text="Full readable path from the root.")
    parent = serializers.PrimaryKeyRelatedField(queryset=Location.objects.all(), allow_null=True, required=False)

    class Meta:
        model = Location
        fields = ["id", "name", "kind", "parent", "path", "depth", "description", "created_at", "updated_at"]
        read_only_fields = ["depth", "created_at", "updated_at"]
        # (parent, name) uniqueness is checked by location_save, which names the field and covers roots.
        validators: list = []


class SubtreeFilter(django_filters.NumberFilter):
    """`?location=ID`: rows at that location or anywhere below it."""

    def __init__(self, *args, field: str = "location", **kwargs):
        self.subtree_field = field
        kwargs.setdefault("help_text", "Location id: matches that location and its whole subtree.")
        super().__init__(*args, **kwargs)

    def filter(self, qs, value):
        if value in (None, ""):
            return qs
        return filter_by_location_subtree(qs, int(value), field=self.subtree_field)


class LocationFilter(django_filters.FilterSet):
    within = django_filters.NumberFilter(method="filter_within", help_text="Location id: that node and its subtree.")
    root = django_filters.BooleanFilter(field_name="parent", lookup_expr="isnull", help_text="Only top-level nodes.")

    class Meta:
        model = Location
        fields = ["parent", "kind", "depth"]

    def filter_within(self, qs, name, value):
        return filter_by_location_subtree(qs, int(value), field=None) if value is not None else qs


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
