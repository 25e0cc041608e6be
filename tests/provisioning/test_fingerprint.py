"""The allocation fingerprint stored in every record: remembering it for the usual enrollment
(no custom allocation) must give exactly what the stored records hold, or every registered
device would move on its next registration."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from opendps.protocol.enrollment import EnrollmentView
from opendps.provisioning.assign import allocation_fingerprint


def _as_stored(doc: dict[str, Any], policy: str) -> str:
    """The fingerprint's definition, as records written before the memo hold it."""
    hubs = list(doc.get("iotHubs") or []) or ([doc["iotHubHostName"]]
                                              if doc.get("iotHubHostName") else [])
    relevant = {"policy": policy, "hubs": sorted(h.lower() for h in hubs),
                "custom": doc.get("customAllocationDefinition")}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


DOCS = [
    {},
    {"iotHubs": ["b.example", "A.example"]},
    {"iotHubs": ["a.example", "b.example"]},
    {"iotHubHostName": "c.example"},
    {"customAllocationDefinition": {"webhookUrl": "https://w.example/x", "apiVersion": "2021"}},
    {"customAllocationDefinition": {"webhookUrl": "https://w.example/y", "apiVersion": "2021"},
     "iotHubs": ["a.example"]},
]


@pytest.mark.parametrize("policy", ["hashed", "static", "geoLatency", "custom"])
def test_the_fingerprint_is_the_stored_one_first_and_again(policy: str) -> None:
    for i, doc in enumerate(DOCS):
        view = EnrollmentView("group", f"g{i}", doc, f"etag{i}")
        expected = _as_stored(doc, policy)
        assert allocation_fingerprint(view, policy) == expected
        assert allocation_fingerprint(view, policy) == expected  # remembered, or not


def test_what_moves_a_device_still_changes_it() -> None:
    prints = {allocation_fingerprint(EnrollmentView("group", "g", doc, "e"), "hashed")
              for doc in DOCS}
    # the two hub lists differ only in order and case: the same allocation
    assert len(prints) == len(DOCS) - 1
    assert (allocation_fingerprint(EnrollmentView("group", "g", {}, "e"), "hashed")
            != allocation_fingerprint(EnrollmentView("group", "g", {}, "e"), "static"))
