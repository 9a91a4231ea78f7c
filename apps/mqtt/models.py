from django.contrib.postgres.indexes import BrinIndex
from django.db import models

from apps.devices.models import Device


class MessageNonce(models.Model):
    """A nonce a device used in a signed message, kept while a message with it could still pass as fresh
    (MQTT_REPLAY_WINDOW_S either side of its ts): the same nonce again is a replay, or a redelivery."""

    pk = models.CompositePrimaryKey("device_id", "nonce")
    device = models.ForeignKey(Device, on_delete=models.CASCADE, db_index=False, related_name="+")
    nonce = models.CharField(max_length=64)
    ts = models.DateTimeField(help_text="The message's own ts.")

    class Meta:
        # Rows arrive in about ts order and are purged by ts range, which a BRIN index serves at little cost.
        indexes = [BrinIndex(fields=["ts"], name="mqtt_nonce_ts_brin", pages_per_range=32)]

    def __str__(self) -> str:
        return f"{self.device_id}:{self.nonce}"


class AnnouncedWill(models.Model):
    """The nonce of the last will a device registered with its current connection, which it announced in its
    status "online". The broker publishes a will long after it was made, so its ts is old by then: this one
    will is accepted however old, once, and a will of an earlier connection, sent again, is not."""

    device = models.OneToOneField(Device, on_delete=models.CASCADE, primary_key=True, related_name="+")
    nonce = models.CharField(max_length=64)
    announced_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.device_id}:{self.nonce}"
