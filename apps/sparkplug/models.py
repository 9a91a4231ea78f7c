from __future__ import annotations

from django.db import models

from apps.devices.models import Device


class Endpoint(models.Model):
    """A Sparkplug edge node (device_name "") or a device behind one, as its births described it. Kept in the
    database so that a restarted bridge still knows the aliases and the sequence without asking for a rebirth."""

    group = models.CharField(max_length=100)
    edge_node = models.CharField(max_length=100)
    device_name = models.CharField(max_length=100, blank=True, default="")
    # Empty while the endpoint waits for an admin to accept it (SPARKPLUG_AUTO_PROVISION off).
    device = models.OneToOneField(
        Device, null=True, blank=True, on_delete=models.SET_NULL, related_name="sparkplug_endpoint"
    )
    bd_seq = models.BigIntegerField(null=True, blank=True, help_text="bdSeq of the node's current session.")
    last_seq = models.IntegerField(null=True, blank=True, help_text="seq of the node's last message (0-255).")
    # {alias: metric name}, and {metric name: {"datatype": n, "writable": bool}} from the latest birth.
    aliases = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    unmapped_metrics = models.JSONField(
        default=list, blank=True, help_text="Metrics no sensor type matches: their values are not stored."
    )
    born_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["group", "edge_node", "device_name"]
        constraints = [
            models.UniqueConstraint(fields=["group", "edge_node", "device_name"], name="sparkplug_endpoint_unique")
        ]

    def __str__(self) -> str:
        return self.external_id

    @property
    def external_id(self) -> str:
        """The backend's device id for it: slashes are not allowed in device ids, so colons join the parts."""
        return ":".join(part for part in (self.group, self.edge_node, self.device_name) if part)

    @property
    def waiting(self) -> bool:
        return self.device_id is None
