"""Writes of the notifications side, one module per concern. The path of an alert event:

- `fan_out.py`: `notifications_fan_out`, an event's notifications planned (who hears of it, and whether now:
  scope, severity, maintenance windows, quiet hours, storm control; the rules themselves are the
  database-free `apps/notifications/matching.py`) and queued;
- `delivery.py`: `notification_deliver`, one notification claimed, sent over its channel and its outcome
  recorded, with retries and backoff; `notification_retry` for staff;
- `digests.py`: the beat that sends what storm control held back as one digest;
- `reminders.py`: the beat that reminds subscriptions of unacknowledged alerts;
- `sweeps.py`: the beat that queues again what a lost message left behind;

and around it: `subscriptions.py` (saving subscriptions, webhook secrets), `maintenance.py` (maintenance
windows and their rules), `queueing.py` (delivery tasks, queued after commit), `locks.py` (one advisory lock
per beat round).

Each write is safe to repeat: events are stamped in the transaction that creates their notifications, a
notification is unique per (event, subscription, channel, target), and a delivery is claimed by one
conditional UPDATE before anything is sent.
"""

from apps.notifications.services.delivery import (
    DeliveryOutcome,
    notification_claim,
    notification_deliver,
    notification_retry,
    retry_delay,
)
from apps.notifications.services.digests import notifications_send_digests
from apps.notifications.services.fan_out import notifications_fan_out
from apps.notifications.services.maintenance import maintenance_window_errors, maintenance_window_save
from apps.notifications.services.queueing import enqueue_delivery
from apps.notifications.services.reminders import notifications_renotify
from apps.notifications.services.subscriptions import new_secret, subscription_rotate_secret, subscription_save
from apps.notifications.services.sweeps import notifications_requeue_stalled

__all__ = [
    "DeliveryOutcome",
    "enqueue_delivery",
    "maintenance_window_errors",
    "maintenance_window_save",
    "new_secret",
    "notification_claim",
    "notification_deliver",
    "notification_retry",
    "notifications_fan_out",
    "notifications_renotify",
    "notifications_requeue_stalled",
    "notifications_send_digests",
    "retry_delay",
    "subscription_rotate_secret",
    "subscription_save",
]
