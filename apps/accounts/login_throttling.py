"""Login throttling for every password login: the token endpoint, the admin login and /ops/login/.

django-axes does the counting: its authentication backend refuses a login while the client is locked out,
and Django's user_login_failed signal counts each failure. Failures are counted per client address and per
username apart (AXES_LOCKOUT_PARAMETERS), in the shared Redis cache, each counter living LOGIN_LOCKOUT_S
from its latest failure. LOGIN_FAILURE_LIMIT failures lock that address or username out for LOGIN_LOCKOUT_S;
every attempt while locked out counts as a failure and so starts the wait again, which is why the answer's
Retry-After is the whole lockout. A correct password from another address for another user is unaffected.

Answers while locked out are 429 with Retry-After: the API's in the one error shape (apps/accounts/api.py
raises DRF's Throttled), the two login pages as an HTML page (`lockout_response`, through AxesMiddleware).
"""

from __future__ import annotations

import logging
import math

import redis
from axes.handlers.cache import AxesCacheHandler
from axes.helpers import get_cache
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.cache import BaseCache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

log = logging.getLogger(__name__)


def lockout_seconds() -> int:
    return int(settings.AXES_COOLOFF_TIME.total_seconds())


def lockout_message() -> str:
    minutes = math.ceil(lockout_seconds() / 60)
    return f"Too many failed logins from this address or for this user: try again in {minutes} minute(s)."


class FailOpenCacheHandler(AxesCacheHandler):
    """Axes' cache handler, letting logins through (and logging why) while the cache is unreachable: a Redis
    outage must not lock every person out, and the API's own rate limits fail open the same way."""

    def __init__(self) -> None:
        pass  # the cache is looked up on use (see `cache`), not once at start

    @property
    def cache(self) -> BaseCache:
        return get_cache()

    def get_failures(self, request, credentials: dict | None = None) -> int:
        try:
            return super().get_failures(request, credentials)
        except redis.RedisError as exc:
            log.warning("Login throttling is off while the cache is unreachable: %s", exc)
            return 0

    def user_login_failed(self, sender, credentials: dict, request=None, **kwargs) -> None:
        try:
            super().user_login_failed(sender, credentials, request, **kwargs)
        except redis.RedisError as exc:
            log.warning("A failed login was not counted, the cache is unreachable: %s", exc)


def login_username(request: HttpRequest, credentials: dict | None) -> str | None:
    """The name failures are counted under (AXES_USERNAME_CALLABLE). Axes keys a counter by its value alone,
    so the prefix keeps a username such as "10.0.0.5" from counting against that address."""
    field = get_user_model().USERNAME_FIELD
    if credentials:
        name = credentials.get(field)
    else:
        name = getattr(request, "data", request.POST).get(field)
    return f"user:{name}" if name else None


def login_client_ip(request: HttpRequest) -> str:
    """The client address failures are counted under (AXES_CLIENT_IP_CALLABLE): REMOTE_ADDR, or behind
    LOGIN_TRUSTED_PROXIES reverse proxies, the address that many entries from the right of X-Forwarded-For
    (each proxy appends the address it was reached from; entries further left are the client's to invent)."""
    hops = settings.LOGIN_TRUSTED_PROXIES
    if hops:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [part for part in forwarded if part]
        if len(forwarded) >= hops:
            return forwarded[-hops]
    return request.META.get("REMOTE_ADDR", "")


def lockout_response(request: HttpRequest, original_response=None, credentials: dict | None = None) -> HttpResponse:
    """What a locked-out login page answers (AXES_LOCKOUT_CALLABLE)."""
    seconds = lockout_seconds()
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse(
            {"detail": lockout_message(), "errors": {}, "retry_after_s": seconds}, status=429
        )
    else:
        context = {**admin.site.each_context(request), "title": "Too many failed logins", "message": lockout_message()}
        response = render(request, "accounts/locked_out.html", context, status=429)
    response["Retry-After"] = str(seconds)
    return response
