"""Contract: CA certificates — case-insensitive names, etags, compare-and-swap, listing."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from opendps.store import EtagMismatch, NotFound, Store, StoredDoc

PEM = "-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n"


def _cert(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name, "certificate": PEM, "subject": f"CN={name}",
        "thumbprint": "AB" * 20, "isVerified": False, "verificationCode": None, **extra,
    }


async def test_crud_and_case_insensitive_names(store: Store) -> None:
    assert await store.get_ca_certificate("Root-CA") is None
    assert await store.list_ca_certificates() == []
    assert await store.count_ca_certificates() == 0

    first = await store.put_ca_certificate("Root-CA", _cert("Root-CA"), if_match=None)
    assert first.key == "Root-CA" and first.doc == _cert("Root-CA") and first.etag
    assert first.created == first.updated and first.created.utcoffset() == timedelta(0)
    got = await store.get_ca_certificate("ROOT-ca")
    assert got == first  # exact round-trip, PEM newlines, microseconds and tz included

    # Another spelling is the same certificate; the latest spelling is kept.
    verified = _cert("Root-CA", isVerified=True)
    second = await store.put_ca_certificate("root-ca", verified, if_match=None)
    assert second.key == "root-ca" and second.etag != first.etag
    assert second.created == first.created and second.updated >= first.updated
    got = await store.get_ca_certificate("Root-CA")
    assert got == second and got.doc["isVerified"] is True
    assert await store.count_ca_certificates() == 1
    assert await store.list_ca_certificates() == [second]

    await store.delete_ca_certificate("ROOT-CA", if_match=None)
    assert await store.get_ca_certificate("root-ca") is None
    assert await store.count_ca_certificates() == 0
    assert await store.list_ca_certificates() == []


async def test_if_match_semantics(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.put_ca_certificate("ca", {"v": 0}, if_match="*")
    with pytest.raises(NotFound):
        await store.put_ca_certificate("ca", {"v": 0}, if_match="some-etag")
    assert await store.get_ca_certificate("ca") is None
    assert await store.count_ca_certificates() == 0

    created = await store.put_ca_certificate("ca", {"v": 1}, if_match=None)
    star = await store.put_ca_certificate("CA", {"v": 2}, if_match="*")
    assert star.key == "CA" and star.created == created.created
    with pytest.raises(EtagMismatch):
        await store.put_ca_certificate("ca", {"v": 3}, if_match=created.etag)
    matched = await store.put_ca_certificate("Ca", {"v": 4}, if_match=star.etag)
    quoted = await store.put_ca_certificate("ca", {"v": 5}, if_match=f'"{matched.etag}"')
    got = await store.get_ca_certificate("cA")
    assert got is not None and got.doc == {"v": 5} and got.etag == quoted.etag
    assert got.key == "ca"


async def test_delete_semantics(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.delete_ca_certificate("x", if_match=None)
    with pytest.raises(NotFound):
        await store.delete_ca_certificate("x", if_match="*")
    with pytest.raises(NotFound):
        await store.delete_ca_certificate("x", if_match="some-etag")
    stored = await store.put_ca_certificate("X", {"v": 1}, if_match=None)
    with pytest.raises(EtagMismatch):
        await store.delete_ca_certificate("x", if_match="stale")
    assert await store.get_ca_certificate("x") is not None
    await store.delete_ca_certificate("x", if_match=f'"{stored.etag}"')
    assert await store.get_ca_certificate("X") is None
    await store.put_ca_certificate("y", {}, if_match=None)
    await store.delete_ca_certificate("Y", if_match="*")
    with pytest.raises(NotFound):
        await store.delete_ca_certificate("y", if_match="*")
    # an etag never outlives its row: re-creating gives a new one
    again = await store.put_ca_certificate("X", {"v": 2}, if_match=None)
    assert again.etag != stored.etag and again.created >= stored.created
    with pytest.raises(EtagMismatch):
        await store.delete_ca_certificate("X", if_match=stored.etag)


async def test_concurrent_compare_and_swap_has_one_winner(store: Store) -> None:
    base = await store.put_ca_certificate("Race", {"writer": None}, if_match=None)
    results = await asyncio.gather(
        *(
            store.put_ca_certificate("race", {"writer": i}, if_match=base.etag)
            for i in range(8)
        ),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, StoredDoc)]
    losers = [r for r in results if not isinstance(r, StoredDoc)]
    assert len(winners) == 1, results
    assert all(isinstance(r, EtagMismatch) for r in losers), results
    got = await store.get_ca_certificate("RACE")
    assert got == winners[0]

    deletes = await asyncio.gather(
        *(store.delete_ca_certificate("race", if_match=got.etag) for _ in range(5)),
        return_exceptions=True,
    )
    assert deletes.count(None) == 1, deletes
    assert all(isinstance(r, NotFound) for r in deletes if r is not None), deletes
    assert await store.get_ca_certificate("race") is None


async def test_concurrent_read_modify_write_loses_nothing(store: Store) -> None:
    await store.put_ca_certificate("counter", {"n": 0}, if_match=None)

    async def bump() -> None:
        while True:
            current = await store.get_ca_certificate("Counter")
            assert current is not None
            try:
                await store.put_ca_certificate(
                    "counter", {"n": current.doc["n"] + 1}, if_match=current.etag
                )
                return
            except EtagMismatch:
                await asyncio.sleep(0)

    await asyncio.gather(*(bump() for _ in range(6)))
    got = await store.get_ca_certificate("counter")
    assert got is not None and got.doc == {"n": 6}


async def test_list_ordered_by_folded_name_and_count(store: Store) -> None:
    for name in ("b-ca", "A-ca", "c-CA", "D-ca", "a-ca2"):
        await store.put_ca_certificate(name, {"name": name}, if_match=None)
    await store.put_ca_certificate("B-CA", {"name": "B-CA"}, if_match=None)  # same as b-ca
    listed = await store.list_ca_certificates()
    assert [d.key for d in listed] == ["A-ca", "a-ca2", "B-CA", "c-CA", "D-ca"]
    assert [d.doc["name"] for d in listed] == [d.key for d in listed]
    assert await store.count_ca_certificates() == 5
    for doc in listed:
        assert await store.get_ca_certificate(doc.key.swapcase()) == doc
    await store.delete_ca_certificate("a-CA", if_match=None)
    assert await store.count_ca_certificates() == 4
    assert [d.key for d in await store.list_ca_certificates()] == [
        "a-ca2", "B-CA", "c-CA", "D-ca"
    ]


async def test_certificates_are_separate_from_enrollments(store: Store) -> None:
    await store.put_enrollment(
        "group", "same", {"kind": "group"}, if_match=None,
        attestation_type="x509", enabled=True,
    )
    assert await store.get_ca_certificate("same") is None
    await store.put_ca_certificate("same", {"kind": "ca"}, if_match=None)
    group = await store.get_enrollment("group", "same")
    assert group is not None and group.doc == {"kind": "group"}
    await store.delete_ca_certificate("same", if_match=None)
    assert await store.get_enrollment("group", "same") is not None


async def test_docs_are_copies(store: Store) -> None:
    doc: dict[str, Any] = {"thumbprints": ["a", "b"], "pair": (1, 2)}
    stored = await store.put_ca_certificate("copy", doc, if_match=None)
    assert stored.doc == {"thumbprints": ["a", "b"], "pair": [1, 2]}  # JSON-normalised
    doc["thumbprints"].append("c")
    stored.doc["thumbprints"].append("d")
    got = await store.get_ca_certificate("copy")
    assert got is not None and got.doc["thumbprints"] == ["a", "b"]
    got.doc["thumbprints"].append("e")
    listed = await store.list_ca_certificates()
    assert listed[0].doc["thumbprints"] == ["a", "b"]
