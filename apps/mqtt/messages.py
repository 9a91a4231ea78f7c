"""The bridge's vocabulary: a message as it arrived, and why one is not used."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


class Reason:
    INVALID_JSON = "invalid_json"
    UNKNOWN_DEVICE = "unknown_device"
    DEVICE_INACTIVE = "device_inactive"
    BAD_SIGNATURE = "bad_signature"
    INVALID_MESSAGE = "invalid_message"
    STALE = "stale"
    REPLAYED = "replayed"
    UNKNOWN_COMMAND = "unknown_command"
    ERROR = "error"


class MessageRejected(Exception):
    def __init__(self, reason: str, detail: str, *, errors: dict | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.errors = errors or {}


class Repeated(Exception):
    """The message's nonce was used already: a replay, or a redelivery of a message whose effect is
    committed. Nothing was applied."""


@dataclass
class Inbound:
    """One message as the bridge received it."""

    topic: str
    device_id: str
    kind: str
    payload: bytes
    received_at: datetime
    mid: int = 0
    qos: int = 0
    generation: int = 0
    dup: bool = False  # the broker sends it again (to this bridge's session): it may have been applied
