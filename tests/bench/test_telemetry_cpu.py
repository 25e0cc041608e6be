"""``bench/telemetry_cpu.py`` in a short mode: it fails on errors (a PUBLISH not acknowledged
or not stored exactly once), never on speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parents[2] / "bench" / "telemetry_cpu.py"


def test_telemetry_cpu_short() -> None:
    proc = subprocess.run([sys.executable, str(BENCH), "--devices", "5", "--rounds", "30"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout)
    assert result["devices"] == 5 and result["messages"] == 150
    assert result["cpu_us_per_message"] > 0
