"""Device ingest keys: random, shown once, stored as a SHA-256 digest.

A keyed hash with a per-key salt (PBKDF2) would cost tens of milliseconds on every ingest request. The keys
are 256-bit random values, so a plain digest cannot be brute-forced and lets the key be found by an index
lookup.
"""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX_LENGTH = 8


def new_ingest_key() -> str:
    return secrets.token_urlsafe(32)


def hash_ingest_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
