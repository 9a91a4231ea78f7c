from tests.notifications.fixtures import receiver  # noqa: F401 (fixture)
