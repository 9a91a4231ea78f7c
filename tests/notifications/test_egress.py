"""Webhooks stay outside: every internal address class refused at subscription time and at delivery (with the
production default of WEBHOOK_ALLOWED_NETWORKS, none), the allow-list, connections pinned to the checked
address (DNS rebinding) with the name kept for Host and TLS, one deadline per delivery, no redirects, and no
response body in the delivery history."""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from importlib import import_module

import pytest
import trustme
from django.conf import settings as django_settings
from django.db import connection
from django.urls import reverse

from apps.core import egress
from apps.notifications.models import Notification, Subscription
from apps.notifications.services import notification_deliver
from apps.thresholds.models import Threshold
from tests.alerts.helpers import evaluate, make_subscription, readings
from tests.factories import API, assert_error_shape
from tests.notifications.receiver import Receiver

pytestmark = pytest.mark.django_db

SUBSCRIPTIONS = f"{API}/subscriptions/"
NOTIFICATIONS = f"{API}/notifications/"
SECRET = "a-webhook-secret-of-some-length"


@pytest.fixture(scope="session")
def production_allowed_networks() -> list:
    """WEBHOOK_ALLOWED_NETWORKS as the production settings make it when the variable is not set."""
    env = {name: value for name, value in os.environ.items() if name != "WEBHOOK_ALLOWED_NETWORKS"}
    env.update(DJANGO_SETTINGS_MODULE="telemetry_project.settings", DEBUG="true")
    program = "from django.conf import settings; print(','.join(map(str, settings.WEBHOOK_ALLOWED_NETWORKS)))"
    answer = subprocess.run(
        [sys.executable, "-c", program], env=env, cwd=django_settings.BASE_DIR, capture_output=True, text=True
    )
    assert answer.returncode == 0, answer.stderr
    return [ipaddress.ip_network(item) for item in answer.stdout.strip().split(",") if item]


@pytest.fixture(autouse=True)
def production_default(settings, production_allowed_networks):
    """The suite allows this machine's receivers (tests/settings.py); these tests run as production does."""
    settings.WEBHOOK_ALLOWED_NETWORKS = production_allowed_networks


def test_production_allows_no_network_by_default(production_allowed_networks):
    assert production_allowed_networks == []


def allow(settings, *networks: str) -> None:
    settings.WEBHOOK_ALLOWED_NETWORKS = [ipaddress.ip_network(network) for network in networks]


@dataclass
class FakeDns:
    """Answers for some names, in turn (the last one repeats); every other name goes to the real resolver."""

    answers: dict[str, list[list[str]]] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    lookups: list[str] = field(default_factory=list)


