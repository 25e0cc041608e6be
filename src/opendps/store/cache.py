"""A read-through cache for the few documents every registration reads (enrollments, groups,
CA certificates, linked hubs): each store round trip costs about 1 ms of CPU here, and these
change rarely. Writes through this instance clear the cache at once; writes by another
instance of a cluster are seen after ``ttl`` seconds at most."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .interface import Store

_CACHED = ("get_enrollment", "groups_by_attestation", "list_ca_certificates", "list_hubs",
           "get_hub", "get_policy")
_INVALIDATING = ("put_enrollment", "delete_enrollment", "put_ca_certificate",
                 "delete_ca_certificate", "put_hub", "delete_hub", "put_policy")
MAX_ENTRIES = 50_000
SWEEP_FLOOR = 1024  # entries before the first sweep for expired ones


class CachedStore:
    def __init__(self, inner: Store, *, ttl: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._inner = inner
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[tuple[Any, ...], tuple[float, Any]] = {}
        self._sweep_at = SWEEP_FLOOR
        # told after every write through this cache (a cluster tells the other instances)
        self.on_write: Callable[[], None] | None = None

    def invalidate(self) -> None:
        self._entries.clear()

    def _sweep(self, now: float) -> None:
        """Drop expired entries once the cache has doubled since the last sweep: every new
        device adds one (its individual-enrollment miss), and entries nobody reads again
        would otherwise pile up, to be walked by every full pass of the garbage collector."""
        entries = self._entries
        for key in [k for k, (expires, _) in entries.items() if expires <= now]:
            del entries[key]
        if len(entries) >= MAX_ENTRIES:
            entries.clear()
        self._sweep_at = max(SWEEP_FLOOR, 2 * len(entries))

    def __getattr__(self, name: str) -> Any:
        """Built once per name and kept as an instance attribute, so later calls find it
        without coming here (a registration makes about ten store calls)."""
        attr = getattr(self._inner, name)
        if name in _CACHED:
            attr = self._cached(name, attr)
        elif name in _INVALIDATING:
            attr = self._invalidating(attr)
        if callable(attr):
            setattr(self, name, attr)
        return attr

    def _cached(self, name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        async def cached(*args: Any, **kwargs: Any) -> Any:
            key = (name, *args, *sorted(kwargs.items()))
            now = self._clock()
            hit = self._entries.get(key)
            if hit is not None and hit[0] > now:
                return hit[1]
            value = await call(*args, **kwargs)
            entries = self._entries
            if len(entries) >= self._sweep_at:
                self._sweep(now)
            entries[key] = (now + self._ttl, value)
            return value

        return cached

    def _invalidating(self, call: Callable[..., Any]) -> Callable[..., Any]:
        async def write(*args: Any, **kwargs: Any) -> Any:
            try:
                return await call(*args, **kwargs)
            finally:
                self.invalidate()
                if self.on_write is not None:
                    self.on_write()

        return write
