from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import Model
from django.utils.html import format_html, format_html_join

from apps.devices.models import Device, Sensor, SensorType
from apps.devices.services import device_create, device_rotate_key, sensor_create


def adopt_created(target: Model, created: Model) -> None:
    """Make the admin's unsaved form instance the row a service just created, so the admin's own steps
    after save_model (change message, log entry, redirect) see the saved object."""
    target.pk = created.pk
    target.refresh_from_db()
    target._state.adding = False


def _editable_values(instance: Model) -> dict:
    return {
        field.attname: getattr(instance, field.attname)
        for field in instance._meta.concrete_fields
        if field.editable and not field.primary_key
    }


@admin.register(SensorType)
class SensorTypeAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "unit", "plausible_min", "plausible_max", "aliases"]
    search_fields = ["code", "name"]
    ordering = ["code"]


class SensorInline(admin.TabularInline):
    """The device's sensors, read-only: sensors are added on their own page so their keys are made by
    sensor_create."""

    model = Sensor
    fields = ["key", "sensor_type", "channel", "location"]
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("sensor_type", "location")


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    list_display = [
        "device_id",
        "name",
        "location",
        "status",
        "connection_status",
        "last_seen",
        "fw_version",
        "ingest_key_prefix",
    ]
    list_filter = ["status", "connection_status", "location", "manufacturer"]
    list_select_related = ["location"]
    search_fields = ["device_id", "name", "manufacturer", "model"]
    autocomplete_fields = ["location"]
    readonly_fields = [
        "ingest_key_prefix",
        "ingest_key_rotated_at",
        "last_seen",
        "last_seq",
        "seq_gaps",
        "offline_since",
        "ota_status",
        "ota_updated_at",
        "created_at",
        "updated_at",
    ]
    fieldsets = [
        (None, {"fields": ["device_id", "name", "manufacturer", "model", "location", "status", "fw_version"]}),
        ("Ingest", {"fields": ["payload_adapter", "offline_after_s", "metadata"]}),
        (
            "State (kept by the system)",
            {
                "fields": [
                    "connection_status",
                    "last_seen",
                    "offline_since",
                    "last_seq",
                    "seq_gaps",
                    "ota_status",
                    "ota_updated_at",
                    "ingest_key_prefix",
                    "ingest_key_rotated_at",
                    "created_at",
                    "updated_at",
                ]
            },
        ),
    ]
    inlines = [SensorInline]
    actions = ["rotate_ingest_key"]

    def save_model(self, request, obj: Device, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        # A new device gets its ingest key from the service; the key is not stored, so this is the only
        # time it can be shown.
        device, key = device_create(**_editable_values(obj))
        adopt_created(obj, device)
        self.message_user(
            request,
            format_html(
                "Ingest key for {}: <code>{}</code> (shown only this once: store it now).", device.device_id, key
            ),
            messages.WARNING,
        )

    # The new keys are shown on the page and the old ones stop working: as in the API, admins only.
    @admin.action(description="Rotate ingest key", permissions=["change"])
    def rotate_ingest_key(self, request, queryset) -> None:
        rotated = [(device.device_id, device_rotate_key(device=device)) for device in queryset]
        self.message_user(
            request,
            format_html(
                "New ingest keys (shown only this once: store them now; the old keys no longer work):<br>{}",
                format_html_join("", "{}: <code>{}</code><br>", rotated),
            ),
            messages.WARNING,
        )


class SensorForm(forms.ModelForm):
    class Meta:
        model = Sensor
        fields = ["device", "sensor_type", "channel", "key", "name", "location"]
        help_texts = {
            "key": "Empty: device_id/type_code[/channel]. Cannot be changed later.",
            "location": "Empty: the device's location.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "key" in self.fields:
            self.fields["key"].required = False

    def clean(self):
        cleaned = super().clean()
        device, sensor_type = cleaned.get("device"), cleaned.get("sensor_type")
        if "key" in self.fields and not cleaned.get("key") and device and sensor_type:
            # Filled in here (not only in sensor_create) so the model's unique check reports a taken key.
            cleaned["key"] = Sensor.default_key(device.device_id, sensor_type.code, cleaned.get("channel", ""))
        return cleaned


@admin.register(Sensor)
class SensorAdmin(admin.ModelAdmin):
    form = SensorForm
    list_display = ["key", "device", "sensor_type", "channel", "location"]
    list_filter = ["sensor_type"]
    list_select_related = ["device", "sensor_type", "location"]
    search_fields = ["key", "name", "device__device_id"]
    autocomplete_fields = ["device", "location"]
    ordering = ["key"]

    def get_readonly_fields(self, request, obj=None) -> list[str]:
        # The key is how payloads name the sensor, and it is made of device, type and channel.
        return ["key", "device", "sensor_type", "channel", "created_at"] if obj else []

    def save_model(self, request, obj: Sensor, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        fields = {name: form.cleaned_data.get(name) for name in ("key", "name", "location")}
        sensor = sensor_create(
            device=form.cleaned_data["device"],
            sensor_type=form.cleaned_data["sensor_type"],
            channel=form.cleaned_data.get("channel", ""),
            **fields,
        )
        adopt_created(obj, sensor)
