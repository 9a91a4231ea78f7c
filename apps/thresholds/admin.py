from __future__ import annotations

from django import forms
from django.contrib import admin

from apps.devices.admin import SensorAdmin, SensorTypeAdmin
from apps.devices.models import Sensor, SensorType
from apps.thresholds.models import SensorThresholdMapping, Threshold
from apps.thresholds.selectors import OVERRIDABLE_FIELDS, merge_bands
from apps.thresholds.validation import band_order_errors

BAND_COLUMNS = ["warning_low", "warning_high", "critical_low", "critical_high", "hysteresis", "min_duration_s"]


def _add_band_errors(form: forms.ModelForm, errors: dict[str, list[str]]) -> None:
    # Field errors also keep the model's check constraints on those fields from repeating them as
    # anonymous "constraint violated" messages.
    for field, messages in errors.items():
        for message in messages:
            form.add_error(field, message)


class ThresholdForm(forms.ModelForm):
    class Meta:
        model = Threshold
        fields = ["sensor_type", "name", *BAND_COLUMNS, "enabled"]

    def clean(self):
        cleaned = super().clean()
        bands = {field: cleaned.get(field) for field in OVERRIDABLE_FIELDS}
        _add_band_errors(self, band_order_errors(bands))
        if cleaned.get("hysteresis") is not None and cleaned["hysteresis"] < 0:
            self.add_error("hysteresis", "Must not be negative.")
        return cleaned


class SensorThresholdMappingForm(forms.ModelForm):
    class Meta:
        model = SensorThresholdMapping
        fields = ["sensor", "threshold", *BAND_COLUMNS, "enabled"]

    def clean(self):
        cleaned = super().clean()
        # In the sensor page's inline the sensor is the page's (possibly not yet saved) sensor.
        sensor: Sensor | None = cleaned.get("sensor") or getattr(self.instance, "sensor", None)
        threshold: Threshold | None = cleaned.get("threshold")
        if sensor is None or threshold is None:
            return cleaned
        if sensor.sensor_type_id != threshold.sensor_type_id:
            self.add_error("threshold", "This threshold belongs to another sensor type than the sensor.")
            return cleaned
        overrides = {field: cleaned.get(field) for field in OVERRIDABLE_FIELDS}
        if overrides["hysteresis"] is not None and overrides["hysteresis"] < 0:
            self.add_error("hysteresis", "Must not be negative.")
        inherited = {field: getattr(threshold, field) for field in OVERRIDABLE_FIELDS}
        # The overrides must be in order among themselves and with the bands they inherit.
        _add_band_errors(self, band_order_errors(overrides) or band_order_errors(merge_bands(inherited, overrides)))
        return cleaned


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
class ThresholdAdmin(admin.ModelAdmin):
    form = ThresholdForm
    list_display = ["__str__", "sensor_type", *BAND_COLUMNS, "enabled"]
    list_filter = ["enabled", "sensor_type"]
    list_select_related = ["sensor_type"]
    search_fields = ["name", "sensor_type__code"]
    autocomplete_fields = ["sensor_type"]


@admin.register(SensorThresholdMapping)
class SensorThresholdMappingAdmin(admin.ModelAdmin):
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
class SensorTypeWithThresholdsAdmin(SensorTypeAdmin):
    inlines = [*SensorTypeAdmin.inlines, ThresholdInline]


@admin.register(Sensor)
class SensorWithMappingsAdmin(SensorAdmin):
    inlines = [*SensorAdmin.inlines, SensorThresholdMappingInline]
