"""``bench/run_all.py`` end to end in a tiny mode with two interleaved rounds: every phase
runs against a real opendps and the floor, the table comes out with per-round ratio ranges,
and no phase has errors. Never fails on speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parents[2] / "bench" / "run_all.py"


def test_run_all_two_rounds(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nbefore\n\n<!-- run_all:begin -->\nold\n<!-- run_all:end -->"
                   "\n\nafter\n")
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--devices", "60", "--rounds", "2", "--workers", "1",
         "--latency-seconds", "1", "--telemetry-devices", "5", "--telemetry-seconds", "1",
         "--idle", "20", "--hold", "0.5", "--json", str(out), "--write", str(doc)],
        capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads(out.read_text())
    for name in ("https-sk-opendps", "https-sk-floor", "mqtt-sk-opendps", "mqtt-sk-floor",
                 "https-x509-opendps", "https-x509-floor"):
        assert results[name]["error_count"] == 0, (name, results[name]["errors"])
        assert results[name]["completed"] == 2 * (60 if "sk" in name else 30), name
        assert len(results[name]["rounds"]) == 2, name
    for name in ("https-sk-half-rate", "mqtt-sk-half-rate", "telemetry-opendps",
                 "idle-opendps"):
        assert results[name]["error_count"] == 0, (name, results[name]["errors"])
    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\nbefore\n") and text.endswith("\n\nafter\n")
    assert "\nold\n" not in text and "--rounds 2" in text
    row = next(line for line in text.splitlines()
               if line.startswith("| HTTPS symmetric key: registrations/s | ")
               and "| floor |" in line)
    ratio = row.split("|")[5].strip()
    assert "(" in ratio and "–" in ratio, row  # the median, then the per-round range