@pytest.fixture
def dns(monkeypatch) -> FakeDns:
    fake = FakeDns()
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in fake.answers:
            return real(host, port, *args, **kwargs)
        fake.lookups.append(host)
        time.sleep(fake.delays.get(host, 0))
        turns = fake.answers[host]
        addresses = turns.pop(0) if len(turns) > 1 else turns[0]
        return [
            (socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
            for address in addresses
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return fake


@pytest.fixture
def immediate(world):
    Threshold.objects.filter(pk=world.thresholds["temperature"].pk).update(min_duration_s=0)
    return world


def subscribe(api, *targets: str):
    """POST a subscription with an email channel and a webhook channel per target."""
    channels = [{"type": "email", "target": "ops@example.com"}] + [
        {"type": "webhook", "target": target} for target in targets
    ]
    return api.post(SUBSCRIPTIONS, {"name": "hook", "channels": channels}, format="json")


def notify(target: str) -> Notification:
    """A webhook notification of a critical alert, its subscription saved without the API's checks (as a row
    from before them would be)."""
    make_subscription(channels=[{"type": "webhook", "target": target}], secret=SECRET)
    evaluate(readings("env-001/temperature", (0, 45)))
    return Notification.objects.get()


# Targets the API refuses for their address (port 0 stands for the local receiver's port).
REFUSED = [
    ("http://127.0.0.1:0/hook", "127.0.0.1 is a loopback address"),
    ("http://localhost:0/hook", "localhost resolves to 127.0.0.1, a loopback address"),
    ("http://[::1]:0/hook", "::1 is a loopback address"),
    ("http://[::ffff:127.0.0.1]:0/hook", "::ffff:127.0.0.1 is a loopback address"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a cloud metadata address"),
    ("http://[fd00:ec2::254]/latest/meta-data/", "fd00:ec2::254 is a cloud metadata address"),
    ("http://100.100.100.200/latest/meta-data/", "100.100.100.200 is a cloud metadata address"),
    ("http://169.254.10.1/", "169.254.10.1 is a link-local address"),
    ("http://[fe80::1]/", "fe80::1 is a link-local address"),
    ("http://10.20.30.40/hook", "10.20.30.40 is a private address"),
    ("http://172.16.5.4/hook", "172.16.5.4 is a private address"),
    ("http://192.168.1.10/hook", "192.168.1.10 is a private address"),
    ("http://[fd12:3456::1]/hook", "fd12:3456::1 is a private address"),
    ("http://100.64.1.2/hook", "100.64.1.2 is a shared (CGNAT) address"),
    ("http://0.0.0.0:0/hook", "0.0.0.0 is an unspecified address"),
    ("http://224.0.0.251/hook", "224.0.0.251 is a multicast address"),
    ("http://240.1.2.3/hook", "240.1.2.3 is a reserved address"),
    ("http://hooks.internal.example.com:0/hook", "hooks.internal.example.com resolves to 127.0.0.1"),
]
# Spellings of 127.0.0.1 that URL validation already refuses; a delivery meets them only in older rows.
LOOPBACK_SPELLINGS = ["2130706433", "017700000001", "0x7f000001", "127.1", "0177.0.0.1"]


def _on_receiver(url: str, receiver: Receiver) -> str:
    return url.replace(":0/", f":{receiver.port}/")


@pytest.mark.parametrize(("url", "reason"), REFUSED)
def test_subscriptions_to_internal_addresses_are_refused_naming_the_target(
    world, operator_api, receiver, dns, url, reason
):
    dns.answers["hooks.internal.example.com"] = [["127.0.0.1"]]

    response = subscribe(operator_api, _on_receiver(url, receiver))

    assert response.status_code == 400, response.content
    errors = assert_error_shape(response, "channels[1].target")["errors"]
    assert reason in errors["channels[1].target"][0]
    assert not Subscription.objects.exists()


def test_changing_a_subscription_to_an_internal_target_is_refused(world, operator_api):
    subscription = make_subscription(channels=[{"type": "webhook", "target": "https://scada.example.com/hook"}])

    response = operator_api.patch(
        f"{SUBSCRIPTIONS}{subscription.pk}/",
        {"channels": [{"type": "webhook", "target": "http://169.254.169.254/latest/"}]},
        format="json",
    )

    assert response.status_code == 400, response.content
    assert_error_shape(response, "channels[0].target")
    subscription.refresh_from_db()
    assert subscription.channels == [{"type": "webhook", "target": "https://scada.example.com/hook"}]


def test_credentials_in_a_webhook_url_are_refused(world, operator_api):
    response = subscribe(operator_api, "https://user:pass@scada.example.com/hook")

    assert response.status_code == 400, response.content
    assert "no credentials" in assert_error_shape(response, "channels[1].target")["errors"]["channels[1].target"][0]


def test_the_admin_form_refuses_internal_targets_too(admin_client, world):
    response = admin_client.post(
        reverse("admin:notifications_subscription_add"),
        {
            "name": "IMDS",
            "min_severity": "warning",
            "channels": '[{"type": "webhook", "target": "http://169.254.169.254/latest/"}]',
            "time_zone": "UTC",
        },
    )

    assert response.status_code == 200  # the form again, with its errors
    assert "169.254.169.254 is a cloud metadata address" in str(response.context["adminform"].form.errors)
    assert not Subscription.objects.exists()


def test_a_name_that_does_not_resolve_yet_is_accepted_and_checked_at_delivery(world, operator_api):
    response = subscribe(operator_api, "https://not-yet.invalid/hook")

    assert response.status_code == 201, response.content


@pytest.mark.parametrize(
    ("url", "reason"), REFUSED + [(f"http://{host}:0/hook", "resolves to 127.0.0.1") for host in LOOPBACK_SPELLINGS]
)
def test_deliveries_to_internal_addresses_fail_for_good_without_a_connection(immediate, receiver, dns, url, reason):
    dns.answers["hooks.internal.example.com"] = [["127.0.0.1"]]
    notification = notify(_on_receiver(url, receiver))

    outcome = notification_deliver(notification_id=notification.pk)

    assert outcome.status == "failed"
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("failed", 1)
    assert notification.last_error.startswith(f"Not sent to {notification.target}: ")
    assert reason in notification.last_error
    assert receiver.received() == []


def test_a_name_with_one_internal_address_among_public_ones_is_refused(immediate, dns):
    dns.answers["mixed.example.com"] = [["93.184.215.14", "10.0.0.7"]]
    notification = notify("https://mixed.example.com/hook")

    assert notification_deliver(notification_id=notification.pk).status == "failed"

    notification.refresh_from_db()
    assert "mixed.example.com resolves to 10.0.0.7, a private address" in notification.last_error


def test_the_allowed_networks_admit_a_local_receiver(immediate, operator_api, receiver, settings):
    allow(settings, "127.0.0.0/8")

    created = subscribe(operator_api, receiver.url)
    assert created.status_code == 201, created.content
    evaluate(readings("env-001/temperature", (0, 45)))
    notification = Notification.objects.get(channel="webhook")

    assert notification_deliver(notification_id=notification.pk).status == "sent"
    assert len(receiver.received()) == 1


def test_an_ipv4_network_allowed_admits_its_ipv4_mapped_spelling(settings):
    allow(settings, "127.0.0.0/8")

    assert egress.address_refusal(ipaddress.ip_address("::ffff:127.0.0.1")) is None
    assert egress.address_refusal(ipaddress.ip_address("::ffff:10.0.0.1")) is not None


def test_metadata_addresses_stay_refused_inside_allowed_networks(immediate, operator_api, settings):
    allow(settings, "0.0.0.0/0", "::/0")

    response = subscribe(operator_api, "http://169.254.169.254/latest/")
    assert response.status_code == 400, response.content

    notification = notify("http://[::ffff:169.254.169.254]/latest/")
    assert notification_deliver(notification_id=notification.pk).status == "failed"
    notification.refresh_from_db()
    assert "cloud metadata address" in notification.last_error


def test_public_addresses_pass(settings):
    for address in ("93.184.215.14", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"):
        assert egress.address_refusal(ipaddress.ip_address(address)) is None, address
    for address in ("64:ff9b::a00:1", "2002:7f00:1::", "::", "192.0.0.8", "198.18.0.1", "fec0::1"):
        assert egress.address_refusal(ipaddress.ip_address(address)) is not None, address


@pytest.fixture
def rebinding_receivers():
    """Two receivers on one port: 127.0.0.1 (where the name pointed when it was checked) and 127.0.0.2
    (where it points a moment later)."""
    checked = Receiver().start()
    rebound = Receiver(host="127.0.0.2", port=checked.port).start()
    yield checked, rebound
    checked.stop()
    rebound.stop()


def test_the_connection_goes_to_the_address_that_was_checked(immediate, settings, dns, rebinding_receivers):
    checked, rebound = rebinding_receivers
    allow(settings, "127.0.0.1/32")
    dns.answers["hooks.example.com"] = [["127.0.0.1"], ["127.0.0.2"]]
    notification = notify(f"http://hooks.example.com:{checked.port}/hook")

    assert notification_deliver(notification_id=notification.pk).status == "sent"

    (request,) = checked.received()
    assert request.headers["Host"] == f"hooks.example.com:{checked.port}"
    assert rebound.received() == []
    assert dns.lookups == ["hooks.example.com"]


@pytest.fixture
def tls_receiver(monkeypatch, tmp_path):
    """A TLS receiver with a certificate for hooks.example.com from a CA this process trusts (SSL_CERT_FILE),
    recording the server names clients ask for."""
    authority = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    egress.tls_context.cache_clear()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("hooks.example.com").configure_cert(server_context)
    server_names: list[str | None] = []
    server_context.sni_callback = lambda sock, name, context: server_names.append(name)
    receiver = Receiver(tls=server_context).start()
    receiver.server_names = server_names
    yield receiver
    receiver.stop()
    egress.tls_context.cache_clear()


def test_https_to_a_pinned_address_keeps_the_name_for_sni_and_the_certificate(immediate, settings, dns, tls_receiver):
    allow(settings, "127.0.0.1/32")
    dns.answers["hooks.example.com"] = [["127.0.0.1"]]
    notification = notify(f"https://hooks.example.com:{tls_receiver.port}/hook")

    assert notification_deliver(notification_id=notification.pk).status == "sent"

    assert tls_receiver.server_names == ["hooks.example.com"]
    (request,) = tls_receiver.received()
    assert request.headers["Host"] == f"hooks.example.com:{tls_receiver.port}"
    assert request.signature_valid(SECRET)


def test_a_certificate_for_another_name_is_not_trusted(immediate, settings, dns, tls_receiver):
    allow(settings, "127.0.0.1/32")
    dns.answers["other.example.com"] = [["127.0.0.1"]]
    notification = notify(f"https://other.example.com:{tls_receiver.port}/hook")

    assert notification_deliver(notification_id=notification.pk).status == "retry"

    notification.refresh_from_db()
    assert "CERTIFICATE_VERIFY_FAILED" in notification.last_error
    assert tls_receiver.received() == []


@pytest.fixture
def dribbling_receiver():
    """Answers a valid 200, one byte per second: every read gets a byte well within a per-read timeout."""
    server = socket.create_server(("127.0.0.1", 0))
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"

    def serve() -> None:
        connection, _ = server.accept()
        with connection:
            connection.recv(65536)
            for byte in answer:
                try:
                    connection.sendall(bytes([byte]))
                except OSError:
                    return  # the sender hung up
                time.sleep(1)

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/hook"
    server.close()


def test_a_receiver_that_dribbles_its_answer_is_cut_off_at_the_deadline(immediate, settings, dribbling_receiver):
    allow(settings, "127.0.0.1/32")
    settings.NOTIFY_WEBHOOK_TIMEOUT_S = 1.5
    notification = notify(dribbling_receiver)

    outcome = notification_deliver(notification_id=notification.pk)

    # With a per-read timeout the whole answer would arrive, about 40 s later, and count as sent.
    assert outcome.status == "retry"
    notification.refresh_from_db()
    assert notification.last_error == f"No answer from {dribbling_receiver} within 1.5 s."


def test_a_slow_name_lookup_counts_against_the_deadline(immediate, settings, dns, receiver):
    allow(settings, "127.0.0.1/32")
    settings.NOTIFY_WEBHOOK_TIMEOUT_S = 0.5
    dns.answers["slow.example.com"] = [["127.0.0.1"]]
    dns.delays["slow.example.com"] = 3.0
    notification = notify(f"http://slow.example.com:{receiver.port}/hook")

    assert notification_deliver(notification_id=notification.pk).status == "retry"

    notification.refresh_from_db()
    assert notification.last_error == f"No answer from {notification.target} within 0.5 s."
    assert receiver.received() == []


def test_redirects_are_not_followed(immediate, settings, receiver):
    allow(settings, "127.0.0.1/32")
    receiver.script(307)
    receiver.headers["Location"] = f"http://127.0.0.1:{receiver.port}/elsewhere"
    notification = notify(receiver.url)

    assert notification_deliver(notification_id=notification.pk).status == "failed"

    notification.refresh_from_db()
    assert notification.last_error == f"HTTP 307 from {receiver.url}: Temporary Redirect (redirects are not followed)"
    assert [request.path for request in receiver.received()] == ["/hook"]


def test_the_delivery_history_keeps_the_status_not_the_answer_body(immediate, settings, receiver, viewer_api):
    allow(settings, "127.0.0.1/32")
    receiver.script(500)  # answers {"error": "scripted"}
    notification = notify(receiver.url)

    assert notification_deliver(notification_id=notification.pk).status == "retry"

    (row,) = viewer_api.get(NOTIFICATIONS).json()["results"]
    assert row["last_error"] == f"HTTP 500 from {receiver.url}: Internal Server Error"
    assert "scripted" not in str(row)


def test_the_sms_gateway_set_by_the_operator_of_the_server_may_be_internal(immediate, settings, receiver):
    settings.NOTIFY_SMS_BACKEND, settings.NOTIFY_SMS_GATEWAY_URL = "http", receiver.url
    make_subscription(channels=[{"type": "sms", "target": "+491701234567"}])
    evaluate(readings("env-001/temperature", (0, 45)))

    assert notification_deliver(notification_id=Notification.objects.get().pk).status == "sent"
    assert len(receiver.received()) == 1


def test_answer_bodies_kept_by_older_deliveries_are_dropped_by_the_migration(immediate, receiver):
    migration = import_module("apps.notifications.migrations.0003_last_error_without_response_bodies")
    notification = notify(receiver.url)
    older = f'HTTP 500 from {receiver.url}: {{"detail": "db password rejected for user app"}}'
    Notification.objects.filter(pk=notification.pk).update(last_error=older)
    unrelated = "Could not reach http://example.com/: ConnectionRefusedError: [Errno 111] Connection refused"
    other = Notification.objects.create(
        kind="event", event=notification.event, alert=notification.alert, subscription=notification.subscription,
        channel="email", target="ops@example.com", last_error=unrelated,
    )  # fmt: skip

    with connection.cursor() as cursor:
        cursor.execute(migration.STRIP_BODIES)

    notification.refresh_from_db()
    other.refresh_from_db()
    assert notification.last_error == f"HTTP 500 from {receiver.url}"
    assert other.last_error == unrelated
