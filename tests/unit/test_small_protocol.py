"""Timestamps, etags, registration IDs, twin merge patches, allocation."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from opendps.protocol import etag, timefmt
from opendps.protocol.regid import is_valid_registration_id
from opendps.protocol.twin_patch import TwinPatchError, merge
from opendps.provisioning.allocate import Candidate, choose_hub


def test_timestamp_has_seven_digits_and_z() -> None:
    value = datetime(2020, 4, 10, 3, 11, 13, 27699, tzinfo=UTC)
    assert timefmt.format_utc(value) == "2020-04-10T03:11:13.0276990Z"
    assert timefmt.parse_utc("2020-04-10T03:11:13.0276997Z") == value.replace(microsecond=27699)


def test_etag_quoting() -> None:
    assert etag.unquote('"abc"') == "abc" and etag.unquote("abc") == "abc"
    assert etag.unquote("*") == "*" and etag.unquote('W/"x"') == "x"
    assert etag.unquote(None) is None and etag.unquote('""') is None
    assert etag.quote("abc") == '"abc"'


@pytest.mark.parametrize("value,ok", [
    ("dev-01", True), ("a", True), ("A:b.c_d-e", True), ("x" * 128, True),
    ("x" * 129, False), ("-x", False), ("x-", False), ("a b", False), ("", False),
    ("é", False), ("a/b", False)])
def test_registration_id_rules(value: str, ok: bool) -> None:
    assert is_valid_registration_id(value) is ok


def test_twin_merge() -> None:
    base = {"a": 1, "b": {"c": 2, "d": 3}}
    assert merge(base, {"b": {"c": None, "e": 4}, "f": None, "$version": 9}) == {
        "a": 1, "b": {"d": 3, "e": 4}}
    deep: dict = {}
    cursor = deep
    for _ in range(12):
        cursor["x"] = {}
        cursor = cursor["x"]
    with pytest.raises(TwinPatchError):
        merge({}, deep)


def test_weighted_allocation_and_stability() -> None:
    hubs = [Candidate("h1", 1, True), Candidate("h2", 3, True)]
    ids = [f"dev-{i}" for i in range(4000)]
    first = {i: choose_hub(i, hubs) for i in ids}
    share = sum(1 for h in first.values() if h == "h2") / len(ids)
    assert 0.70 < share < 0.80
    # a hub excluded from allocation changes nothing for anyone
    more = [*hubs, Candidate("h3", 5, False)]
    assert all(choose_hub(i, more) == first[i] for i in ids)
    # adding a hub only moves devices onto the new hub
    plus = [*hubs, Candidate("h4", 1, True)]
    for i in ids:
        chosen = choose_hub(i, plus)
        assert chosen in (first[i], "h4")
    # static assignment picks the enrollment's hub whatever the hash says
    from opendps.protocol.enrollment import EnrollmentView
    from opendps.provisioning.allocation_policy import AllocationSettings, Allocator
    from opendps.store.interface import HubRecord

    doc = {"attestation": {"type": "symmetricKey"}, "allocationPolicy": "static",
           "iotHubs": ["h1", "h2"]}
    linked = [HubRecord("h1", True, None, 1), HubRecord("h2", True, None, 3)]
    choice = asyncio.run(Allocator(AllocationSettings(), None).choose(
        enrollment=EnrollmentView("individual", "x", doc, "e"), linked=linked,
        registration_id="x", attestation=("symmetricKey", {}), payload=None,
        current_hub=None, current_device_id=None))
    assert choice.hub == "h1"
