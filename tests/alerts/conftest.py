import pytest
from django.core.cache import cache

from apps.anomaly.selectors import ANY_RULE_CACHE_KEY
from tests.notifications.fixtures import receiver, worker_outbox  # noqa: F401 (fixtures)


@pytest.fixture(autouse=True)
def _no_anomaly_rule_cached():
    """Each test starts without anomaly rules, and the cache must say so: rules of an earlier test were rolled
    back without a signal, and a cache miss would add a query to the first evaluation. A test that creates a
    rule clears the answer through the rule's save signal."""
    cache.set(ANY_RULE_CACHE_KEY, False, 60)
