"""Rate limits per API token and per device key, on the shared Redis cache.

Request limits use DRF's throttles; the ingest limit counts readings, not requests, so a gateway sending
10,000 readings in one request spends 10,000 of its budget. Every limit answers 429 with Retry-After.
A rate of "off" (or empty) switches a limit off. Without Redis every limit lets requests through (fails
open, counted and logged by apps/core/redis_outage.py): refusing ingest because a counter cannot be
read would lose more than a burst over the limit costs.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from apps.accounts.permissions import request_device
from apps.core.redis_outage import best_effort

THROTTLE_OPERATION = "throttle"


class TokenRateThrottle(SimpleRateThrottle):
    """Requests per user token (people and integrations)."""

    scope = "token"

    def allow_request(self, request, view) -> bool:
        allow = super().allow_request
        return best_effort(THROTTLE_OPERATION, lambda: allow(request, view), True)

    def get_rate(self):
        return settings.THROTTLE_RATES.get(self.scope)

    def get_cache_key(self, request, view):
        if request_device(request) is not None or not request.user or not request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


class DeviceRateThrottle(TokenRateThrottle):
    """Requests per device key."""

    scope = "device"

    def get_cache_key(self, request, view):
        device = request_device(request)
        return None if device is None else self.cache_format % {"scope": self.scope, "ident": device.pk}


class WeightedRateThrottle(BaseThrottle):
    """A budget of units (not requests) per period per device key or token, counted in fixed windows in
    Redis. Subclasses say what a request weighs."""

    scope: str

    def __init__(self):
        self.wait_s: float | None = None
        rate = settings.THROTTLE_RATES.get(self.scope)
        self.limit, self.period = SimpleRateThrottle.parse_rate(self, rate) if rate else (None, None)

    def weight(self, request) -> int:
        raise NotImplementedError

    def allow_request(self, request, view) -> bool:
        if self.limit is None or request.method != "POST":
            return True
        return best_effort(THROTTLE_OPERATION, lambda: self._spend(request), True)

    def _spend(self, request) -> bool:
        device = request_device(request)
        ident = f"d{device.pk}" if device is not None else f"u{request.user.pk}"
        weight = self.weight(request)
        now = time.time()
        window = int(now // self.period)
        key = f"throttle:{self.scope}:{ident}:{window}"
        cache.add(key, 0, timeout=self.period + 1)
        spent = cache.incr(key, weight)
        if spent <= self.limit:
            return True
        cache.decr(key, weight)  # a refused request spends nothing
        self.wait_s = (window + 1) * self.period - now
        return False

    def wait(self) -> float | None:
        return self.wait_s
