"""Tasks of the aggregates side; see workers/celery.py for how modules are registered."""

from django.conf import settings

from apps.aggregates.exports import export_job_mark_failed, export_job_run, exports_sweep
from apps.aggregates.retention import retention_purge
from apps.aggregates.services import rollups_refresh
from apps.core.tasks import PURGE_RETENTION_TASK, REFRESH_ROLLUPS_TASK, RUN_EXPORT_TASK, SWEEP_EXPORTS_TASK
from workers.base import TelemetryTask
from workers.celery import app


@app.task(base=TelemetryTask, name=REFRESH_ROLLUPS_TASK)
def refresh_rollups() -> dict:
    """Beat, every minute: re-aggregate the buckets that batches stored since the last run touched."""
    return rollups_refresh().as_dict()


@app.task(base=TelemetryTask, name=PURGE_RETENTION_TASK, bind=True)
def purge_retention(self) -> dict:
    """Beat, daily: delete readings and rollups past their retention; queues itself again while more is left."""
    outcome = retention_purge()
    if outcome.more:
        self.apply_async()
    return outcome.as_dict()


class ExportTask(TelemetryTask):
    # An export may write millions of rows: longer limits than the default (its lease, not the broker's
    # visibility timeout, keeps a second delivery from writing it twice).
    soft_time_limit = settings.EXPORTS_TASK_TIME_LIMIT_S
    time_limit = settings.EXPORTS_TASK_TIME_LIMIT_S + 30

    def dead_lettered(self, exc, args, kwargs) -> None:
        export_id = kwargs.get("export_id") or (args[0] if args else None)
        if export_id:
            export_job_mark_failed(export_id=str(export_id), error=f"{type(exc).__name__}: {exc}")


@app.task(base=ExportTask, name=RUN_EXPORT_TASK)
def run_export(export_id: str) -> dict | None:
    """Write one export job's file; a job that is done, gone or being written is a no-op."""
    job = export_job_run(export_id=export_id)
    if job is None:
        return None
    return {"status": job.status, "rows": job.rows}


@app.task(base=TelemetryTask, name=SWEEP_EXPORTS_TASK)
def sweep_exports() -> dict:
    """Beat: delete expired export files; queue again jobs that lost their message or their worker."""
    return exports_sweep()
