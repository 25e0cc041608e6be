"""Registrations per second through the balancer with 1, 2 and 3 instances behind it (not a
test; run ``python -m cluster.bench`` from tests/). Reloads nginx between rounds."""

from __future__ import annotations

import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

from integration.sdk_helpers import service_client

from .cluster import render, start_cluster
from .storm import run_storm


def main(devices: int = 600, concurrency: int = 64) -> None:
    cluster = start_cluster(Path(tempfile.mkdtemp()))
    try:
        group_id = f"bench-{uuid.uuid4().hex[:6]}"
        group = service_client(cluster.lb).enrollment_group.create_or_update(group_id, {
            "enrollmentGroupId": group_id, "attestation": {"type": "symmetricKey"}})
        key = group["attestation"]["symmetricKey"]["primaryKey"]
        conf = cluster.lb.prefix / "nginx.conf"
        for n in (1, 2, 3):
            hosts = [s.host for s in cluster.instances[:n]]
            conf.write_text(render(str(cluster.lb.prefix), cluster.lb.host, hosts))
            cluster.lb.proc.send_signal(signal.SIGHUP)  # our nginx: reload the upstreams
            time.sleep(1.5)
            result = run_storm(cluster, key, devices=devices, concurrency=concurrency)
            print(f"{n} instance(s): {len(result.assigned)}/{devices} assigned in "
                  f"{result.seconds:.1f}s = {result.rate:.0f} registrations/s "
                  f"(retries {result.retried})", flush=True)
    finally:
        cluster.stop()


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
