"""Readings of deleted sensors, which have no foreign key to cascade them (migration 0008), and the lock that
keeps a batch from storing readings of a sensor deleted under it.

Every store transaction takes STORE_LOCK shared as its first statement, before it locks or writes any row;
deleting sensors takes it exclusively. Both orders matter:
- the store step holds nothing while it waits for the lock, so a deletion holding it never waits for a batch
  that waits for the deletion (a device's deletion sets its batches' device to NULL);
- a deletion through the ORM takes the lock in its first pre_delete signal, before Django deletes or updates
  any row, so a batch holding the lock never waits for a row the deletion holds (a sensor's latest value,
  which Django deletes before the sensor) while the deletion waits for the batch.
The bulk of the sensors' history is deleted just before the lock is taken, so ingest waits for the lock only
as long as the rest of the deletion takes. Plain SQL deletions of sensors are covered by migration 0008's
trigger, which takes the lock at the end of the statement.
"""

from __future__ import annotations

from django.db import connections
from django.db.models import QuerySet

from apps.devices.models import Device, Sensor

# pg_advisory_xact_lock key (migration 0008's trigger names it too).
STORE_LOCK = 5_240_012

_HOLDS_EXCLUSIVE = """
SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()
                  AND classid = 0 AND objid::bigint = %s AND objsubid = 1 AND mode = 'ExclusiveLock'
                  AND granted)
"""

# "= ANY (array)" is an index condition on every partition's key.
_DELETE_READINGS = "DELETE FROM ingest_reading WHERE sensor_id = ANY (%s::bigint[])"


def lock_for_storing(cursor) -> None:
    """Take the store lock shared, for the rest of the transaction: the store step's first statement."""
    cursor.execute("SELECT pg_advisory_xact_lock_shared(%s)", [STORE_LOCK])


def sensor_pre_delete(sender, instance: Sensor, using: str, origin=None, **_kwargs) -> None:
    """pre_delete of Sensor: the first in a deletion deletes the readings of every sensor it takes, then takes
    the store lock exclusively; the others find it held and delete what is left of their own."""
    with connections[using].cursor() as cursor:
        cursor.execute(_HOLDS_EXCLUSIVE, [STORE_LOCK])
        held = cursor.fetchone()[0]
        sensor_ids = [instance.pk] if held else sorted({instance.pk, *_sensors_of(origin, using)})
        cursor.execute(_DELETE_READINGS, [sensor_ids])
        if not held:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [STORE_LOCK])


def _sensors_of(origin, using: str) -> list[int]:
    """The sensors a deletion started from `origin` (what .delete() was called on) takes with it."""
    sensors = Sensor.objects.using(using)
    if isinstance(origin, Sensor):
        return [origin.pk]
    if isinstance(origin, Device):
        return list(sensors.filter(device_id=origin.pk).values_list("pk", flat=True))
    if isinstance(origin, QuerySet) and origin.model is Sensor:
        return list(origin.values_list("pk", flat=True))
    if isinstance(origin, QuerySet) and origin.model is Device:
        return list(sensors.filter(device__in=origin.values("pk")).values_list("pk", flat=True))
    return []
