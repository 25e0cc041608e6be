"""Correctness under load (issue 5): after a 10,000-device registration storm every device has
exactly one registration record and one hub identity, and the counts match. Loopback only,
bounded by the device count and a time limit."""

from __future__ import annotations

import subprocess
import sys

from integration.sdk_helpers import hub_rest
from integration.servers import start_server

from .test_bench_short import registrations

STORM = 10_000


def test_ten_thousand_device_storm(tmp_path) -> None:  # type: ignore[no-untyped-def]
    server = start_server(tmp_path)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "opendps", "bench", "register", "--transport", "https",
             "--devices", str(STORM), "--concurrency", "64", "--poll-immediately",
             "--duration", "600", "--data-dir", str(server.data_dir), "--json"],
            capture_output=True, text=True, timeout=660, check=False)
        import json

        result = json.loads(proc.stdout)
        assert proc.returncode == 0 and result["error_count"] == 0, (result, proc.stderr)
        assert result["completed"] == STORM
        records = registrations(server, result["group_id"])
        ids = [r["registrationId"] for r in records]
        assert len(ids) == len(set(ids)) == STORM
        assert all(r["status"] == "assigned" and r["deviceId"] == r["registrationId"]
                   for r in records)
        status, devices = hub_rest(server, "GET", f"/devices?top={STORM * 2}")
        assert status == 200
        device_ids = [d["deviceId"] for d in devices
                      if d["deviceId"].startswith(result["group_id"])]
        assert len(device_ids) == len(set(device_ids)) == STORM
        assert set(device_ids) == set(ids)
    finally:
        server.stop()
