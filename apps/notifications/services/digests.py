"""Digests: what storm control held back, sent as one notification per (subscription, channel, target) once
the oldest held item is a storm window old."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from apps.alerts.models import Severity
from apps.notifications.matching import quiet_now
from apps.notifications.models import Notification
from apps.notifications.services import locks, queueing


def notifications_send_digests(*, now: datetime | None = None) -> list[int]:
    """One digest per (subscription, channel, target) for what storm control held back, once the oldest held
    item is a storm window old. A digest with nothing critical waits out the subscription's quiet hours."""
    now = now or timezone.now()
    with transaction.atomic():
        if not locks.try_lock(locks.DIGESTS):
            return []
        held = list(
            Notification.objects.select_for_update(of=("self",))
            .filter(status=Notification.Status.HELD, digest__isnull=True)
            .select_related("subscription", "event")
            .order_by("subscription_id", "created_at", "id")
        )
        groups: dict[tuple[int, str, str], list[Notification]] = defaultdict(list)
        for item in held:
            groups[(item.subscription_id, item.channel, item.target)].append(item)
        digests: list[tuple[Notification, list[Notification]]] = []
        for (_, channel, target), items in groups.items():
            subscription = items[0].subscription
            if now - items[0].created_at < timedelta(seconds=subscription.effective_storm_window_s):
                continue
            worst = Severity.CRITICAL if any(i.event.severity == Severity.CRITICAL for i in items) else Severity.WARNING
            if quiet_now(subscription, worst, now):
                continue
            digest = Notification(
                kind=Notification.Kind.DIGEST,
                subscription=subscription,
                channel=channel,
                target=target,
                status=Notification.Status.PENDING,
                next_attempt_at=timezone.now(),
                detail=f"Digest of {len(items)} notification(s) held back by storm control.",
            )
            digests.append((digest, items))
        if not digests:
            return []
        Notification.objects.bulk_create([digest for digest, _ in digests])
        for digest, items in digests:
            Notification.objects.filter(pk__in=[i.pk for i in items]).update(digest=digest, updated_at=now)
        ids = [digest.pk for digest, _ in digests]
        queueing.deliver_on_commit(ids)
    return ids
