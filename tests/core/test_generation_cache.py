"""The per-process configuration cache against the real Redis: what one process bumps, every other drops."""

import uuid

import pytest

from apps.core import redis_outage
from apps.core.generation_cache import GenerationCache


@pytest.fixture
def key():
    return f"test:generation:{uuid.uuid4().hex}"


def test_what_is_stored_is_found_until_the_generation_moves(key):
    here, elsewhere = GenerationCache(key, ttl_s=60), GenerationCache(key, ttl_s=60)
    assert here.lookup(["a", "b"]) == ({}, ["a", "b"])
    here.store({"a": 1, "b": None})

    assert here.lookup(["a", "b", "c"]) == ({"a": 1, "b": None}, ["c"])

    elsewhere.bump()  # another process saved what the cache is derived from
    assert here.lookup(["a", "b"]) == ({}, ["a", "b"])


def test_entries_expire_after_their_time(key):
    cache = GenerationCache(key, ttl_s=0)
    cache.lookup(["a"])
    cache.store({"a": 1})

    assert cache.lookup(["a"]) == ({}, ["a"])


def test_a_full_cache_starts_again_instead_of_growing(key):
    cache = GenerationCache(key, ttl_s=60, limit=3)
    cache.lookup([])
    cache.store({"a": 1, "b": 2})
    cache.store({"c": 3, "d": 4})

    assert cache.lookup(["a", "b", "c", "d"]) == ({"c": 3, "d": 4}, ["a", "b"])


@pytest.fixture
def redis_down(monkeypatch):
    monkeypatch.setattr(redis_outage, "redis_down", lambda: True)
    yield
    redis_outage.reset()


def test_without_redis_nothing_is_cached(key, redis_down):
    cache = GenerationCache(key, ttl_s=60)

    cache.lookup(["a"])
    cache.store({"a": 1})

    assert cache.lookup(["a"]) == ({}, ["a"])


@pytest.mark.django_db
def test_a_change_bumps_now_and_again_at_its_commit(key, django_capture_on_commit_callbacks):
    here, elsewhere = GenerationCache(key, ttl_s=60), GenerationCache(key, ttl_s=60)
    with django_capture_on_commit_callbacks() as callbacks:
        here.changed()
        elsewhere.lookup([])
        elsewhere.store({"a": 1})  # read before the commit: may be the rows as they were

    for callback in callbacks:
        callback()

    assert elsewhere.lookup(["a"]) == ({}, ["a"])
