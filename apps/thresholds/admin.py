from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db.models import Model

from apps.devices.admin import SensorAdmin, SensorTypeAdmin, adopt_created
from apps.devices.models import Sensor, SensorType
from apps.thresholds.models import SensorThresholdMapping, Threshold
from apps.thresholds.services import (
    MAPPING_FIELDS,
    THRESHOLD_FIELDS,
    mapping_create,
    mapping_errors,
    mapping_update,
    threshold_create,
    threshold_errors,
    threshold_update,
)

BAND_COLUMNS = ["warning_low", "warning_high", "critical_low", "critical_high", "hysteresis", "min_duration_s"]


class ServiceRulesForm(forms.ModelForm):
    """A form that shows the rules of apps/thresholds/services.py as field errors, so staff meet the same
    refusals as API clients, before anything is saved."""

    service_fields: tuple[str, ...] = ()

    def service_errors(self, candidate: Model) -> dict[str, list[str]]:
        raise NotImplementedError

    def clean(self):
        cleaned = super().clean()
        # The instance as the form would save it. A field the form lacks keeps the instance's value (in an
        # inline, the parent is the formset's field and may not be saved yet); a field that failed its own
        # validation is empty, so no rule reports a value nobody entered.
        values = {
            field: cleaned.get(field) if field in self.fields else getattr(self.instance, field, None)
            for field in self.service_fields
        }
        candidate = self._meta.model(pk=self.instance.pk, **values)
        # Field errors also keep the model's check constraints on those fields from repeating them as
        # anonymous "constraint violated" messages.
        for field, messages in self.service_errors(candidate).items():
            for message in messages:
                self.add_error(field if field in self.fields else None, message)
        return cleaned


class ThresholdForm(ServiceRulesForm):
    service_fields = THRESHOLD_FIELDS

    class Meta:
        model = Threshold
        fields = ["sensor_type", "name", *BAND_COLUMNS, "enabled"]

    def service_errors(self, candidate: Threshold) -> dict[str, list[str]]:
        return threshold_errors(threshold=candidate)


class SensorThresholdMappingForm(ServiceRulesForm):
    service_fields = MAPPING_FIELDS

    class Meta:
        model = SensorThresholdMapping
        fields = ["sensor", "threshold", *BAND_COLUMNS, "enabled"]

    def service_errors(self, candidate: SensorThresholdMapping) -> dict[str, list[str]]:
        return mapping_errors(mapping=candidate)


def save_through_services(obj: Threshold | SensorThresholdMapping, changed: list[str] | None) -> None:
    """Save what an admin form built through the services: a new row is created (and `obj` becomes it, for
    the admin's log and redirect), a stored one gets the fields the form changed."""
    fields = THRESHOLD_FIELDS if isinstance(obj, Threshold) else MAPPING_FIELDS
    if changed is None:
        values = {field: getattr(obj, field) for field in fields}
        adopt_created(obj, threshold_create(**values) if isinstance(obj, Threshold) else mapping_create(**values))
        return
    data = {field: getattr(obj, field) for field in changed if field in fields}
    if isinstance(obj, Threshold):
        threshold_update(threshold=obj, data=data)
    else:
        mapping_update(mapping=obj, data=data)


class SavedThroughServices:
    """For a ModelAdmin of thresholds or mappings, or of a page with their inlines: saves go through the
    services (inline rows too; other inlines save as usual)."""

    def save_model(self, request, obj, form, change: bool) -> None:
        if isinstance(obj, Threshold | SensorThresholdMapping):
            save_through_services(obj, form.changed_data if change else None)
        else:
            super().save_model(request, obj, form, change)

    def save_formset(self, request, form, formset, change: bool) -> None:
        if formset.model not in (Threshold, SensorThresholdMapping):
            super().save_formset(request, form, formset, change)
            return
        formset.save(commit=False)  # fills new_objects, changed_objects and deleted_objects, saves nothing
        for obj in formset.deleted_objects:
            obj.delete()
        for obj in formset.new_objects:
            save_through_services(obj, None)
        for obj, changed in formset.changed_objects:
            save_through_services(obj, changed)


class ThresholdInline(admin.TabularInline):
    model = Threshold
    form = ThresholdForm
    fields = ["name", *BAND_COLUMNS, "enabled"]
    extra = 0


class SensorThresholdMappingInline(admin.TabularInline):
    model = SensorThresholdMapping
    form = SensorThresholdMappingForm
    fields = ["threshold", *BAND_COLUMNS, "enabled"]
    extra = 0

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("threshold__sensor_type")

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "threshold":
            kwargs["queryset"] = Threshold.objects.select_related("sensor_type")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(Threshold)
class ThresholdAdmin(SavedThroughServices, admin.ModelAdmin):
    form = ThresholdForm
    list_display = ["__str__", "sensor_type", *BAND_COLUMNS, "enabled"]
    list_filter = ["enabled", "sensor_type"]
    list_select_related = ["sensor_type"]
    search_fields = ["name", "sensor_type__code"]
    autocomplete_fields = ["sensor_type"]


@admin.register(SensorThresholdMapping)
class SensorThresholdMappingAdmin(SavedThroughServices, admin.ModelAdmin):
    form = SensorThresholdMappingForm
    list_display = ["sensor", "threshold", *BAND_COLUMNS, "enabled"]
    list_filter = ["enabled", "threshold__sensor_type"]
    list_select_related = ["sensor", "threshold__sensor_type"]
    search_fields = ["sensor__key", "threshold__name"]
    autocomplete_fields = ["sensor", "threshold"]


# Sensor types and sensors are the devices app's; their pages gain the threshold inlines here, so the
# import runs thresholds -> devices like the models do, never the other way.
admin.site.unregister(SensorType)
admin.site.unregister(Sensor)


@admin.register(SensorType)
class SensorTypeWithThresholdsAdmin(SavedThroughServices, SensorTypeAdmin):
    inlines = [*SensorTypeAdmin.inlines, ThresholdInline]


@admin.register(Sensor)
class SensorWithMappingsAdmin(SavedThroughServices, SensorAdmin):
    inlines = [*SensorAdmin.inlines, SensorThresholdMappingInline]
