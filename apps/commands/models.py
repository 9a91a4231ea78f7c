from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

from apps.devices.models import Device

command_name_validator = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$", "Use letters, digits and . _ : - (e.g. set_interval, reboot)."
)


class Command(models.Model):
    """One server-to-device command and how far it got: pending (waiting for its device), sent (published to
    the device's command topic), accepted, then completed; or rejected; or expired when its time to live ran
    out before the device answered."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        ACCEPTED = "accepted"
        REJECTED = "rejected"
        COMPLETED = "completed"
        EXPIRED = "expired"

    # Statuses a device may answer with, and the order a command moves through: an ack never moves it back.
    ACK_STATUSES = (Status.ACCEPTED, Status.REJECTED, Status.COMPLETED)
    FINAL_STATUSES = (Status.REJECTED, Status.COMPLETED, Status.EXPIRED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False, help_text="The cmd_id.")
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="commands")
    cmd = models.CharField(max_length=64, validators=[command_name_validator])
    params = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    ttl_s = models.PositiveIntegerField(help_text="Seconds the command waits for its device before it expires.")
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    sent_at = models.DateTimeField(null=True, blank=True, help_text="Last time it was published to the device.")
    send_count = models.PositiveIntegerField(default=0)
    acked_at = models.DateTimeField(null=True, blank=True, help_text="Time of the device's latest answer.")
    ack_source = models.CharField(max_length=8, blank=True, default="", help_text="mqtt or http.")
    # Who sent the latest answer: the device itself (its key or its MQTT identity) or a person or integration
    # through the API. Kept so that an acknowledgement made on a device's behalf is never mistaken for its own.
    acked_by_device = models.ForeignKey(
        Device,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The device that answered.",
    )
    acked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The user who answered for the device.",
    )
    ack_detail = models.TextField(blank=True, default="")
    result = models.JSONField(null=True, blank=True, help_text="What the device reported back with its answer.")
    finished_at = models.DateTimeField(null=True, blank=True, help_text="When it was completed, rejected or expired.")

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["device", "-created_at"]),
            models.Index(fields=["status", "expires_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.cmd} {self.pk} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL_STATUSES
