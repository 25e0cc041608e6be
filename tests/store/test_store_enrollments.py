"""Contract: enrollments — etags, case-insensitive keys, paging, attestation lookup."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

import pytest

from opendps.store import (
    EnrollmentKind,
    EtagMismatch,
    InvalidContinuation,
    NotFound,
    Store,
    StoreError,
)

KINDS: list[EnrollmentKind] = ["individual", "group"]


async def _put(
    store: Store, kind: EnrollmentKind, key: str, doc: dict[str, Any] | None = None,
    if_match: str | None = None, attestation: str = "symmetricKey", enabled: bool = True,
) -> Any:
    return await store.put_enrollment(
        kind, key, doc if doc is not None else {"id": key}, if_match=if_match,
        attestation_type=attestation, enabled=enabled,
    )


@pytest.mark.parametrize("kind", KINDS)
async def test_upsert_and_case_insensitive_key(store: Store, kind: EnrollmentKind) -> None:
    assert await store.get_enrollment(kind, "Dev-1") is None
    first = await _put(store, kind, "Dev-1", {"v": 1})
    assert first.key == "Dev-1" and first.doc == {"v": 1} and first.etag
    assert first.created == first.updated and first.created.utcoffset() == timedelta(0)
    got = await store.get_enrollment(kind, "DEV-1")
    assert got == first  # exact round-trip, microseconds and tz included
    second = await _put(store, kind, "dev-1", {"v": 2})
    assert second.key == "dev-1" and second.etag != first.etag
    assert second.created == first.created and second.updated >= first.updated
    got = await store.get_enrollment(kind, "Dev-1")
    assert got is not None and got.key == "dev-1" and got.doc == {"v": 2}


@pytest.mark.parametrize("kind", KINDS)
async def test_if_match_semantics(store: Store, kind: EnrollmentKind) -> None:
    with pytest.raises(NotFound):
        await _put(store, kind, "e", if_match="*")
    with pytest.raises(NotFound):
        await _put(store, kind, "e", if_match="some-etag")
    assert await store.get_enrollment(kind, "e") is None
    created = await _put(store, kind, "e", {"v": 1})
    star = await _put(store, kind, "E", {"v": 2}, if_match="*")
    with pytest.raises(EtagMismatch):
        await _put(store, kind, "e", {"v": 3}, if_match=created.etag)
    matched = await _put(store, kind, "e", {"v": 4}, if_match=star.etag)
    quoted = await _put(store, kind, "e", {"v": 5}, if_match=f'"{matched.etag}"')
    got = await store.get_enrollment(kind, "e")
    assert got is not None and got.doc == {"v": 5} and got.etag == quoted.etag


@pytest.mark.parametrize("kind", KINDS)
async def test_delete_semantics(store: Store, kind: EnrollmentKind) -> None:
    with pytest.raises(NotFound):
        await store.delete_enrollment(kind, "x", if_match=None)
    stored = await _put(store, kind, "X")
    with pytest.raises(EtagMismatch):
        await store.delete_enrollment(kind, "x", if_match="stale")
    await store.delete_enrollment(kind, "x", if_match=stored.etag)
    assert await store.get_enrollment(kind, "X") is None
    await _put(store, kind, "y")
    await store.delete_enrollment(kind, "Y", if_match="*")
    await _put(store, kind, "z")
    await store.delete_enrollment(kind, "z", if_match=None)
    with pytest.raises(NotFound):
        await store.delete_enrollment(kind, "z", if_match="*")


async def test_kinds_are_separate(store: Store) -> None:
    await _put(store, "individual", "same", {"kind": "individual"})
    await _put(store, "group", "same", {"kind": "group"})
    ind = await store.get_enrollment("individual", "same")
    grp = await store.get_enrollment("group", "same")
    assert ind is not None and ind.doc == {"kind": "individual"}
    assert grp is not None and grp.doc == {"kind": "group"}


@pytest.mark.parametrize("kind", KINDS)
async def test_paging_three_pages(store: Store, kind: EnrollmentKind) -> None:
    keys = ["b-2", "A-1", "c-3", "D-4", "e-5", "F-6", "g-7"]
    for key in keys:
        await _put(store, kind, key)
    seen: list[list[str]] = []
    continuation: str | None = None
    for _ in range(3):
        page = await store.query_enrollments(kind, limit=3, continuation=continuation)
        seen.append([doc.key for doc in page.items])
        continuation = page.continuation
    assert seen == [["A-1", "b-2", "c-3"], ["D-4", "e-5", "F-6"], ["g-7"]]
    assert continuation is None


async def test_paging_exact_multiple_and_empty(store: Store) -> None:
    empty = await store.query_enrollments("group", limit=5, continuation=None)
    assert empty.items == [] and empty.continuation is None
    for key in ("a", "b", "c", "d"):
        await _put(store, "group", key)
    first = await store.query_enrollments("group", limit=2, continuation=None)
    assert first.continuation is not None
    second = await store.query_enrollments("group", limit=2, continuation=first.continuation)
    assert [d.key for d in second.items] == ["c", "d"] and second.continuation is None


async def test_bad_continuation_and_limit(store: Store) -> None:
    with pytest.raises(InvalidContinuation) as info:
        await store.query_enrollments("individual", limit=2, continuation="!!not-a-token")
    assert isinstance(info.value, StoreError) and isinstance(info.value, ValueError)
    with pytest.raises(ValueError):
        await store.query_enrollments("individual", limit=0, continuation=None)


async def test_groups_by_attestation(store: Store) -> None:
    await _put(store, "group", "G2", attestation="symmetricKey", enabled=False)
    await _put(store, "group", "g1", attestation="symmetricKey")
    await _put(store, "group", "g3", attestation="x509")
    await _put(store, "individual", "i1", attestation="symmetricKey")
    found = await store.groups_by_attestation("symmetricKey")
    assert [d.key for d in found] == ["g1", "G2"]
    assert [d.key for d in await store.groups_by_attestation("x509")] == ["g3"]
    assert await store.groups_by_attestation("tpm") == []
    # re-putting with a different attestation moves the group
    await _put(store, "group", "g3", attestation="symmetricKey")
    assert await store.groups_by_attestation("x509") == []


async def test_docs_are_copies(store: Store) -> None:
    doc: dict[str, Any] = {"nested": {"list": [1, 2]}, "tuple": (1, 2)}
    stored = await _put(store, "individual", "copy", doc)
    assert stored.doc == {"nested": {"list": [1, 2]}, "tuple": [1, 2]}  # JSON-normalised
    doc["nested"]["list"].append(3)
    stored.doc["nested"]["list"].append(4)
    got = await store.get_enrollment("individual", "copy")
    assert got is not None and got.doc["nested"] == {"list": [1, 2]}
    assert got.created.tzinfo is not None and got.created.utcoffset() == UTC.utcoffset(None)
