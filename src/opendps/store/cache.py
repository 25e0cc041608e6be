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


class CachedStore:
    def __init__(self, inner: Store, *, ttl: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._inner = inner
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[tuple[Any, ...], tuple[float, Any]] = {}
        # told after every write through this cache (a cluster tells the other instances)
        self.on_write: Callable[[], None] | None = None

    def invalidate(self) -> None:
        self._entries.clear()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name in _CACHED:
            return self._cached(name, attr)
        if name in _INVALIDATING:
            return self._invalidating(attr)
        return attr

    def _cached(self, name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        async def cached(*args: Any, **kwargs: Any) -> Any:
            key = (name, *args, *sorted(kwargs.items()))
            now = self._clock()
            hit = self._entries.get(key)
            if hit is not None and hit[0] > now:
                return hit[1]
            value = await call(*args, **kwargs)
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (now + self._ttl, value)
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
