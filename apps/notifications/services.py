"""Writes of the notifications side: fan-out of alert events, delivery with claiming and retries, digests,
reminders, and the safety nets that find work a lost message left behind."""

from __future__ import annotations

import contextlib
import logging
import random
import secrets
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery import current_app
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F, Max, Min, Q
from django.utils import timezone

from apps.alerts.models import Alert, AlertEvent, Severity
from apps.alerts.selectors import in_maintenance, maintenance_windows_covering
from apps.alerts.services import FAN_OUT_TASK, alert_record_reminders, enqueue_fan_out
from apps.core.errors import ApplicationError
from apps.deadletters.models import DeadLetter
from apps.notifications import channels as channel_senders
from apps.notifications.channels import DeliveryError, Message
from apps.notifications.matching import StormCounter, quiet_now, wants
from apps.notifications.messages import render_digest, render_event
from apps.notifications.models import Channel, Notification, Subscription

logger = logging.getLogger(__name__)

DELIVER_TASK = "notifications.deliver"
# Keys of the transaction-level advisory locks that keep two beats from doing the same round at once.
_LOCK_RENOTIFY = 7_301_001
_LOCK_DIGESTS = 7_301_002
# Notifications counted as told for storm control (held and suppressed ones reached nobody).
_DELIVERING = [
    Notification.Status.PENDING,
    Notification.Status.SENDING,
    Notification.Status.SENT,
    Notification.Status.FAILED,
]


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def enqueue_delivery(*, notification_id: int, countdown: float | None = None) -> None:
    current_app.send_task(DELIVER_TASK, kwargs={"notification_id": notification_id}, countdown=countdown)


def _deliver_on_commit(notification_ids: list[int]) -> None:
    def send() -> None:
        for notification_id in notification_ids:
            enqueue_delivery(notification_id=notification_id)

    if notification_ids:
        transaction.on_commit(send, robust=True)


def _try_lock(key: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [key])
        return cursor.fetchone()[0]


# --- Subscriptions --------------------------------------------------------------------------------------------


def _needs_secret(subscription: Subscription) -> bool:
    return any(channel == Channel.WEBHOOK for channel, _ in _channels(subscription)) and not subscription.secret


@transaction.atomic
def subscription_save(*, subscription: Subscription, secret: str | None = None) -> tuple[Subscription, str | None]:
    """Create or update a subscription. Returns it with the webhook secret if this call set one (given, or
    generated because a webhook channel has none yet): the only time the secret is shown."""
    shown = None
    if secret:
        subscription.secret = shown = secret
    elif _needs_secret(subscription):
        subscription.secret = shown = new_secret()
    subscription.full_clean(exclude=["user", "location", "sensor_type", "created_by"])
    subscription.save()
    return subscription, shown


@transaction.atomic
def subscription_rotate_secret(*, subscription: Subscription) -> str:
    """A new webhook secret; signatures made with the old one stop verifying at once."""
    subscription.secret = new_secret()
    subscription.save(update_fields=["secret", "updated_at"])
    return subscription.secret


# --- Fan-out ---------------------------------------------------------------------------------------------------


def notifications_fan_out(*, event_ids: list[int], now: datetime | None = None) -> list[int]:
    """Create the notifications of alert events that have none yet; returns the ids queued for delivery.

    Idempotent: events are locked and stamped fanned_out_at in the transaction that creates their
    notifications, and a notification is unique per (event, subscription, channel, target).

    1. Lock the events not yet fanned out.
    2. Load enabled subscriptions, maintenance windows over the events' times, what each subscription was
       told recently (storm control) and when it last heard of each alert (reminders): four queries.
    3. For every event and matching subscription, one notification per channel: pending, or held (storm
       control), or suppressed (maintenance window, quiet hours) with the reason in `detail`.
    4. Insert them, stamp the events, queue the pending ones for delivery after commit.
    """
    if not event_ids:
        return []
    now = now or timezone.now()
    with transaction.atomic():
        events = list(
            AlertEvent.objects.select_for_update(of=("self",))
            .filter(pk__in=event_ids, fanned_out_at__isnull=True)
            .select_related("alert", "alert__location")
            .order_by("pk")
        )
        if not events:
            return []
        notifications = _plan(events, now=now)
        Notification.objects.bulk_create(notifications)
        AlertEvent.objects.filter(pk__in=[event.pk for event in events]).update(fanned_out_at=now)
        due = [n.pk for n in notifications if n.status == Notification.Status.PENDING]
        _deliver_on_commit(due)
    return due


