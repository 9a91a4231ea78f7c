"""What people do to alerts (acknowledge, resolve by hand), and the reminders of unacknowledged ones. The rules
are the Alert model's methods; these functions lock, save and queue the fan-out. Lock order: see
apps/alerts/services/__init__.py."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from apps.alerts.models import Alert, AlertEvent, ThresholdState
from apps.alerts.services.events import events_save
from apps.core.errors import ApplicationError


def alert_acknowledge(*, alert_id: int, user, comment: str = "") -> Alert:
    """Someone has seen the alert and is on it: records who, when and why, as an event. A 409 when it is
    acknowledged or resolved already."""
    with transaction.atomic():
        alert = Alert.objects.select_for_update().get(pk=alert_id)
        event = alert.acknowledge(at=timezone.now(), user=user, comment=comment)
        alert.save(update_fields=Alert.ACKNOWLEDGE_FIELDS)
        events_save([event])
    return alert


def alert_resolve(*, alert_id: int, user, reason: str) -> Alert:
    """Close an alert by hand, with a reason. Its (sensor, threshold) state starts afresh: if the value is
    still out of its band, a new alert opens once the breach has lasted its minimum duration again."""
    reason = (reason or "").strip()
    if not reason:
        raise ApplicationError("Say why the alert is resolved.", errors={"reason": ["This field may not be blank."]})
    with transaction.atomic():
        pair = Alert.objects.filter(pk=alert_id).values("sensor_id", "threshold_id").first()
        if pair is None:
            raise ApplicationError("Not found.", status_code=404)
        state = None
        if pair["sensor_id"] is not None and pair["threshold_id"] is not None:
            # The state row before the alert row: the lock order of evaluation.
            state = ThresholdState.objects.select_for_update().filter(**pair).first()
        alert = Alert.objects.select_for_update().get(pk=alert_id)
        event = alert.resolve(Alert.Resolution.MANUAL, at=timezone.now(), reason=reason, user=user)
        alert.save(update_fields=Alert.RESOLVE_FIELDS)
        if state is not None:
            state.start_afresh()
            state.save(update_fields=ThresholdState.AFRESH_FIELDS)
        events_save([event])
    return alert


def alert_record_reminders(*, alert_ids: list[int], at: datetime) -> list[AlertEvent]:
    """A reminder event for each of these alerts that is still open (unacknowledged), for the re-notify beat
    to fan out."""
    if not alert_ids:
        return []
    alerts = Alert.objects.filter(pk__in=alert_ids, state=Alert.State.OPEN).only("id", "severity", "value")
    return AlertEvent.objects.bulk_create([alert.event(AlertEvent.Kind.REMINDER, at=at) for alert in alerts])
