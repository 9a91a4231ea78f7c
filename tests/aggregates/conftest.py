import pytest

from apps.ingest.resolution import clear_cache


@pytest.fixture(autouse=True)
def fresh_sensor_cache():
    """Each test builds its own sensors: the ingest worker's per-process cache must not remember another's."""
    clear_cache()
    yield
    clear_cache()
