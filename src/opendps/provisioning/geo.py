"""Lowest-latency (``geoLatency``) allocation, pure: no I/O, no clock.

Azure measures how far a device is from each linked hub. A self-hosted service cannot, so the
model is explicit (see ``docs/allocation.md``):

- every DPS instance has a ``location`` setting, and every linked hub a ``location`` (free-form
  region names such as ``westus``, ``eastus``, ``westeurope``; compared without case, spaces,
  hyphens or underscores, so ``West US`` is ``westus``);
- a device is taken to be near the instance it reached (geo DNS or anycast put it there), so a
  hub's latency is the latency between the instance's location and the hub's;
- a ``LatencyTable`` maps (location, location) to milliseconds: symmetric, 0 for the same
  location, ``unknown_ms`` (large) for a pair it does not know; the built-in table is a small,
  approximate set of Azure regions, meant to be replaced by your own measurements;
- linked hubs with ``applyAllocationPolicy`` false are skipped; among the rest the lowest
  latency wins, and hubs tied at that latency are split by the weighted hash the hashed policy
  uses (``allocate.choose_hub``), as Azure "hashes devices across those hubs".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..protocol.errors import DpsError, ErrorCode
from .allocate import Candidate, choose_hub

__all__ = [
    "DEFAULT_LATENCY_TABLE",
    "UNKNOWN_LATENCY_MS",
    "GeoCandidate",
    "LatencyTable",
    "LocatedHub",
    "choose_lowest_latency",
    "normalize_location",
]

# farther than any real pair: a known location always beats an unknown one
UNKNOWN_LATENCY_MS = 100_000.0


def normalize_location(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch not in " -_\t")


class LatencyTable:
    """(location, location) → milliseconds; symmetric, same location 0, unknown pairs large."""

    def __init__(self, pairs: Mapping[tuple[str, str], float] | None = None, *,
                 unknown_ms: float = UNKNOWN_LATENCY_MS) -> None:
        self.unknown_ms = unknown_ms
        self._ms: dict[frozenset[str], float] = {}
        for (a, b), ms in (pairs or {}).items():
            if ms < 0:
                raise ValueError(f"latency between {a} and {b} must not be negative")
            self._ms[frozenset((normalize_location(a), normalize_location(b)))] = float(ms)

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, str, float]], *,
                  unknown_ms: float = UNKNOWN_LATENCY_MS) -> LatencyTable:
        """From ``(a, b, ms)`` rows, the shape a TOML array of arrays gives."""
        return cls({(a, b): ms for a, b, ms in rows}, unknown_ms=unknown_ms)

    def latency(self, a: str, b: str) -> float:
        na, nb = normalize_location(a), normalize_location(b)
        if na and na == nb:
            return 0.0
        return self._ms.get(frozenset((na, nb)), self.unknown_ms)


# Approximate round trips between Azure regions in milliseconds, rounded; an illustration,
# not a measurement. Configure a table of your own sites for real use.
_AZURE_RTT_MS: dict[tuple[str, str], float] = {
    ("westus", "westus2"): 22, ("westus", "centralus"): 40, ("westus", "eastus"): 62,
    ("westus", "westeurope"): 140, ("westus", "northeurope"): 130,
    ("westus", "southeastasia"): 170, ("westus", "japaneast"): 105,
    ("westus2", "centralus"): 35, ("westus2", "eastus"): 67, ("westus2", "westeurope"): 140,
    ("westus2", "northeurope"): 125, ("westus2", "southeastasia"): 165,
    ("westus2", "japaneast"): 95,
    ("centralus", "eastus"): 25, ("centralus", "westeurope"): 100,
    ("centralus", "northeurope"): 90, ("centralus", "southeastasia"): 200,
    ("centralus", "japaneast"): 130,
    ("eastus", "westeurope"): 80, ("eastus", "northeurope"): 70,
    ("eastus", "southeastasia"): 215, ("eastus", "japaneast"): 150,
    ("westeurope", "northeurope"): 18, ("westeurope", "southeastasia"): 150,
    ("westeurope", "japaneast"): 225,
    ("northeurope", "southeastasia"): 165, ("northeurope", "japaneast"): 230,
    ("southeastasia", "japaneast"): 70,
}
DEFAULT_LATENCY_TABLE = LatencyTable(_AZURE_RTT_MS)


class GeoCandidate(Protocol):
    @property
    def host_name(self) -> str: ...
    @property
    def location(self) -> str: ...
    @property
    def weight(self) -> int: ...
    @property
    def apply_allocation_policy(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class LocatedHub:
    """A linked hub as lowest-latency allocation sees it."""

    host_name: str
    location: str
    weight: int = 1
    apply_allocation_policy: bool = True

    @classmethod
    def of(cls, hub: Any) -> LocatedHub:
        """From a store ``HubRecord`` (``allocation_weight``, ``location``)."""
        return cls(hub.host_name, hub.location, hub.allocation_weight,
                   hub.apply_allocation_policy)


def choose_lowest_latency(
    instance_location: str,
    candidates: Iterable[GeoCandidate],
    registration_id: str,
    table: LatencyTable = DEFAULT_LATENCY_TABLE,
) -> str:
    """The host name of the nearest hub to ``instance_location``; ties go to the weighted hash."""
    pool = [c for c in candidates if c.apply_allocation_policy]
    if not pool:
        raise DpsError(ErrorCode.HUB_NOT_LINKED,
                       "no linked IoT hub takes part in allocation for this enrollment")
    latency = {c.host_name: table.latency(instance_location, c.location) for c in pool}
    best = min(latency.values())
    nearest = [Candidate(c.host_name, c.weight, True) for c in pool
               if latency[c.host_name] == best]
    return choose_hub(registration_id, nearest)
