"""Password logins are throttled per client address and per username (django-axes on the shared Redis cache),
answer 429 with Retry-After when locked out, let everyone else in, expire, and fail open without the cache;
API tokens may expire."""

from __future__ import annotations

import socket
import time
import uuid
from datetime import timedelta
from io import StringIO

import pytest
from axes.handlers.proxy import AxesProxyHandler
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from apps.accounts.roles import Role
from tests.factories import API, assert_error_shape, make_user, token_client

pytestmark = pytest.mark.django_db

TOKEN_URL = f"{API}/auth/token/"
PASSWORD = "the-right-password-1"
LIMIT = 10


class Logins:
    """Fresh client addresses and usernames for one test (the counters live in the shared Redis database
    across tests and runs), forgotten again after it."""

    def __init__(self) -> None:
        self.addresses: list[str] = []
        self.usernames: list[str] = []

    def address(self) -> str:
        self.addresses.append(f"2001:db8::{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}")
        return self.addresses[-1]

    def user(self, role: Role = Role.ADMIN) -> str:
        username = f"person-{uuid.uuid4().hex[:8]}"
        self.usernames.append(username)
        make_user(username, role, password=PASSWORD)
        return username

    def forget(self) -> None:
        for address in self.addresses:
            AxesProxyHandler.reset_attempts(ip_address=address)
        for username in self.usernames:
            AxesProxyHandler.reset_attempts(username=f"user:{username}")


@pytest.fixture
def logins():
    tracker = Logins()
    with override_settings(AXES_ENABLED=True, AXES_FAILURE_LIMIT=LIMIT, AXES_COOLOFF_TIME=timedelta(minutes=15)):
        yield tracker
    tracker.forget()


def token_login(username: str, password: str, address: str):
    return APIClient().post(TOKEN_URL, {"username": username, "password": password}, format="json", REMOTE_ADDR=address)


def test_forty_wrong_passwords_on_the_token_endpoint_end_in_429_with_retry_after(logins):
    username, address = logins.user(), logins.address()

    answers = [token_login(username, f"guess-{n}", address) for n in range(40)]

    assert [answer.status_code for answer in answers] == [400] * (LIMIT - 1) + [429] * (40 - LIMIT + 1)
    last = answers[-1]
    assert last["Retry-After"] == "900"
    body = assert_error_shape(last)
    assert body["retry_after_s"] == 900 and "Too many failed logins" in body["detail"]
    assert "token" not in body
    # Locked out means locked out, whatever the password.
    assert token_login(username, PASSWORD, address).status_code == 429


def test_a_lockout_holds_that_address_and_that_user_only(logins):
    locked_user, other_user = logins.user(), logins.user(Role.VIEWER)
    locked_address, other_address = logins.address(), logins.address()
    for n in range(LIMIT):
        token_login(locked_user, f"guess-{n}", locked_address)

    other = token_login(other_user, PASSWORD, other_address)

    assert other.status_code == 200, other.content
    assert token_client(other.json()["token"]).get(f"{API}/locations/").status_code == 200
    assert token_login(locked_user, PASSWORD, other_address).status_code == 429  # the username is locked
    assert token_login(other_user, PASSWORD, locked_address).status_code == 429  # and so is the address


def test_spraying_many_usernames_from_one_address_is_stopped_by_the_address_limit(logins):
    address = logins.address()

    answers = [token_login(f"nobody-{n}", "guess", address).status_code for n in range(LIMIT + 1)]

    assert answers[-2:] == [429, 429]
    assert token_login(logins.user(), PASSWORD, address).status_code == 429


@pytest.mark.parametrize("login_url", ["/admin/login/", "/ops/login/"])
def test_the_admin_and_dashboard_logins_lock_out_with_a_429_page(logins, client, login_url):
    username, address = logins.user(), logins.address()

    answers = [
        client.post(login_url, {"username": username, "password": f"guess-{n}"}, REMOTE_ADDR=address) for n in range(40)
    ]

    assert [answer.status_code for answer in answers[: LIMIT - 1]] == [200] * (LIMIT - 1)  # the form, with its error
    assert {answer.status_code for answer in answers[LIMIT - 1 :]} == {429}
    assert answers[-1]["Retry-After"] == "900"
    assert b"Too many failed logins" in answers[-1].content
    refused = client.post(login_url, {"username": username, "password": PASSWORD}, REMOTE_ADDR=address)
    assert refused.status_code == 429
    assert "_auth_user_id" not in client.session
    other = client.post(login_url, {"username": logins.user(), "password": PASSWORD}, REMOTE_ADDR=logins.address())
    assert other.status_code == 302
    assert "_auth_user_id" in client.session


