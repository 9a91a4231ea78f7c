"""Message signatures for devices on MQTT (docs/devices.md, "Authentication").

A device signs a message with HMAC-SHA256 under its MQTT secret, the SHA-256 hex digest of its ingest key
(which is what the backend stores, so the key itself never leaves the device). The signature goes into the
message as its last member:

    body   = the JSON object without a signature, exactly as sent: b'{"v":2,...}'
    sig    = hex(HMAC-SHA256(secret, body))
    signed = body[:-1] + b',"sig":"' + sig + b'"}'

Verifying strips that suffix back off and signs the bytes again, so no canonical JSON is needed: any JSON
writer works as long as the signed bytes are sent unchanged. Commands to devices are signed the same way.
"""

from __future__ import annotations

import hashlib
import hmac
import re

import orjson

from apps.devices.keys import hash_ingest_key

_SIGNATURE_SUFFIX = re.compile(rb',\s*"sig"\s*:\s*"([0-9a-f]{64})"\s*}\s*\Z')


def device_secret(ingest_key: str) -> str:
    """What a device signs with: the hex digest of its ingest key (the stored ingest_key_hash)."""
    return hash_ingest_key(ingest_key)


def _digest(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def sign(body: bytes, secret: str) -> bytes:
    body = body.rstrip()
    if not (body.startswith(b"{") and body.endswith(b"}")) or body == b"{}":
        raise ValueError("only a non-empty JSON object can be signed")
    return body[:-1] + b',"sig":"' + _digest(secret, body).encode() + b'"}'


def signed_json(message: dict, secret: str) -> bytes:
    return sign(orjson.dumps(message), secret)


def verify(raw: bytes, secret: str) -> bool:
    """True when `raw` ends with a signature member that matches the rest of the message under `secret`."""
    match = _SIGNATURE_SUFFIX.search(raw)
    if match is None:
        return False
    body = raw[: match.start()] + b"}"
    return hmac.compare_digest(_digest(secret, body), match.group(1).decode())


def is_signed(raw: bytes) -> bool:
    return _SIGNATURE_SUFFIX.search(raw) is not None
