"""The Celery settings the system depends on: a typo in a CELERY_* name is silently ignored, so check the
configuration the app actually ended up with."""

from django.conf import settings

from workers.celery import app


def test_broker_and_results_use_the_test_redis_database():
    assert app.conf.broker_url == settings.REDIS_URL
    assert app.conf.result_backend == settings.REDIS_URL
    # Never the development database (tests/settings.py picks 15 unless REDIS_URL is set).
    assert not settings.REDIS_URL.rstrip("/").endswith(("6379", "/0"))


def test_tasks_are_routed_to_their_queues():
    routes = {
        name: app.amqp.router.route({}, name)["queue"].name
        for name in (
            "ingest.process_batch",
            "alerts.evaluate",
            "housekeeping.ping",
            "aggregates.refresh_rollups",
            "aggregates.run_export",
            "anything.else",
        )
    }

    assert routes == {
        "ingest.process_batch": "ingest",
        "alerts.evaluate": "alerts",
        "housekeeping.ping": "default",
        "aggregates.refresh_rollups": "default",
        "aggregates.run_export": "exports",
        "anything.else": "default",
    }
    assert set(app.amqp.queues) == {"ingest", "alerts", "default", "exports"}


def test_late_acknowledgement_and_one_message_per_process():
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.task_serializer == "json" and app.conf.accept_content == ["json"]


def test_time_limits_and_visibility_timeout_fit_together():
    assert app.conf.task_soft_time_limit < app.conf.task_time_limit < settings.CELERY_VISIBILITY_TIMEOUT_S
    assert app.conf.broker_transport_options["visibility_timeout"] == settings.CELERY_VISIBILITY_TIMEOUT_S


def test_task_modules_are_registered_explicitly():
    app.loader.import_default_modules()

    assert "housekeeping.ping" in app.tasks


def test_a_publish_gives_up_quickly_when_redis_is_down():
    # Each send_task runs inside a request (after commit): a connect gives up after REDIS_TIMEOUT_S, the
    # publish is retried twice within half a second, and the result backend's reconnect (20 tries a second
    # apart by default) twice within half a second.
    assert app.conf.broker_connection_timeout == settings.REDIS_TIMEOUT_S
    assert app.conf.broker_transport_options["socket_connect_timeout"] == settings.REDIS_TIMEOUT_S
    assert app.conf.redis_socket_connect_timeout == settings.REDIS_TIMEOUT_S
    publish = app.conf.task_publish_retry_policy
    assert publish["max_retries"] * publish["interval_max"] <= 0.5
    reconnect = app.backend.retry_policy
    assert reconnect["max_retries"] * reconnect["interval_max"] <= 0.5