def test_a_login_forwarded_by_a_trusted_proxy_is_counted_under_the_clients_address(logins):
    username, proxy = logins.user(), logins.address()
    client_address, neighbour = logins.address(), logins.address()

    def via_proxy(password: str, address: str):
        return APIClient().post(
            TOKEN_URL,
            {"username": username, "password": password},
            format="json",
            REMOTE_ADDR=proxy,
            HTTP_X_FORWARDED_FOR=f"203.0.113.9, {address}",  # the left entry is the client's own claim
        )

    with override_settings(LOGIN_TRUSTED_PROXIES=1, AXES_LOCKOUT_PARAMETERS=["ip_address"]):
        for n in range(LIMIT):
            via_proxy(f"guess-{n}", client_address)
        assert via_proxy(PASSWORD, client_address).status_code == 429
        assert via_proxy(PASSWORD, neighbour).status_code == 200


def test_a_lockout_expires(logins):
    username, address = logins.user(), logins.address()
    with override_settings(AXES_FAILURE_LIMIT=3, AXES_COOLOFF_TIME=timedelta(seconds=1)):
        answers = [token_login(username, "guess", address).status_code for _ in range(3)]
        assert answers == [400, 400, 429]
        assert token_login(username, PASSWORD, address)["Retry-After"] == "1"

        time.sleep(1.5)  # the counters' time to live in Redis

        assert token_login(username, PASSWORD, address).status_code == 200


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_logins_go_through_unthrottled_while_the_cache_is_unreachable(logins, settings):
    username, address = logins.user(), logins.address()
    unreachable = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": f"redis://127.0.0.1:{closed_port()}/0",
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    }
    with override_settings(CACHES={**settings.CACHES, "logins": unreachable}, AXES_CACHE="logins"):
        answers = {token_login(username, f"guess-{n}", address).status_code for n in range(LIMIT + 2)}
        correct = token_login(username, PASSWORD, address)

    assert answers == {400}
    assert correct.status_code == 200, correct.content


def test_an_expired_token_is_refused_with_a_clear_401_and_a_new_one_can_be_had(logins):
    username = logins.user(Role.VIEWER)
    old = Token.objects.get(user__username=username)
    Token.objects.filter(pk=old.pk).update(created=timezone.now() - timedelta(days=31))

    with override_settings(API_TOKEN_TTL_DAYS=30):
        refused = token_client(old.key).get(f"{API}/locations/")
        renewed = token_login(username, PASSWORD, logins.address())
        new_key = renewed.json()["token"]
        accepted = token_client(new_key).get(f"{API}/locations/")
        still_refused = token_client(old.key).get(f"{API}/locations/")

    assert refused.status_code == 401
    assert "expired" in assert_error_shape(refused)["detail"]
    assert renewed.status_code == 200 and new_key != old.key
    assert accepted.status_code == 200
    assert still_refused.status_code == 401


def test_tokens_never_expire_without_a_time_to_live(logins):
    username = logins.user(Role.VIEWER)
    Token.objects.filter(user__username=username).update(created=timezone.now() - timedelta(days=3650))

    with override_settings(API_TOKEN_TTL_DAYS=0):
        key = Token.objects.get(user__username=username).key
        assert token_client(key).get(f"{API}/locations/").status_code == 200
        assert token_login(username, PASSWORD, logins.address()).json()["token"] == key


def test_an_admin_lifts_a_lockout_with_the_axes_reset_commands(logins):
    username, address = logins.user(), logins.address()
    for n in range(LIMIT):
        token_login(username, f"guess-{n}", address)
    assert token_login(username, PASSWORD, logins.address()).status_code == 429

    call_command("axes_reset_username", f"user:{username}", stdout=StringIO())
    call_command("axes_reset_ip", address, stdout=StringIO())

    assert token_login(username, PASSWORD, address).status_code == 200
