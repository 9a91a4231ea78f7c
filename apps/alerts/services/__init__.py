"""Writes of alerting, one module per concern:

- `evaluation.py`: `batch_evaluate`, a stored batch turned into alert changes in one transaction, and the
  beat that queues again batches whose evaluation message was lost. Each kind of alert evaluated from
  readings is a pass over the batch's sensors: thresholds (`thresholds.py`) and anomalies (`anomalies.py`).
- `thresholds.py`: the threshold pass: the (sensor, threshold) state rows locked and read, walked through the
  readings by the database-free state machine (`apps/alerts/evaluation.py`), and written back set-wise.
- `lifecycle.py`: what people do: acknowledge and resolve by hand; and the reminder events of the re-notify beat.
- `offline.py`: device-offline alerts, opened and resolved by the connectivity sweep.
- `events.py`: queueing the fan-out of recorded events to the notifications side, after commit.

The rules of a single alert (open, escalate, acknowledge, resolve, and the event each records) are methods of
`Alert` in `apps/alerts/models.py`; these modules load, lock and save.

Lock order, the same everywhere so that two writers never wait on each other in a circle: ingest batch →
threshold states (sensor, threshold order) → anomaly states (sensor order) → alerts (id order). Acknowledging touches only the alert row; a
device-offline alert is reached through its device's row (device → alert), and no threshold state is
involved.
"""

from apps.alerts.services.evaluation import EvaluationResult, batch_evaluate, batches_requeue_unevaluated
from apps.alerts.services.events import enqueue_fan_out
from apps.alerts.services.lifecycle import alert_acknowledge, alert_record_reminders, alert_resolve
from apps.alerts.services.offline import alert_device_offline, alert_device_online

__all__ = [
    "EvaluationResult",
    "alert_acknowledge",
    "alert_device_offline",
    "alert_device_online",
    "alert_record_reminders",
    "alert_resolve",
    "batch_evaluate",
    "batches_requeue_unevaluated",
    "enqueue_fan_out",
]