def _last_notified(alert_ids: set[int]) -> dict[tuple[int, int], datetime]:
    if not alert_ids:
        return {}
    rows = (
        Notification.objects.filter(alert_id__in=alert_ids, kind=Notification.Kind.EVENT)
        .values("alert_id", "subscription_id")
        .annotate(last=Max("created_at"))
    )
    return {(row["alert_id"], row["subscription_id"]): row["last"] for row in rows}


def _recently_told(subscriptions: list[Subscription], now: datetime) -> dict[int, list[datetime]]:
    limited = [s for s in subscriptions if s.effective_storm_limit > 0]
    if not limited:
        return {}
    since = now - timedelta(seconds=max(s.effective_storm_window_s for s in limited))
    rows = (
        Notification.objects.filter(
            subscription_id__in=[s.pk for s in limited],
            kind=Notification.Kind.EVENT,
            status__in=_DELIVERING,
            created_at__gte=since,
        )
        .values("subscription_id", "event_id")
        .annotate(first=Min("created_at"))
    )
    recent: dict[int, list[datetime]] = defaultdict(list)
    for row in rows:
        recent[row["subscription_id"]].append(row["first"])
    return recent


def _channels(subscription: Subscription) -> list[tuple[str, str]]:
    seen: dict[tuple[str, str], None] = {}
    for channel in subscription.channels or []:
        if isinstance(channel, dict) and channel.get("type") in Channel.values and channel.get("target"):
            seen.setdefault((channel["type"], str(channel["target"])), None)
    return list(seen)


def _plan(events: list[AlertEvent], *, now: datetime) -> list[Notification]:
    subscriptions = list(Subscription.objects.filter(enabled=True).select_related("location"))
    if not subscriptions:
        return []
    windows = maintenance_windows_covering(start=min(e.at for e in events), end=max(e.at for e in events))
    last_notified = _last_notified({e.alert_id for e in events if e.kind == AlertEvent.Kind.REMINDER})
    storm = StormCounter(_recently_told(subscriptions, now), now)
    # `now` decides (quiet hours, storm windows, reminders); delivery is due on the real clock.
    due_at = timezone.now()
    planned: list[Notification] = []
    for event in events:
        alert = event.alert
        location_path = alert.location.tree_path if alert.location_id and alert.location else None
        window = in_maintenance(windows, device_id=alert.device_id, location_path=location_path, at=event.at)
        for subscription in subscriptions:
            if not wants(subscription, event, alert, location_path=location_path, last_notified=last_notified, now=now):
                continue
            status, detail = Notification.Status.PENDING, ""
            if window is not None:
                status, detail = Notification.Status.SUPPRESSED, f"Maintenance window: {window.name}."
            elif quiet_now(subscription, event.severity, now):
                status, detail = Notification.Status.SUPPRESSED, "Quiet hours."
            elif storm.over_limit(subscription):
                status = Notification.Status.HELD
                detail = (
                    f"Storm control: more than {subscription.effective_storm_limit} notifications within "
                    f"{subscription.effective_storm_window_s} s; goes out in a digest."
                )
            else:
                storm.count(subscription)
            for channel, target in _channels(subscription):
                planned.append(
                    Notification(
                        kind=Notification.Kind.EVENT,
                        event=event,
                        alert=alert,
                        subscription=subscription,
                        channel=channel,
                        target=target,
                        status=status,
                        detail=detail,
                        next_attempt_at=due_at,
                    )
                )
    return planned


# --- Delivery --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryOutcome:
    status: str  # sent, failed, retry, skipped
    retry_in_s: float | None = None
    error: str = ""


def retry_delay(attempts: int, *, retry_after_s: float | None = None) -> float:
    """Exponential backoff with jitter: base·2^(attempts-1), capped, then scaled by a random 50-100 %, so a
    receiver that came back is not hit by every retry at the same instant. A Retry-After the receiver asked
    for is honoured up to the cap."""
    capped = min(settings.NOTIFY_RETRY_MAX_S, settings.NOTIFY_RETRY_BASE_S * 2 ** max(attempts - 1, 0))
    delay = capped * random.uniform(0.5, 1.0)
    if retry_after_s:
        delay = max(delay, min(retry_after_s, settings.NOTIFY_RETRY_MAX_S))
    return delay


