"""How a message leaves the system: email, signed webhooks, and SMS or push through a gateway backend.

Every sender either returns (delivered) or raises DeliveryError, which says whether trying again can help:
a 4xx answer or a refused address is permanent; a 5xx, a timeout or a dropped connection is not. Webhook URLs
come from users, so they go through the address rules of apps/core/egress.py.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import smtplib
import socket
import sys
from dataclasses import dataclass, field
from typing import Protocol

from django.conf import settings
from django.core.mail import EmailMessage, get_connection

from apps.core import egress

logger = logging.getLogger(__name__)

USER_AGENT = "telemetry-notifications/1"
# Statuses that say "not now" rather than "never": worth a retry like a 5xx.
_TRANSIENT_4XX = {408, 425, 429}


class DeliveryError(Exception):
    def __init__(self, message: str, *, permanent: bool, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Message:
    """One rendered notification: a subject and a text for people, a JSON document for machines."""

    subject: str
    text: str
    payload: dict = field(default_factory=dict)
    notification_id: int | None = None

    def body(self) -> bytes:
        return json.dumps(self.payload, separators=(",", ":"), sort_keys=True, default=str).encode()


def signature(secret: str, body: bytes) -> str:
    """The X-Signature header value: sha256=<hex HMAC-SHA256 of the exact body bytes under the secret>."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _retry_after(raw: str | None) -> float | None:
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def post_json(url: str, body: bytes, *, headers: dict[str, str], timeout: float, guarded: bool = True) -> int:
    """POST a JSON body within `timeout` seconds in all; returns the 2xx status or raises DeliveryError
    classifying the failure. `guarded`: the URL came from a user, so only public addresses (or the allowed
    networks) are called (apps/core/egress.py). Only the status is kept of an answer, never its body: the
    error is shown in the delivery history to every viewer."""
    all_headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers}
    try:
        answer = egress.post(url, body, headers=all_headers, timeout=timeout, guarded=guarded)
    except egress.Refused as exc:
        raise DeliveryError(f"Not sent to {url}: {exc}.", permanent=True) from None
    except TimeoutError:
        raise DeliveryError(f"No answer from {url} within {timeout:g} s.", permanent=False) from None
    except socket.gaierror as exc:
        raise DeliveryError(f"Could not resolve the host of {url}: {exc.strerror}", permanent=False) from None
    except (OSError, http.client.HTTPException) as exc:
        raise DeliveryError(f"Could not reach {url}: {type(exc).__name__}: {exc}", permanent=False) from None
    if 200 <= answer.status < 300:
        return answer.status
    message = f"HTTP {answer.status} from {url}" + (f": {answer.reason}" if answer.reason else "")
    if 300 <= answer.status < 400:
        # A redirected POST would be replayed as a GET, or to a host the subscription never named.
        message += " (redirects are not followed)"
    transient = answer.status >= 500 or answer.status in _TRANSIENT_4XX
    raise DeliveryError(message, permanent=not transient, retry_after_s=_retry_after(answer.retry_after))


def send_webhook(*, url: str, secret: str, message: Message) -> None:
    if not secret:
        raise DeliveryError("The subscription has no webhook secret to sign with; set one.", permanent=True)
    body = message.body()
    headers = {"X-Signature": signature(secret, body), "X-Event-Type": str(message.payload.get("type", ""))}
    if message.notification_id is not None:
        # Delivery is at least once (a worker may die after sending, before recording it): receivers can
        # drop repeats by this id.
        headers["X-Notification-Id"] = str(message.notification_id)
    post_json(url, body, headers=headers, timeout=settings.NOTIFY_WEBHOOK_TIMEOUT_S)


def send_email(*, address: str, message: Message) -> None:
    connection = get_connection(timeout=settings.EMAIL_TIMEOUT)
    headers = {"X-Telemetry-Notification": str(message.notification_id)} if message.notification_id else {}
    email = EmailMessage(
        subject=message.subject,
        body=message.text,
        from_email=settings.NOTIFY_EMAIL_FROM,
        to=[address],
        headers=headers,
        connection=connection,
    )
    try:
        email.send()
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        permanent = all(code >= 500 for code in codes)
        raise DeliveryError(f"Recipient refused: {exc.recipients}", permanent=permanent) from None
    except smtplib.SMTPResponseException as exc:
        raise DeliveryError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", permanent=exc.smtp_code >= 500) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"Could not send email: {type(exc).__name__}: {exc}", permanent=False) from None


class MessageBackend(Protocol):
    """Sends SMS or push messages. `channel` is "sms" or "push"; `target` a phone number or a device token."""

    def send(self, *, channel: str, target: str, message: Message) -> None: ...


class ConsoleBackend:
    """For development: writes the message to the worker's output instead of sending it."""

    def __init__(self, stream=None) -> None:
        self.stream = stream

    def send(self, *, channel: str, target: str, message: Message) -> None:
        stream = self.stream or sys.stdout
        stream.write(f"[{channel} to {target}] {message.subject}\n{message.text}\n")
        stream.flush()


class HttpGatewayBackend:
    """An SMS or push gateway that takes a JSON POST with a bearer token:
    {"channel", "to", "subject", "text", "data"}; 2xx accepted, 4xx refused for good, 5xx try again."""

    def __init__(self, *, url: str, token: str, timeout: float) -> None:
        self.url = url
        self.token = token
        self.timeout = timeout

    def send(self, *, channel: str, target: str, message: Message) -> None:
        body = json.dumps(
            {
                "channel": channel,
                "to": target,
                "subject": message.subject,
                "text": message.text,
                "data": message.payload,
            },
            separators=(",", ":"),
            default=str,
        ).encode()
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if message.notification_id is not None:
            headers["Idempotency-Key"] = f"notification-{message.notification_id}"
        # The gateway's URL comes from the server's settings, not from users: it may be an internal host.
        post_json(self.url, body, headers=headers, timeout=self.timeout, guarded=False)


def backend_for(channel: str) -> MessageBackend:
    prefix = {"sms": "NOTIFY_SMS", "push": "NOTIFY_PUSH"}[channel]
    kind = getattr(settings, f"{prefix}_BACKEND")
    if kind == "http":
        return HttpGatewayBackend(
            url=getattr(settings, f"{prefix}_GATEWAY_URL"),
            token=getattr(settings, f"{prefix}_GATEWAY_TOKEN"),
            timeout=settings.NOTIFY_GATEWAY_TIMEOUT_S,
        )
    return ConsoleBackend()
