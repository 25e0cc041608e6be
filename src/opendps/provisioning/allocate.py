"""Choosing a hub. Issue 2 needs the evenly weighted (hashed) policy and static assignment;
the weighted hash is rendezvous hashing, so adding an unrelated hub moves no device."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from ..protocol.errors import DpsError, ErrorCode


@dataclass(frozen=True, slots=True)
class Candidate:
    host_name: str
    weight: int
    apply_allocation_policy: bool


def _score(registration_id: str, host: str, weight: int) -> float:
    digest = hashlib.sha256(f"{registration_id.lower()}\n{host.lower()}".encode()).digest()
    unit = (int.from_bytes(digest[:8], "big") + 1) / (2**64 + 1)
    return -weight / math.log(unit)


def choose_hub(registration_id: str, candidates: list[Candidate]) -> str:
    """The weighted hash over the hubs that take part in allocation. Which hubs are candidates
    (an enrollment's ``iotHubs``, static assignment) is ``allocation_policy.Allocator``'s call."""
    pool = [c for c in candidates if c.apply_allocation_policy]
    pool = [c for c in pool if c.weight > 0] or pool
    if not pool:
        raise DpsError(ErrorCode.HUB_NOT_LINKED, "no IoT hub is linked to this service")
    return max(pool, key=lambda c: _score(registration_id, c.host_name, max(c.weight, 1))).host_name
