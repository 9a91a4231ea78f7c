from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models
from django.db.models import F, Q

from apps.devices.keys import hash_ingest_key
from apps.locations.models import Location

external_id_validator = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
    "Use letters, digits and . _ : - (no spaces or slashes); it is part of sensor keys and MQTT topics.",
)


class SensorType(models.Model):
    code = models.SlugField(max_length=64, unique=True, help_text="Stable code, e.g. temperature, voltage_dc.")
    name = models.CharField(max_length=200)
    unit = models.CharField(max_length=32, blank=True, default="")
    description = models.TextField(blank=True, default="")
    plausible_min = models.FloatField(null=True, blank=True, help_text="Readings below are data-quality rejects.")
    plausible_max = models.FloatField(null=True, blank=True, help_text="Readings above are data-quality rejects.")
    aliases = models.JSONField(
        default=list,
        blank=True,
        help_text='Other names of this type in Sparkplug metric names (case-insensitive), e.g. ["Temp"].',
    )

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=Q(plausible_min__isnull=True)
                | Q(plausible_max__isnull=True)
                | Q(plausible_min__lt=F("plausible_max")),
                name="sensortype_plausible_range_ordered",
                violation_error_message="plausible_min must be below plausible_max.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} ({self.unit})" if self.unit else self.code


class DeviceQuerySet(models.QuerySet):
    def for_ingest_key(self, key: str) -> Device | None:
        return self.filter(ingest_key_hash=hash_ingest_key(key)).first()


class Device(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"
        INACTIVE = "inactive"
        MAINTENANCE = "maintenance"

    class ConnectionStatus(models.TextChoices):
        ONLINE = "online"
        OFFLINE = "offline"
        UNKNOWN = "unknown"

    device_id = models.CharField(
        max_length=128, unique=True, validators=[external_id_validator], help_text="External id, e.g. dc-meter-001."
    )
    name = models.CharField(max_length=200, blank=True, default="")
    manufacturer = models.CharField(max_length=200, blank=True, default="")
    model = models.CharField(max_length=200, blank=True, default="")
    location = models.ForeignKey(Location, null=True, blank=True, on_delete=models.PROTECT, related_name="devices")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    connection_status = models.CharField(
        max_length=20, choices=ConnectionStatus.choices, default=ConnectionStatus.UNKNOWN
    )
    last_seen = models.DateTimeField(null=True, blank=True)
    fw_version = models.CharField(max_length=64, blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    payload_adapter = models.CharField(
        max_length=64,
        blank=True,
        default="flat",
        help_text="Adapter that maps this device's flat records to sensor types.",
    )
    offline_after_s = models.PositiveIntegerField(
        null=True, blank=True, help_text="Seconds without data before the device counts as offline (empty: default)."
    )
    last_seq = models.BigIntegerField(null=True, blank=True, editable=False, help_text="Highest datagram seq seen.")
    seq_gaps = models.PositiveBigIntegerField(default=0, editable=False, help_text="Datagrams missing by seq.")
    offline_since = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When the device was last found offline (kept until it is back).",
    )
    # Whether alerting was told the device is offline; the connectivity sweep compares it with the
    # connection status, so a change made by any path (ingest, heartbeat, MQTT status) is reported once.
    offline_alerted = models.BooleanField(default=False, editable=False)
    ota_status = models.JSONField(default=dict, blank=True, editable=False, help_text="The latest OTA report.")
    ota_updated_at = models.DateTimeField(null=True, blank=True, editable=False)
    ingest_key_hash = models.CharField(max_length=64, unique=True, editable=False)
    ingest_key_prefix = models.CharField(max_length=16, editable=False, default="")
    ingest_key_rotated_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = DeviceQuerySet.as_manager()

    class Meta:
        ordering = ["device_id"]
        indexes = [models.Index(fields=["location"]), models.Index(fields=["connection_status"])]

    def __str__(self) -> str:
        return self.device_id


class Sensor(models.Model):
    """One measured quantity of one device. `key` is what payloads name it by and never changes."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="sensors")
    sensor_type = models.ForeignKey(SensorType, on_delete=models.PROTECT, related_name="sensors")
    channel = models.CharField(max_length=64, blank=True, default="", validators=[external_id_validator])
    key = models.CharField(max_length=300, unique=True, help_text="e.g. dc-meter-001/voltage_dc")
    name = models.CharField(max_length=200, blank=True, default="")
    location = models.ForeignKey(Location, null=True, blank=True, on_delete=models.PROTECT, related_name="sensors")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["key"]
        constraints = [
            models.UniqueConstraint(
                fields=["device", "sensor_type", "channel"], name="sensor_unique_type_channel_per_device"
            ),
        ]
        indexes = [models.Index(fields=["location"]), models.Index(fields=["sensor_type"])]

    def __str__(self) -> str:
        return self.key

    @staticmethod
    def default_key(device_id: str, type_code: str, channel: str = "") -> str:
        return f"{device_id}/{type_code}" + (f"/{channel}" if channel else "")
