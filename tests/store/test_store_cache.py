"""The read-through cache: hits, invalidation by writes through it, expiry."""

from __future__ import annotations

from opendps.store import MemoryStore
from opendps.store.cache import CachedStore


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def get_enrollment(self, kind, key):  # type: ignore[no-untyped-def,override]
        self.reads += 1
        return await super().get_enrollment(kind, key)


async def test_hits_invalidation_and_expiry() -> None:
    now = [0.0]
    inner = CountingStore()
    store = CachedStore(inner, ttl=2.0, clock=lambda: now[0])
    assert await store.get_enrollment("individual", "a") is None
    assert await store.get_enrollment("individual", "a") is None
    assert inner.reads == 1  # the miss is cached too
    await store.put_enrollment("individual", "a", {"v": 1}, if_match=None,
                               attestation_type="symmetricKey", enabled=True)
    got = await store.get_enrollment("individual", "a")
    assert got is not None and got.doc == {"v": 1} and inner.reads == 2
    # a write by someone else (another instance) shows after the TTL
    await inner.put_enrollment("individual", "a", {"v": 2}, if_match=None,
                               attestation_type="symmetricKey", enabled=True)
    assert (await store.get_enrollment("individual", "a")).doc == {"v": 1}
    now[0] = 2.5
    assert (await store.get_enrollment("individual", "a")).doc == {"v": 2}
    # uncached calls pass straight through
    await store.put_setting("k", "v")
    assert await store.get_setting("k") == "v"
