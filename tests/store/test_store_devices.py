"""Contract: device identities and twins — case-sensitive IDs, etags, CAS under concurrency."""

from __future__ import annotations

import asyncio

import pytest

from opendps.store import EtagMismatch, NotFound, Store, StoredDoc

HUB = "h1.example.net"


async def test_device_ids_are_case_sensitive(store: Store) -> None:
    await store.put_device(HUB, "Dev", {"n": "upper"}, if_match=None)
    await store.put_device(HUB, "dev", {"n": "lower"}, if_match=None)
    upper = await store.get_device(HUB, "Dev")
    lower = await store.get_device(HUB, "dev")
    assert upper is not None and upper.doc == {"n": "upper"} and upper.key == "Dev"
    assert lower is not None and lower.doc == {"n": "lower"}
    assert await store.get_device("other.example.net", "Dev") is None


async def test_device_etags(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.put_device(HUB, "d", {}, if_match="*")
    first = await store.put_device(HUB, "d", {"v": 1}, if_match=None)
    with pytest.raises(EtagMismatch):
        await store.put_device(HUB, "d", {"v": 2}, if_match="stale")
    second = await store.put_device(HUB, "d", {"v": 2}, if_match=first.etag)
    assert second.created == first.created and second.etag != first.etag
    assert await store.get_device(HUB, "d") == second


async def test_add_device_stores_only_the_first(store: Store) -> None:
    first = await store.add_device(HUB, "n", {"v": 1})
    assert first is not None and first.doc == {"v": 1}
    assert await store.add_device(HUB, "n", {"v": 2}) is None
    assert await store.get_device(HUB, "n") == first
    assert await store.add_device(HUB, "N", {"v": 3}) is not None  # IDs are case-sensitive


async def test_add_twin_stores_only_the_first(store: Store) -> None:
    first = await store.add_twin(HUB, "t", {"v": 1})
    assert first is not None and first.doc == {"v": 1}
    assert await store.add_twin(HUB, "t", {"v": 2}) is None
    assert await store.get_twin(HUB, "t") == first
    assert (await store.add_twin("other.example.net", "t", {"v": 3})) is not None


async def test_delete_device_removes_twin(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.delete_device(HUB, "gone", if_match=None)
    device = await store.put_device(HUB, "d", {}, if_match=None)
    await store.put_twin(HUB, "d", {"properties": {}}, if_match=None)
    with pytest.raises(EtagMismatch):
        await store.delete_device(HUB, "d", if_match="stale")
    assert await store.get_twin(HUB, "d") is not None  # a failed delete keeps the twin
    await store.delete_device(HUB, "d", if_match=device.etag)
    assert await store.get_device(HUB, "d") is None
    assert await store.get_twin(HUB, "d") is None


async def test_list_devices_paged_per_hub(store: Store) -> None:
    ids = ["b", "A", "c", "B", "a", "d", "e"]
    for device_id in ids:
        await store.put_device(HUB, device_id, {"id": device_id}, if_match=None)
    await store.put_device("other.example.net", "zzz", {}, if_match=None)
    pages: list[list[str]] = []
    continuation: str | None = None
    while True:
        page = await store.list_devices(HUB, limit=3, continuation=continuation)
        pages.append([d.key for d in page.items])
        continuation = page.continuation
        if continuation is None:
            break
    assert pages == [["A", "B", "a"], ["b", "c", "d"], ["e"]]  # code-point order


async def test_twin_compare_and_swap(store: Store) -> None:
    assert await store.get_twin(HUB, "t") is None
    with pytest.raises(NotFound):
        await store.put_twin(HUB, "t", {}, if_match="x")
    first = await store.put_twin(HUB, "t", {"v": 0}, if_match=None)
    second = await store.put_twin(HUB, "t", {"v": 1}, if_match=first.etag)
    with pytest.raises(EtagMismatch):
        await store.put_twin(HUB, "t", {"v": 2}, if_match=first.etag)
    assert await store.get_twin(HUB, "t") == second


async def test_concurrent_cas_exactly_one_wins(store: Store) -> None:
    base = await store.put_twin(HUB, "race", {"v": -1}, if_match=None)

    async def attempt(i: int) -> StoredDoc | Exception:
        try:
            return await store.put_twin(HUB, "race", {"v": i}, if_match=base.etag)
        except EtagMismatch as exc:
            return exc

    results = await asyncio.gather(*(attempt(i) for i in range(10)))
    winners = [r for r in results if isinstance(r, StoredDoc)]
    assert len(winners) == 1
    assert all(isinstance(r, EtagMismatch) for r in results if r is not winners[0])
    assert await store.get_twin(HUB, "race") == winners[0]
