"""Lowest-latency allocation: nearest hub wins, ties go to the weighted hash, unknown locations
lose to known ones, hubs outside the allocation policy are skipped."""

from __future__ import annotations

from collections import Counter

import pytest

from opendps.protocol.errors import DpsError, ErrorCode
from opendps.provisioning.allocate import Candidate, choose_hub
from opendps.provisioning.geo import (
    DEFAULT_LATENCY_TABLE,
    UNKNOWN_LATENCY_MS,
    LatencyTable,
    LocatedHub,
    choose_lowest_latency,
)
from opendps.store.interface import HubRecord

IDS = [f"device-{n}" for n in range(400)]


def test_nearest_hub_wins() -> None:
    hubs = [LocatedHub("east.hub", "eastus"), LocatedHub("west2.hub", "westus2"),
            LocatedHub("eu.hub", "westeurope")]
    assert {choose_lowest_latency("westus", hubs, r) for r in IDS} == {"west2.hub"}
    assert {choose_lowest_latency("northeurope", hubs, r) for r in IDS} == {"eu.hub"}
    assert {choose_lowest_latency("East US", hubs, r) for r in IDS} == {"east.hub"}


def test_same_location_is_zero_and_names_are_normalized() -> None:
    table = DEFAULT_LATENCY_TABLE
    assert table.latency("West Europe", "westeurope") == 0
    assert table.latency("west-us-2", "WestUS2") == 0
    assert table.latency("westus", "eastus") == table.latency("eastus", "westus") == 62
    assert table.latency("", "") == UNKNOWN_LATENCY_MS


def test_ties_go_to_the_weighted_hash() -> None:
    hubs = [LocatedHub("a.hub", "westus", weight=3), LocatedHub("b.hub", "westus", weight=1),
            LocatedHub("far.hub", "japaneast", weight=100)]
    tied = [Candidate("a.hub", 3, True), Candidate("b.hub", 1, True)]
    picks = Counter(choose_lowest_latency("westus", hubs, r) for r in IDS)
    for r in IDS:
        assert choose_lowest_latency("westus", hubs, r) == choose_hub(r, tied)
    assert set(picks) == {"a.hub", "b.hub"}
    assert 2 < picks["a.hub"] / picks["b.hub"] < 4.5  # about 3:1
    # the same device always lands on the same hub
    assert choose_lowest_latency("westus", list(reversed(hubs)), "device-7") == \
        choose_lowest_latency("westus", hubs, "device-7")


def test_weight_zero_only_takes_devices_when_alone_at_the_best_latency() -> None:
    hubs = [LocatedHub("zero.hub", "westus", weight=0), LocatedHub("one.hub", "westus")]
    assert {choose_lowest_latency("westus", hubs, r) for r in IDS} == {"one.hub"}
    assert choose_lowest_latency("westus", hubs[:1], "d") == "zero.hub"


def test_unknown_locations() -> None:
    hubs = [LocatedHub("known.hub", "eastus"), LocatedHub("nowhere.hub", "moonbase"),
            LocatedHub("blank.hub", "")]
    # a known pair beats an unknown one, however far
    assert {choose_lowest_latency("japaneast", hubs, r) for r in IDS} == {"known.hub"}
    # an instance whose location nobody knows: every hub ties, so the hash spreads devices
    spread = {choose_lowest_latency("atlantis", hubs, r) for r in IDS}
    assert spread == {"known.hub", "nowhere.hub", "blank.hub"}
    # an unknown location still matches itself
    assert {choose_lowest_latency("moonbase", hubs, r) for r in IDS} == {"nowhere.hub"}


def test_apply_allocation_policy_false_is_skipped() -> None:
    hubs = [LocatedHub("near.hub", "westus", apply_allocation_policy=False),
            LocatedHub("far.hub", "westeurope")]
    assert {choose_lowest_latency("westus", hubs, r) for r in IDS} == {"far.hub"}
    with pytest.raises(DpsError) as caught:
        choose_lowest_latency("westus", hubs[:1], "d")
    assert caught.value.code == ErrorCode.HUB_NOT_LINKED


def test_custom_table() -> None:
    table = LatencyTable.from_rows([("plant-a", "dc-1", 5), ("plant-a", "dc-2", 40),
                                    ("dc-2", "plant-b", 3)], unknown_ms=1_000)
    hubs = [LocatedHub("one.hub", "dc-1"), LocatedHub("two.hub", "dc-2")]
    assert choose_lowest_latency("plant-a", hubs, "d", table) == "one.hub"
    assert choose_lowest_latency("Plant B", hubs, "d", table) == "two.hub"
    assert table.latency("dc-1", "plant-b") == 1_000
    with pytest.raises(ValueError):
        LatencyTable({("a", "b"): -1})


def test_located_hub_from_a_store_record() -> None:
    record = HubRecord("hub.example", True, None, allocation_weight=4,
                       apply_allocation_policy=False, location="westus")
    assert LocatedHub.of(record) == LocatedHub("hub.example", "westus", 4, False)
