"""Interleaved rounds: a figure and its reference measured in turns, not minutes apart.

On a shared VM the machine's speed drifts by a quarter within minutes, so opendps measured
once and the floor measured once afterwards can land on different machines. With ``--rounds
R`` ``run_all.py`` runs opendps and its references R times in alternating order (ABBA: a
drift that favours whoever runs second cancels), and the ratio is the median of the R
per-round ratios; each figure is the median of its rounds.
"""

from __future__ import annotations

from statistics import median
from typing import Any

# per-round figures kept in the merged result, and reduced to their median
MEDIAN_KEYS = ("registrations_per_s", "server_cpu_ms_per_registration",
               "client_cpu_ms_per_registration", "p50_ms", "p95_ms", "p99_ms",
               "machine_steal_pct", "server_peak_rss_mib", "duration_s")


def order(where: list[str], round_no: int) -> list[str]:
    """Round 0 as given, round 1 reversed, and so on."""
    return list(where) if round_no % 2 == 0 else list(reversed(where))


def merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One result from several rounds of the same phase: medians, summed counts and errors,
    and every round's figures under ``rounds``."""
    if len(results) == 1:
        return results[0]
    merged = dict(results[-1])
    for key in MEDIAN_KEYS:
        values = [r[key] for r in results if r.get(key) is not None]
        merged[key] = round(median(values), 3) if values else None
    errors: dict[str, int] = {}
    for r in results:
        for code, n in r.get("errors", {}).items():
            errors[code] = errors.get(code, 0) + n
    merged["errors"] = errors
    merged["error_count"] = sum(errors.values())
    merged["completed"] = sum(r.get("completed", 0) for r in results)
    merged["rounds"] = [{k: r.get(k) for k in MEDIAN_KEYS} for r in results]
    return merged


def ratio(ours: dict[str, Any], theirs: dict[str, Any], key: str) -> float | None:
    """The median of per-round ratios when both sides ran in the same rounds; otherwise the
    ratio of the two figures."""
    a_rounds, b_rounds = ours.get("rounds"), theirs.get("rounds")
    if a_rounds and b_rounds and len(a_rounds) == len(b_rounds):
        pairs = [(a.get(key), b.get(key)) for a, b in zip(a_rounds, b_rounds, strict=True)]
        values = [a / b for a, b in pairs if a and b]
        return median(values) if values else None
    a, b = ours.get(key), theirs.get(key)
    return a / b if a and b else None

