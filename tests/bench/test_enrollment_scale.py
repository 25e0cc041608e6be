"""``bench/enrollment_scale.py`` in CI's short mode: 200 vs 20,000 stored enrollments and
registration records, 100 devices per variant, one round.

It fails on errors, never on speed (a slow CI machine must not fail the build): the fill must
put the rows where the server finds them, and every registration in every run — group devices
through ``opendps bench register`` and stored individual enrollments — must complete.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parents[2] / "bench" / "enrollment_scale.py"
SMALL, LARGE, DEVICES = 200, 20_000, 100


def test_enrollment_scale_short(tmp_path: Path) -> None:
    out, doc = tmp_path / "result.json", tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n<!-- run_all:begin -->\nx\n<!-- run_all:end -->\n\nrest\n")
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--large", str(LARGE), "--small", str(SMALL),
         "--devices", str(DEVICES), "--rounds", "1", "--warmup", "20",
         "--work-dir", str(tmp_path / "work"), "--json", str(out), "--write", str(doc)],
        capture_output=True, text=True, timeout=170, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(out.read_text())

    device_enrollments = result["device_enrollments"]
    assert device_enrollments == DEVICES + 20
    for size, count in (("small", SMALL), ("large", LARGE)):
        # filler + the template device, before any run
        assert result["rows"][size] == {"enrollments": count + 1, "registrations": count + 1,
                                        "devices": count + 1}
    assert result["lookup_us"]["large"] > 0

    runs = result["runs"]
    assert {(r["size"], r["variant"]) for r in runs} == {
        (s, v) for s in ("small", "large") for v in ("group", "individual")}
    for run in runs:
        assert run["error_count"] == 0, run["errors"]
        # the individual variant's devices are stored among the filler for its run only
        extra = device_enrollments if run["variant"] == "individual" else 0
        filler = SMALL if run["size"] == "small" else LARGE
        assert run["stored"]["enrollments"] == filler + 1 + extra
        assert run["completed"] == DEVICES
        assert run["server_cpu_ms_per_registration"] > 0  # /proc was read

    text = doc.read_text()
    assert text.index("<!-- run_all:end -->") < text.index("<!-- enrollment_scale:begin -->")
    assert text.rstrip().endswith("rest")
    assert "| individual enrollments (lookup hits) |" in text
