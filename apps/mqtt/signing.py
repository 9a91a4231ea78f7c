"""Message signatures for devices on MQTT (docs/devices.md, "Signed messages").

A device signs a message with HMAC-SHA256 under its MQTT secret, the SHA-256 hex digest of its ingest key
(which is what the backend stores, so the key itself never leaves the device). The signature goes into the
message as its last member:

    body   = the JSON object without a signature, exactly as sent: b'{"v":3,...}'
    sig    = hex(HMAC-SHA256(secret, kind + "\\n" + body))     v3: kind is the topic's (telemetry, status, ...)
    sig    = hex(HMAC-SHA256(secret, body))                    v2 (legacy, MQTT_ACCEPT_V2_SIGNATURES)
    signed = body[:-1] + b',"sig":"' + sig + b'"}'

Verifying strips that suffix back off and signs the bytes again, so no canonical JSON is needed: any JSON
writer works as long as the signed bytes are sent unchanged. Signing the topic kind means a message is only
valid on the topic it was made for. A v3 body also carries "ts" and a "nonce" (apps/mqtt/envelope.py), which
make a recorded message useless to send again. Commands to devices are signed the same way (kind "command").
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime

import orjson

from apps.devices.keys import hash_ingest_key

_SIGNATURE_SUFFIX = re.compile(rb',\s*"sig"\s*:\s*"([0-9a-f]{64})"\s*}\s*\Z')
V3 = 3


def device_secret(ingest_key: str) -> str:
    """What a device signs with: the hex digest of its ingest key (the stored ingest_key_hash)."""
    return hash_ingest_key(ingest_key)


def mqtt_password(secret: str) -> str:
    """The device's password on the project's broker, derived from its MQTT secret: the backend can set it
    again from what it stores, and someone who overhears a login cannot sign messages with it."""
    return hmac.new(secret.encode(), b"mqtt-password", hashlib.sha256).hexdigest()


def _digest(secret: str, body: bytes, kind: str | None) -> str:
    signed = body if kind is None else kind.encode() + b"\n" + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(body: bytes, secret: str, *, kind: str | None = None) -> bytes:
    """`body` with its signature appended: v3 for the topic kind `kind`, v2 without one."""
    body = body.rstrip()
    if not (body.startswith(b"{") and body.endswith(b"}")) or body == b"{}":
        raise ValueError("only a non-empty JSON object can be signed")
    return body[:-1] + b',"sig":"' + _digest(secret, body, kind).encode() + b'"}'


def signed_json(message: dict, secret: str, *, kind: str | None = None) -> bytes:
    return sign(orjson.dumps(message), secret, kind=kind)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def signed_message(message: dict, secret: str, *, kind: str, ts: str | None = None, nonce: str | None = None) -> bytes:
    """A v3 message for the topic kind `kind`: `message` with "v": 3, its "ts" (now unless given or already
    there) and a fresh random "nonce", signed."""
    envelope = {"v": V3, **message}
    envelope["v"] = V3
    envelope["ts"] = ts or message.get("ts") or iso(datetime.now(UTC))
    envelope["nonce"] = nonce or message.get("nonce") or secrets.token_hex(8)
    return signed_json(envelope, secret, kind=kind)


def verify(raw: bytes, secret: str, *, kind: str | None = None) -> bool:
    """True when `raw` ends with a signature member that matches the rest of the message under `secret`
    (v3 for the topic kind `kind`; v2 when kind is None)."""
    match = _SIGNATURE_SUFFIX.search(raw)
    if match is None:
        return False
    body = raw[: match.start()] + b"}"
    return hmac.compare_digest(_digest(secret, body, kind), match.group(1).decode())


def is_signed(raw: bytes) -> bool:
    return _SIGNATURE_SUFFIX.search(raw) is not None
