"""Contract: registration records (case-insensitive, paged by group) and operations."""

from __future__ import annotations

import pytest

from opendps.store import EtagMismatch, NotFound, Store


async def test_registration_upsert_and_case(store: Store) -> None:
    assert await store.get_registration("Dev-A") is None
    first = await store.put_registration(
        "Dev-A", {"status": "assigning"}, group_id="Group-1", device_id=None, assigned_hub=None
    )
    assert first.key == "Dev-A"
    assert await store.get_registration("dev-a") == first
    second = await store.put_registration(
        "DEV-A", {"status": "assigned"}, group_id="group-1", device_id="Dev-A",
        assigned_hub="h.example.net",
    )
    assert second.etag != first.etag and second.created == first.created
    got = await store.get_registration("dev-A")
    assert got is not None and got.key == "DEV-A" and got.doc == {"status": "assigned"}


async def test_registration_delete(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.delete_registration("nope", if_match=None)
    stored = await store.put_registration(
        "r1", {}, group_id=None, device_id=None, assigned_hub=None
    )
    with pytest.raises(EtagMismatch):
        await store.delete_registration("R1", if_match="stale")
    await store.delete_registration("R1", if_match=stored.etag)
    assert await store.get_registration("r1") is None
    with pytest.raises(NotFound):
        await store.delete_registration("r1", if_match=stored.etag)


async def test_query_registrations_by_group_paged(store: Store) -> None:
    for i in range(7):
        await store.put_registration(
            f"Reg-{i}", {"i": i}, group_id="GroupA" if i != 3 else "other", device_id=None,
            assigned_hub=None,
        )
    await store.put_registration(
        "lonely", {}, group_id=None, device_id=None, assigned_hub=None
    )
    keys: list[str] = []
    continuation: str | None = None
    pages = 0
    while True:
        page = await store.query_registrations("groupa", limit=2, continuation=continuation)
        pages += 1
        keys += [doc.key for doc in page.items]
        continuation = page.continuation
        if continuation is None:
            break
    assert keys == ["Reg-0", "Reg-1", "Reg-2", "Reg-4", "Reg-5", "Reg-6"] and pages == 3
    other = await store.query_registrations("OTHER", limit=10, continuation=None)
    assert [d.key for d in other.items] == ["Reg-3"] and other.continuation is None


async def test_operations(store: Store) -> None:
    assert await store.get_operation("op-1") is None
    await store.put_operation("op-1", "Reg-1", {"status": "assigning"})
    first = await store.get_operation("op-1")
    assert first is not None and first.key == "op-1" and first.doc == {"status": "assigning"}
    await store.put_operation("op-1", "Reg-1", {"status": "assigned"})
    second = await store.get_operation("op-1")
    assert second is not None and second.doc == {"status": "assigned"}
    assert second.etag != first.etag and second.created == first.created
    assert await store.get_operation("OP-1") is None  # operation IDs are opaque, exact
