"""Per-process caches of configuration that every batch reads, dropped everywhere when the configuration
changes: saving or deleting what a cache is derived from bumps a generation number in the shared cache
(Redis), and each lookup reads it once and empties this process's copy when it moved.

Both ends are best-effort: a bump that cannot reach Redis is lost (other processes see the change once their
entries expire, after `ttl_s`), and a lookup that cannot read the generation finds nothing cached. Changes
that bypass model signals (queryset.update) are likewise seen once the entries expire.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from django.core.cache import cache
from django.db import transaction

from apps.core.redis_outage import best_effort

# Stands for "could not be read": never equal to what Redis holds, so the cache is dropped again once it answers.
_UNREADABLE = object()


class GenerationCache:
    def __init__(self, generation_key: str, *, ttl_s: float, limit: int = 200_000) -> None:
        self.generation_key = generation_key
        self.ttl_s = ttl_s
        self.limit = limit
        self._entries: dict[Hashable, tuple[float, Any]] = {}
        self._generation: Any = _UNREADABLE

    def clear(self) -> None:
        self._entries.clear()

    def bump(self) -> None:
        """Tell every process that what this cache holds changed."""
        best_effort(f"{self.generation_key}:bump", self._bump, None)

    def _bump(self) -> None:
        if not cache.add(self.generation_key, 1, timeout=None):
            try:
                cache.incr(self.generation_key)
            except ValueError:  # expired or evicted between add and incr
                cache.add(self.generation_key, 1, timeout=None)

    def changed(self, **_signal_kwargs) -> None:
        """A receiver for the save and delete signals of what the cache is derived from. Bumped now, so this
        transaction's own reads see the change, and again at the commit: another process could read the rows
        as they were before it and cache them under the first bump's generation."""
        self.bump()
        transaction.on_commit(self.bump)

    def lookup(self, keys: Iterable[Hashable]) -> tuple[dict[Hashable, Any], list[Hashable]]:
        """The cached values of these keys and the keys that are not cached (or expired), in their order."""
        generation = best_effort(f"{self.generation_key}:read", lambda: cache.get(self.generation_key), _UNREADABLE)
        if generation is _UNREADABLE or generation != self._generation:
            self._entries.clear()
            self._generation = generation
        now = time.monotonic()
        found: dict[Hashable, Any] = {}
        missing: list[Hashable] = []
        entries = self._entries
        for key in keys:
            hit = entries.get(key)
            if hit is not None and hit[0] > now:
                found[key] = hit[1]
            else:
                missing.append(key)
        return found, missing

    def get_many(self, keys: list[Hashable], load: Callable[[list[Hashable]], dict[Hashable, Any]]) -> dict:
        """Every key's value: the cached ones, and load(missing) for the others (stored for next time)."""
        found, missing = self.lookup(keys)
        if missing:
            loaded = load(missing)
            self.store(loaded)
            found.update(loaded)
        return found

    def store(self, values: dict[Hashable, Any]) -> None:
        """Cache these values (for the generation the last lookup read) for ttl_s."""
        if self._generation is _UNREADABLE:
            return
        if len(self._entries) + len(values) > self.limit:
            self._entries.clear()
        expires = time.monotonic() + self.ttl_s
        self._entries.update((key, (expires, value)) for key, value in values.items())