def notification_claim(*, notification_id: int, now: datetime) -> bool:
    """Take a notification for sending: pending and due, or sending under a lease that ran out (its worker
    died) with attempts left. The conditional UPDATE's row count says who won, so a redelivered task never
    sends twice."""
    due = Q(status=Notification.Status.PENDING) & (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
    abandoned = Q(status=Notification.Status.SENDING, lease_until__lt=now, attempts__lt=settings.NOTIFY_MAX_ATTEMPTS)
    return bool(
        Notification.objects.filter(due | abandoned, pk=notification_id).update(
            status=Notification.Status.SENDING,
            lease_until=now + timedelta(seconds=settings.NOTIFY_LEASE_S),
            attempts=F("attempts") + 1,
            updated_at=now,
        )
    )


def _render(notification: Notification) -> Message:
    if notification.kind == Notification.Kind.DIGEST:
        held = list(
            notification.held.select_related(
                "event", "alert__sensor", "alert__device", "alert__location", "alert__sensor_type"
            ).order_by("created_at", "id")
        )
        return render_digest(notification, held)
    return render_event(notification)


def _send(notification: Notification, message: Message) -> None:
    if notification.channel == Channel.WEBHOOK:
        channel_senders.send_webhook(url=notification.target, secret=notification.subscription.secret, message=message)
    elif notification.channel == Channel.EMAIL:
        channel_senders.send_email(address=notification.target, message=message)
    elif notification.channel in (Channel.SMS, Channel.PUSH):
        channel_senders.backend_for(notification.channel).send(
            channel=notification.channel, target=notification.target, message=message
        )
    else:
        raise DeliveryError(f"Unknown channel {notification.channel!r}.", permanent=True)


def notification_deliver(*, notification_id: int) -> DeliveryOutcome:
    """Send one notification once: claim it, send it outside any transaction, record the outcome.

    A permanent failure (4xx, refused address) is recorded as failed at once; a transient one (5xx, timeout,
    unreachable) goes back to pending with a backoff until NOTIFY_MAX_ATTEMPTS, then fails with its last
    error kept. The outcome is written only if this worker still holds the claim (same attempt number)."""
    now = timezone.now()
    if not notification_claim(notification_id=notification_id, now=now):
        return DeliveryOutcome("skipped")
    notification = Notification.objects.select_related(
        "subscription",
        "event__user",
        "alert__sensor",
        "alert__device",
        "alert__location",
        "alert__sensor_type",
        "alert__acknowledged_by",
    ).get(pk=notification_id)
    mine = Notification.objects.filter(
        pk=notification_id, status=Notification.Status.SENDING, attempts=notification.attempts
    )
    try:
        _send(notification, _render(notification))
    except DeliveryError as error:
        message = str(error)[:5000]
        if error.permanent or notification.attempts >= settings.NOTIFY_MAX_ATTEMPTS:
            mine.update(
                status=Notification.Status.FAILED, last_error=message, lease_until=None, updated_at=timezone.now()
            )
            logger.warning("notification %s failed for good: %s", notification_id, message)
            return DeliveryOutcome("failed", error=message)
        delay = retry_delay(notification.attempts, retry_after_s=error.retry_after_s)
        mine.update(
            status=Notification.Status.PENDING,
            last_error=message,
            next_attempt_at=timezone.now() + timedelta(seconds=delay),
            lease_until=None,
            updated_at=timezone.now(),
        )
        logger.info(
            "notification %s attempt %s failed, retry in %.1f s: %s",
            notification_id,
            notification.attempts,
            delay,
            message,
        )
        return DeliveryOutcome("retry", retry_in_s=delay, error=message)
    except BaseException as error:
        # Not the channel's answer: the run was interrupted (its soft time limit, a lost database). Give the
        # claim back at once rather than leave the row `sending` until its lease runs out; the task's retry
        # takes the next attempt.
        with contextlib.suppress(DatabaseError):  # the database may be what was lost; the sweep then does it
            _release(mine, attempts=notification.attempts, error=f"{type(error).__name__}: {error}")
        raise
    sent_at = timezone.now()
    # last_error is kept: the history shows what the earlier attempts ran into.
    mine.update(status=Notification.Status.SENT, sent_at=sent_at, lease_until=None, updated_at=sent_at)
    return DeliveryOutcome("sent")


def _release(claimed, *, attempts: int, error: str) -> int:
    """A claimed notification back to pending and due now, or failed once NOTIFY_MAX_ATTEMPTS are spent."""
    now = timezone.now()
    if attempts >= settings.NOTIFY_MAX_ATTEMPTS:
        return claimed.update(
            status=Notification.Status.FAILED, last_error=error[:5000], lease_until=None, updated_at=now
        )
    return claimed.update(
        status=Notification.Status.PENDING,
        last_error=error[:5000],
        next_attempt_at=now,
        lease_until=None,
        updated_at=now,
    )


def notification_retry(*, notification: Notification) -> Notification:
    """Give a failed notification a fresh round of attempts (staff, after fixing the receiver)."""
    if notification.status != Notification.Status.FAILED:
        raise ApplicationError(
            "Only failed notifications can be retried.",
            errors={"status": [f"The notification is {notification.status}."]},
            status_code=409,
        )
    with transaction.atomic():
        updated = Notification.objects.filter(pk=notification.pk, status=Notification.Status.FAILED).update(
            status=Notification.Status.PENDING, attempts=0, next_attempt_at=timezone.now(), updated_at=timezone.now()
        )
        if updated:
            _deliver_on_commit([notification.pk])
    notification.refresh_from_db()
    return notification


# --- Digests, reminders, safety nets ----------------------------------------------------------------------------


def notifications_send_digests(*, now: datetime | None = None) -> list[int]:
    """One digest per (subscription, channel, target) for what storm control held back, once the oldest held
    item is a storm window old. A digest with nothing critical waits out the subscription's quiet hours."""
    now = now or timezone.now()
    with transaction.atomic():
        if not _try_lock(_LOCK_DIGESTS):
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
        _deliver_on_commit(ids)
    return ids


def notifications_renotify(*, now: datetime | None = None) -> list[int]:
    """Remind subscriptions of open (unacknowledged) alerts they have heard nothing of for their re-notify
    interval: one reminder event per such alert, fanned out to the subscriptions that are due."""
    now = now or timezone.now()
    with transaction.atomic():
        if not _try_lock(_LOCK_RENOTIFY):
            return []
        subscriptions = list(
            Subscription.objects.filter(enabled=True, renotify_minutes__gt=0).select_related("location")
        )
        if not subscriptions:
            return []
        alerts = list(Alert.objects.filter(state=Alert.State.OPEN).select_related("location"))
        last_notified = _last_notified({alert.pk for alert in alerts})
        reminder = AlertEvent(kind=AlertEvent.Kind.REMINDER, at=now)
        due_alert_ids = []
        for alert in alerts:
            location_path = alert.location.tree_path if alert.location_id and alert.location else None
            reminder.alert, reminder.severity = alert, alert.severity
            if any(
                wants(s, reminder, alert, location_path=location_path, last_notified=last_notified, now=now)
                for s in subscriptions
            ):
                due_alert_ids.append(alert.pk)
        events = alert_record_reminders(alert_ids=due_alert_ids, at=now)
        return notifications_fan_out(event_ids=[event.pk for event in events], now=now)


def notifications_requeue_stalled(*, now: datetime | None = None, limit: int = 1000) -> dict[str, int]:
    """Beat safety net for lost messages: queue the fan-out of events left without notifications, and the
    delivery of notifications overdue or claimed under a lease that ran out. Work whose task failed for good
    (a dead letter, for staff to replay) is left alone rather than failing again every run."""
    now = now or timezone.now()
    grace = timedelta(seconds=settings.NOTIFY_REQUEUE_AFTER_S)
    stalled = list(
        AlertEvent.objects.filter(fanned_out_at__isnull=True, created_at__lt=now - grace)
        .order_by("created_at")
        .values_list("pk", "created_at")[:limit]
    )
    dead_events: set[int] = set()
    if stalled:
        for kwargs in DeadLetter.objects.filter(task_name=FAN_OUT_TASK, created_at__gte=stalled[0][1]).values_list(
            "kwargs", flat=True
        ):
            dead_events.update((kwargs or {}).get("event_ids") or [])
    events = [event_id for event_id, _ in stalled if event_id not in dead_events]
    for event_id in events:
        enqueue_fan_out(event_ids=[event_id])
    # Claims whose worker never came back (killed, or stopped at its hard time limit): pending again, or failed
    # once their attempts are spent, so no row stays `sending`.
    abandoned = Notification.objects.filter(status=Notification.Status.SENDING, lease_until__lt=now)
    gone = "Abandoned while sending: its worker stopped before recording an outcome."
    abandoned.filter(attempts__gte=settings.NOTIFY_MAX_ATTEMPTS).update(
        status=Notification.Status.FAILED, last_error=gone, lease_until=None, updated_at=now
    )
    released = list(abandoned.values_list("pk", flat=True)[:limit])
    abandoned.filter(pk__in=released).update(
        status=Notification.Status.PENDING,
        last_error=gone,
        next_attempt_at=timezone.now(),
        lease_until=None,
        updated_at=now,
    )
    overdue = released + list(
        Notification.objects.filter(status=Notification.Status.PENDING, next_attempt_at__lt=now - grace)
        .exclude(pk__in=released)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    dead_deliveries = set(
        DeadLetter.objects.filter(task_name=DELIVER_TASK, kwargs__notification_id__in=overdue).values_list(
            "kwargs__notification_id", flat=True
        )
    )
    deliveries = [notification_id for notification_id in overdue if notification_id not in dead_deliveries]
    for notification_id in deliveries:
        enqueue_delivery(notification_id=notification_id)
    return {"events": len(events), "deliveries": len(deliveries)}
