from django.apps import AppConfig


class OperationsConfig(AppConfig):
    name = "apps.operations"
    label = "operations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from celery import signals

        from apps.core import redis_outage
        from apps.operations import request_id, task_metrics

        redis_outage.fell_back.connect(count_redis_fallback, dispatch_uid="ops-redis-fallbacks")

        signals.before_task_publish.connect(
            request_id.add_request_id_header, weak=False, dispatch_uid="ops-rid-publish"
        )
        signals.task_prerun.connect(request_id.enter_task, weak=False, dispatch_uid="ops-rid-enter")
        signals.task_postrun.connect(request_id.leave_task, weak=False, dispatch_uid="ops-rid-leave")
        signals.task_prerun.connect(task_metrics.task_started, weak=False, dispatch_uid="ops-task-started")
        signals.task_postrun.connect(task_metrics.task_finished, weak=False, dispatch_uid="ops-task-finished")
        signals.worker_ready.connect(task_metrics.count_from_zero, weak=False, dispatch_uid="ops-task-zeros")
        signals.worker_ready.connect(task_metrics.serve_worker_metrics, weak=False, dispatch_uid="ops-worker-metrics")
        signals.beat_init.connect(task_metrics.serve_worker_metrics, weak=False, dispatch_uid="ops-beat-metrics")


def count_redis_fallback(operation: str, **_signal_kwargs) -> None:
    from apps.operations import metrics

    metrics.REDIS_FALLBACKS.labels(operation).inc()
