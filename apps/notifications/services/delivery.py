"""Delivery: one notification sent once, by claiming it, sending outside any transaction and recording the
outcome while the claim holds; transient failures retried with backoff and jitter, permanent ones failed."""

from __future__ import annotations

import contextlib
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.core.errors import ApplicationError
from apps.notifications import channels as channel_senders
from apps.notifications.channels import DeliveryError, Message
from apps.notifications.messages import render_digest, render_event
from apps.notifications.models import Channel, Notification
from apps.notifications.services import queueing

logger = logging.getLogger(__name__)


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
            queueing.deliver_on_commit([notification.pk])
    notification.refresh_from_db()
    return notification
