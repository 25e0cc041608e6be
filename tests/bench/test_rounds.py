"""``bench/rounds.py``: interleaved rounds give medians and per-round ratios, never a ratio
of two figures measured in different rounds."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).parents[2] / "bench" / "rounds.py"
_spec = importlib.util.spec_from_file_location("bench_rounds", _PATH)
assert _spec is not None and _spec.loader is not None
rounds = importlib.util.module_from_spec(_spec)
sys.modules["bench_rounds"] = rounds
_spec.loader.exec_module(rounds)


def _result(rate: float, cpu: float, errors: dict[str, int] | None = None) -> dict:
    errors = errors or {}
    return {"registrations_per_s": rate, "server_cpu_ms_per_registration": cpu,
            "completed": 100, "errors": errors, "error_count": sum(errors.values())}


def test_order_alternates() -> None:
    where = ["opendps", "floor", "nginx"]
    assert rounds.order(where, 0) == where
    assert rounds.order(where, 1) == ["nginx", "floor", "opendps"]
    assert rounds.order(where, 2) == where


def test_single_round_is_unchanged() -> None:
    one = _result(500.0, 1.2)
    assert rounds.merge([one]) is one
    assert rounds.ratio(one, _result(1000.0, 0.6), "registrations_per_s") == 0.5


def test_merge_takes_medians_and_sums_counts() -> None:
    merged = rounds.merge([_result(400.0, 1.5, {"503": 1}), _result(600.0, 1.1),
                           _result(500.0, 1.3, {"503": 2, "timeout": 1})])
    assert merged["registrations_per_s"] == 500.0
    assert merged["server_cpu_ms_per_registration"] == 1.3
    assert merged["completed"] == 300
    assert merged["errors"] == {"503": 3, "timeout": 1}
    assert merged["error_count"] == 4
    assert [r["registrations_per_s"] for r in merged["rounds"]] == [400.0, 600.0, 500.0]


def test_ratio_is_the_median_of_per_round_ratios() -> None:
    # the machine slowed down in round 2: both sides halved, the ratio did not move
    ours = rounds.merge([_result(600.0, 1.0), _result(300.0, 2.0), _result(630.0, 1.0)])
    floor = rounds.merge([_result(1000.0, 0.5), _result(500.0, 1.0), _result(900.0, 0.5)])
    assert rounds.ratio(ours, floor, "registrations_per_s") == pytest.approx(0.6)
    # the ratio of the medians would be 600 / 900
    assert ours["registrations_per_s"] / floor["registrations_per_s"] == pytest.approx(2 / 3)


def test_ratio_falls_back_when_rounds_differ() -> None:
    ours = rounds.merge([_result(600.0, 1.0), _result(500.0, 1.0)])
    assert rounds.ratio(ours, _result(1000.0, 0.5), "registrations_per_s") == 0.55
    assert rounds.ratio(ours, {}, "registrations_per_s") is None
