from __future__ import annotations

from django import forms
from django.contrib import admin

from apps.locations.models import Location
from apps.locations.services import location_save


class LocationForm(forms.ModelForm):
    class Meta:
        model = Location
        fields = ["name", "kind", "parent", "description"]

    def clean_parent(self) -> Location | None:
        # The same rule location_save enforces, checked here so the admin shows it as a field error
        # instead of failing on save.
        parent = self.cleaned_data.get("parent")
        location = self.instance
        if parent is not None and location.pk is not None:
            if parent.pk == location.pk or parent.tree_path.startswith(location.tree_path):
                raise forms.ValidationError("A location cannot be moved under itself or its own descendants.")
        return parent


@admin.register(Location)
class LocationAdmin(admin.ModelAdmin):
    form = LocationForm
    list_display = ["full_path", "kind", "depth"]
    list_filter = ["kind"]
    search_fields = ["name", "full_path"]
    autocomplete_fields = ["parent"]
    readonly_fields = ["full_path", "depth", "created_at", "updated_at"]
    # Alphabetical by path keeps each subtree together and reads better than id order (tree_path).
    ordering = ["full_path"]

    def save_model(self, request, obj: Location, form, change: bool) -> None:
        # The service keeps tree_path, full_path and depth right for the node and its whole subtree.
        location_save(obj)
