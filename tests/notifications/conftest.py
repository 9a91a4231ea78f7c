from tests.notifications.fixtures import receiver, worker_outbox  # noqa: F401 (fixtures)
