"""Device connectivity, in one place: whether a device is online, when it was last seen, and its datagram
sequence. Every path that learns something about it calls in here: the ingest pipeline for the devices a
batch heard from (devices_seen, one statement for any number of devices), heartbeats over HTTP or MQTT, a
device's own offline status or MQTT last will, and the periodic sweep that finds silent devices and tells
alerting about every change.

Device rows are always locked in id order, by every function here, so a batch, a status message and the
sweep touching the same devices cannot deadlock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.core.sql import binary_cursor
from apps.devices.models import Device


def devices_seen(*, device_pks: list[int], seqs_by_device: dict[int, list[int]], at: datetime) -> int:
    """Devices heard from by data received at `at`: online and last seen then, and each device's seq
    high-water mark and gap count advanced by its fresh seqs (seqs_by_device, possibly empty). Returns the
    gaps found. A constant number of statements whatever the number of devices."""
    device_pks = sorted(device_pks)
    if not device_pks:
        return 0
    with binary_cursor() as cursor:
        if seqs_by_device:
            cursor.execute(
                "SELECT id, last_seq FROM devices_device WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
                [sorted(seqs_by_device)],
            )
            last_seq_by_device = dict(cursor.fetchall())
        else:
            last_seq_by_device = {}
        gaps_total = 0
        last_seqs: list[int | None] = []
        gaps: list[int] = []
        for device_pk in device_pks:
            if device_pk in seqs_by_device:
                last, gap = _advance_sequence(last_seq_by_device.get(device_pk), sorted(seqs_by_device[device_pk]))
            else:
                last, gap = None, 0
            last_seqs.append(last)
            gaps.append(gap)
            gaps_total += gap
        # Rows are locked in id order (no deadlock between concurrent batches), and a device already marked
        # online and seen within LAST_SEEN_RESOLUTION_S is left alone: a busy device would otherwise be
        # rewritten by every batch, which costs more than storing the readings themselves.
        cursor.execute(
            """
            WITH u AS (
                SELECT * FROM unnest(%(ids)s::bigint[], %(last)s::bigint[], %(gaps)s::bigint[]) AS u(id, last_seq, gaps)
            ),
            due AS (
                SELECT d.id FROM devices_device d JOIN u ON u.id = d.id
                 WHERE u.last_seq IS NOT NULL
                    OR (d.connection_status <> 'online' AND (d.offline_since IS NULL OR d.offline_since < %(at)s))
                    OR d.last_seen IS NULL
                    OR d.last_seen < %(at)s - %(resolution)s * interval '1 second'
                 ORDER BY d.id
                   FOR UPDATE OF d
            )
            UPDATE devices_device d
               SET last_seen = GREATEST(COALESCE(d.last_seen, %(at)s), %(at)s),
                   -- A last will (offline) that came after this batch arrived stands: its readings are
                   -- older news than the device's own word.
                   connection_status = CASE WHEN d.offline_since >= %(at)s THEN d.connection_status ELSE 'online' END,
                   last_seq = COALESCE(u.last_seq, d.last_seq),
                   seq_gaps = d.seq_gaps + u.gaps
              FROM u, due
             WHERE d.id = u.id AND d.id = due.id
            """,
            {
                "ids": device_pks,
                "last": last_seqs,
                "gaps": gaps,
                "at": at,
                "resolution": LAST_SEEN_RESOLUTION_S,
            },
        )
    return gaps_total


# How stale a device's last_seen may be before a batch rewrites it (see devices_seen).
LAST_SEEN_RESOLUTION_S = 5
# A seq this far below the high-water mark means the device restarted its counter, not a late datagram.
SEQ_RESTART_MARGIN = 1000
# A seq this far above it is a new counter too (or garbage), not that many lost datagrams: a device sending
# every second would have to be silent for eleven days. Bounding the jump bounds the gap counts.
SEQ_JUMP_LIMIT = 1_000_000


def _advance_sequence(last: int | None, seqs: list[int]) -> tuple[int | None, int]:
    """(new high-water mark, gaps found) after the fresh seqs of one device, in ascending order.

    A jump past last + 1 counts the skipped numbers as gaps; a seq at or below the mark is a late datagram
    (it neither moves the mark nor adds gaps), unless it is far below, which is a counter restart, as is a jump
    of more than SEQ_JUMP_LIMIT."""
    gaps = 0
    for seq in seqs:
        if last is None or last - seq > SEQ_RESTART_MARGIN or seq - last > SEQ_JUMP_LIMIT:
            last = seq
        elif seq > last:
            gaps += seq - last - 1
            last = seq
    return last, gaps


def device_record_heartbeat(
    *, device: Device, fw_version: str | None = None, seen_at: datetime | None = None
) -> Device:
    """A sign of life: the device is online, seen now, and reports its firmware when it says it."""
    device.last_seen = seen_at or timezone.now()
    device.connection_status = Device.ConnectionStatus.ONLINE
    update_fields = ["last_seen", "connection_status", "updated_at"]
    if fw_version:
        device.fw_version = fw_version
        update_fields.append("fw_version")
    device.save(update_fields=update_fields)
    return device


def device_mark_offline(*, device: Device, at: datetime) -> bool:
    """The device said it is going away (its status message, or its MQTT last will): offline at once.
    False when it already was offline (the first report's time is kept)."""
    changed = (
        Device.objects.filter(pk=device.pk)
        .exclude(connection_status=Device.ConnectionStatus.OFFLINE)
        .update(connection_status=Device.ConnectionStatus.OFFLINE, offline_since=at, updated_at=timezone.now())
    )
    return bool(changed)


# Rows are locked in id order (see the module docstring).
_STALE_ONLINE = """
SELECT id FROM devices_device
 WHERE connection_status = 'online' AND offline_since IS NOT NULL AND last_seen <= offline_since
 ORDER BY id FOR UPDATE
"""
_SILENT = """
SELECT id FROM devices_device
 WHERE connection_status IN ('online', 'unknown') AND last_seen IS NOT NULL
   AND last_seen < %s - COALESCE(offline_after_s, %s) * interval '1 second'
 ORDER BY id FOR UPDATE
"""


def _ids(sql: str, params: list) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


@transaction.atomic
def devices_connectivity_sweep(
    *,
    default_offline_after_s: int,
    report_offline: Callable[[Device], None],
    report_online: Callable[[Device], None],
    now: datetime | None = None,
) -> tuple[int, int]:
    """Mark silent devices offline and tell alerting about every change of connectivity, whatever made it.
    Returns (devices reported offline, devices reported back).

    1. A device marked online by data older than the moment it went offline (a batch in flight when its
       last will arrived) is offline again.
    2. Devices silent for longer than their offline_after_s (or the default) go offline, since last seen.
    3. Active devices offline and not yet reported are reported (report_offline) and flagged.
    4. Devices online again with data newer than their going offline: reported back (report_online) if
       they had been reported offline, and their offline_since is cleared.
    The reports run in this transaction: if one fails nothing is flagged, and the next sweep tries again.
    """
    now = now or timezone.now()
    stale = _ids(_STALE_ONLINE, [])
    if stale:
        Device.objects.filter(pk__in=stale).update(connection_status=Device.ConnectionStatus.OFFLINE)
    silent = _ids(_SILENT, [now, default_offline_after_s])
    if silent:
        Device.objects.filter(pk__in=silent).update(
            connection_status=Device.ConnectionStatus.OFFLINE, offline_since=F("last_seen"), updated_at=now
        )

    went_offline = list(
        Device.objects.select_for_update()
        .filter(connection_status=Device.ConnectionStatus.OFFLINE, offline_alerted=False, status=Device.Status.ACTIVE)
        .order_by("pk")
    )
    for device in went_offline:
        report_offline(device)
    if went_offline:
        Device.objects.filter(pk__in=[d.pk for d in went_offline]).update(offline_alerted=True)

    back = list(
        Device.objects.select_for_update()
        .filter(connection_status=Device.ConnectionStatus.ONLINE)
        .filter(Q(offline_alerted=True) | Q(offline_since__isnull=False))
        .order_by("pk")
    )
    reported_back = 0
    for device in back:
        if device.offline_alerted:
            report_online(device)
            reported_back += 1
    if back:
        Device.objects.filter(pk__in=[d.pk for d in back]).update(offline_alerted=False, offline_since=None)
    return len(went_offline), reported_back
