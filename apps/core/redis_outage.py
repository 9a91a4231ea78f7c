"""Going on without Redis. Redis holds rate-limit counters, the sensor-configuration generation and the task
queues; none of them is worth failing a request for, since PostgreSQL keeps everything that was accepted.

A Redis call that fails marks Redis down for this process for REDIS_RETRY_AFTER_S: in that time calls skip
Redis at once instead of each waiting out its timeout (a Redis host that does not answer would otherwise add
REDIS_TIMEOUT_S per call to every request). Every fallback is counted in telemetry_redis_fallbacks_total
{operation}; the first failure of an operation is logged, then at most one line per LOG_EVERY_S.

It sits in core because the configuration apps cache through it (generation_cache.py); the counter belongs to
apps.operations, which listens to `fell_back` (apps/operations/apps.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings
from django.dispatch import Signal
from kombu.exceptions import KombuError
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

T = TypeVar("T")

# What the cache and the broker raise when Redis cannot be reached or does not answer in time.
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, KombuError, OSError)
LOG_EVERY_S = 60.0

# Sent with `operation` each time a process goes on without Redis.
fell_back = Signal()

_down_until = [0.0]
_last_logged: dict[str, float] = {}


def redis_down() -> bool:
    """Whether a recent failure says to skip Redis for now."""
    return time.monotonic() < _down_until[0]


def redis_failed(operation: str, error: BaseException | None = None) -> None:
    """Record that `operation` went on without Redis; with an error, also skip Redis for a while."""
    now = time.monotonic()
    if error is not None:
        _down_until[0] = now + settings.REDIS_RETRY_AFTER_S
    fell_back.send(sender=None, operation=operation)
    if error is not None and now - _last_logged.get(operation, -LOG_EVERY_S) >= LOG_EVERY_S:
        _last_logged[operation] = now
        logger.warning("Redis unavailable (%s), going on without it: %s: %s", operation, type(error).__name__, error)


def best_effort(operation: str, call: Callable[[], T], fallback: T) -> T:
    """`call()`, or `fallback` when Redis is down or fails."""
    if redis_down():
        redis_failed(operation)
        return fallback
    try:
        return call()
    except REDIS_ERRORS as error:
        redis_failed(operation, error)
        return fallback


def reset() -> None:
    """Forget earlier failures (tests, and a process that knows Redis is back)."""
    _down_until[0] = 0.0
    _last_logged.clear()
