"""Issue 5: ``opendps serve --workers 2`` on SQLite is one service on both cores. Requests are
pinned to a worker with keep-alive HTTPS connections (the ``x-opendps-instance`` header names
the worker that answered), and MQTT connections are told apart through /proc (which worker
holds the server end of the socket)."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.ca_rest import owner_headers
from integration.raw import RawMqtt, tls_context
from integration.sdk_helpers import hub_client, provision, service_client
from integration.servers import ServerProcess, _free_loopback, start_server
from opendps.protocol import sas
from opendps.protocol.mqtt import ConnAck, ConnectionClosed, PingReq, PingResp, Publish
from opendps.protocol.sas import derive_device_key

pytestmark = pytest.mark.sdk
WORKERS = {"OPENDPS_WORKERS": "2", "OPENDPS_RETRY_AFTER": "1"}
DPS_API = "2019-03-31"
SERVICE_API = "2021-10-01"
HUB_API = "2021-04-12"


def worker_pids(server: ServerProcess) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{server.proc.pid}/task").iterdir():
        out.extend(int(p) for p in (task / "children").read_text().split())
    return out


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie waits for whoever adopted it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Pinned:
    """One keep-alive HTTPS connection: every request on it reaches the same worker."""

    def __init__(self, server: ServerProcess, host: str | None = None) -> None:
        self.server = server
        ctx = tls_context(server)
        ctx.check_hostname = host is None
        self.conn = http.client.HTTPSConnection(host or server.host, 443, context=ctx,
                                                timeout=10)
        self.worker = self.request("GET", "/opendps/health")[1]["x-opendps-instance"]

    def request(self, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
        data = json.dumps(body).encode() if body is not None else None
        self.conn.request(method, path, body=data, headers={
            "Content-Type": "application/json", **(headers or {})})
        resp = self.conn.getresponse()
        raw = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, (
            json.loads(raw) if raw else None)

    def close(self) -> None:
        self.conn.close()


def two_workers(server: ServerProcess) -> tuple[Pinned, Pinned]:
    """Two connections answered by different workers (the kernel hashes each new one)."""
    first = Pinned(server)
    for _ in range(50):
        other = Pinned(server)
        if other.worker != first.worker:
            return first, other
        other.close()
    raise AssertionError("every connection landed on one worker")


def owner(sock: socket.socket, pids: list[int], port: int = 8883) -> int:
    """The worker holding the server end of ``sock``: its inode in /proc/net/tcp, then the
    worker with that socket among its file descriptors."""
    client_port = sock.getsockname()[1]
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if int(local.split(":")[1], 16) == port and int(remote.split(":")[1], 16) == client_port:
            inodes.add(f"socket:[{fields[9]}]")
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd) in inodes:
                    return pid
    raise AssertionError(f"no worker holds the connection from port {client_port}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_server(tmp_path_factory.mktemp("workers"), extra_env=WORKERS)
    yield server
    server.stop()
    assert server.proc.returncode == 0, server.log()


@pytest.fixture(scope="module")
def group(server: ServerProcess) -> dict:
    group_id = f"workers-{uuid.uuid4().hex[:8]}"
    return service_client(server).enrollment_group.create_or_update(group_id, {
        "enrollmentGroupId": group_id, "attestation": {"type": "symmetricKey"}})


def _device_key(group: dict, reg_id: str) -> str:
    return derive_device_key(group["attestation"]["symmetricKey"]["primaryKey"], reg_id)


def test_both_workers_serve(server: ServerProcess) -> None:
    assert len(worker_pids(server)) == 2
    names = set()
    for _ in range(30):
        pinned = Pinned(server)
        status, _, body = pinned.request("GET", "/opendps/ready")
        pinned.close()
        assert status == 200, body
        assert body["checks"]["bus"] is True
        names.add(body["instance"])
    assert len(names) == 2, names
    assert all(name.endswith(("/w0", "/w1")) for name in names)


def test_sdk_device_provisions(server: ServerProcess, group: dict) -> None:
    reg_id = f"sdk-{uuid.uuid4().hex[:8]}"
    result = provision(server, reg_id, _device_key(group, reg_id))
    assert result.status == "assigned"
    assert result.registration_state.assigned_hub == server.host


def test_register_on_one_worker_poll_on_the_other(server: ServerProcess, group: dict) -> None:
    a, b = two_workers(server)
    reg_id = f"poll-{uuid.uuid4().hex[:8]}"
    token = sas.generate(f"{server.id_scope}/registrations/{reg_id}",
                         _device_key(group, reg_id), key_name="registration")
    base = f"/{server.id_scope}/registrations/{reg_id}"
    status, headers, body = a.request("PUT", f"{base}/register?api-version={DPS_API}",
                                      {"registrationId": reg_id}, {"Authorization": token})
    assert status == 202, body
    assert headers["x-opendps-instance"] == a.worker
    status, headers, polled = b.request(
        "GET", f"{base}/operations/{body['operationId']}?api-version={DPS_API}",
        headers={"Authorization": token})
    assert status == 200, polled
    assert headers["x-opendps-instance"] == b.worker != a.worker
    assert polled["status"] == "assigned", polled
    a.close()
    b.close()


def test_desired_update_reaches_the_device_on_either_worker(server: ServerProcess,
                                                            group: dict) -> None:
    """Patches sent through both workers reach the device: one of them is not the worker
    holding its connection."""
    reg_id = f"twin-{uuid.uuid4().hex[:8]}"
    key = _device_key(group, reg_id)
    result = provision(server, reg_id, key)
    client = hub_client(server, result, key)
    got: list[dict] = []
    both = threading.Event()

    def on_patch(patch: dict) -> None:
        got.append(patch)
        if len(got) >= 2:
            both.set()

    a, b = two_workers(server)
    fields = dict(p.split("=", 1) for p in server.info["hubs"][0]["connectionString"].split(";"))
    token = sas.generate(fields["HostName"], fields["SharedAccessKey"],
                         key_name=fields["SharedAccessKeyName"])
    try:
        client.connect()
        client.on_twin_desired_properties_patch_received = on_patch
        for pinned in (a, b):
            status, _, body = pinned.request(
                "PATCH", f"/twins/{reg_id}?api-version={HUB_API}",
                {"properties": {"desired": {"via": pinned.worker}}}, {"Authorization": token})
            assert status == 200, body
        assert both.wait(15), got
        assert {p["via"] for p in got} == {a.worker, b.worker}
    finally:
        client.shutdown()
        a.close()
        b.close()


def _provisioned(server: ServerProcess, group: dict, prefix: str) -> tuple[str, str]:
    """A new device of the group, registered (so its hub identity exists): (id, key)."""
    reg_id = f"{prefix}-{uuid.uuid4().hex[:8]}"
    key = _device_key(group, reg_id)
    assert provision(server, reg_id, key).status == "assigned"
    return reg_id, key


def test_second_connection_on_the_other_worker_drops_the_first(server: ServerProcess,
                                                                group: dict) -> None:
    reg_id, key = _provisioned(server, group, "dup")
    pids = worker_pids(server)
    first = RawMqtt(server)
    first_pid = owner(first.sock, pids)
    second = RawMqtt(server)
    for _ in range(50):
        if owner(second.sock, pids) != first_pid:
            break
        second.close()
        second = RawMqtt(server)
    else:
        raise AssertionError("every MQTT connection landed on one worker")
    username = f"{server.host}/{reg_id}/?api-version={HUB_API}"
    token = sas.generate(f"{server.host}/devices/{reg_id}", key)
    try:
        ack = first.connect(reg_id, username, token)
        assert isinstance(ack, ConnAck) and ack.return_code == 0
        ack = second.connect(reg_id, username, token)
        assert isinstance(ack, ConnAck) and ack.return_code == 0
        assert isinstance(first.next(timeout=10), ConnectionClosed)
        second.send(PingReq())
        assert isinstance(second.next(timeout=5), PingResp)  # the new link stays up
    finally:
        first.close()
        second.close()


def test_live_telemetry_from_one_worker_reaches_a_monitor_on_the_other(
        server: ServerProcess, group: dict) -> None:
    """A group commit on the device's worker travels to the other as one range reference; the
    monitor there reads the range back and streams every message, in order."""
    reg_id, key = _provisioned(server, group, "tel")
    pids = worker_pids(server)
    device = RawMqtt(server)
    device_pid = owner(device.sock, pids)
    hub = server.info["hubs"][0]
    fields = dict(p.split("=", 1) for p in hub["connectionString"].split(";"))
    token = sas.generate(fields["HostName"], fields["SharedAccessKey"],
                         key_name=fields["SharedAccessKeyName"])
    monitor = None
    for _ in range(50):  # a monitor connection on the other worker
        candidate = http.client.HTTPSConnection(server.host, 443, context=tls_context(server),
                                                timeout=10)
        candidate.connect()
        if owner(candidate.sock, pids, port=443) != device_pid:  # type: ignore[arg-type]
            monitor = candidate
            break
        candidate.close()
    assert monitor is not None, "every HTTPS connection landed on the device's worker"
    try:
        last = json.loads(hub_events_last(server, token))
        monitor.request("GET", f"/opendps/events?after={last}&deviceId={reg_id}",
                        headers={"Authorization": token})
        stream = monitor.getresponse()
        assert stream.status == 200
        username = f"{server.host}/{reg_id}/?api-version={HUB_API}"
        ack = device.connect(reg_id, username,
                             sas.generate(f"{server.host}/devices/{reg_id}", key))
        assert isinstance(ack, ConnAck) and ack.return_code == 0
        topic = f"devices/{reg_id}/messages/events/"
        for n in range(20):  # pipelined: one or a few group commits
            device.send(Publish(topic=topic, payload=b"m%d" % n, qos=1, packet_id=n + 1))
        acks = [device.next() for _ in range(20)]
        assert [a.packet_id for a in acks] == list(range(1, 21))  # type: ignore[union-attr]
        got = []
        while len(got) < 20:
            line = stream.readline().strip()
            if line:
                got.append(json.loads(line)["payload"])
        assert got == [f"m{n}" for n in range(20)]
    finally:
        device.close()
        monitor.close()


def hub_events_last(server: ServerProcess, token: str) -> str:
    """The newest seq before the test, so the monitor streams only what follows."""
    conn = http.client.HTTPSConnection(server.host, 443, context=tls_context(server),
                                       timeout=10)
    try:
        conn.request("GET", "/opendps/events?follow=false", headers={"Authorization": token})
        lines = [ln for ln in conn.getresponse().read().splitlines() if ln.strip()]
        return str(json.loads(lines[-1])["seq"]) if lines else "0"
    finally:
        conn.close()


def test_an_enrollment_write_on_one_worker_is_read_at_once_on_the_other(
        server: ServerProcess) -> None:
    """Each worker caches enrollments for 2 s; a write on one clears the other's cache."""
    a, b = two_workers(server)
    headers = owner_headers(server)
    group_id = f"cache-{uuid.uuid4().hex[:8]}"
    path = f"/enrollmentGroups/{group_id}?api-version={SERVICE_API}"
    body = {"enrollmentGroupId": group_id, "attestation": {"type": "symmetricKey"},
            "provisioningStatus": "enabled"}
    try:
        assert a.request("PUT", path, body, headers)[0] in (200, 201)
        for _ in range(3):
            filled = time.monotonic()
            status, _, before = b.request("GET", path, headers=headers)  # b caches it
            assert status == 200, before
            flipped = "disabled" if before["provisioningStatus"] == "enabled" else "enabled"
            status, _, written = a.request("PUT", path, dict(body, provisioningStatus=flipped),
                                           headers)
            assert status == 200, written
            status, _, after = b.request("GET", path, headers=headers)
            if time.monotonic() - filled < 1.5:  # well inside b's cache lifetime
                assert after["provisioningStatus"] == flipped, after
                assert after["etag"] == written["etag"]
                return
        pytest.fail("the machine is too slow to tell invalidation from expiry")
    finally:
        a.close()
        b.close()


@pytest.fixture(scope="module")
def hubs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    dps, extra = _free_loopback(), _free_loopback()
    server = start_server(tmp_path_factory.mktemp("workers-hubs"), host=dps,
                          extra_env=dict(WORKERS, OPENDPS_BIND=f"{dps},{extra}"))
    server.extra_host = extra  # type: ignore[attr-defined]
    yield server
    server.stop()


def test_a_hub_created_on_one_worker_is_served_by_both(hubs_server: ServerProcess) -> None:
    """``hubs_changed`` travels on the bus: the other worker starts the hub and reloads the
    certificate that now names it."""
    server, extra = hubs_server, hubs_server.extra_host  # type: ignore[attr-defined]
    a, _b = two_workers(server)
    status, _, body = a.request("PUT", f"/opendps/linkedHubs/{extra}?api-version={SERVICE_API}",
                                {"builtIn": True}, owner_headers(server))
    assert status == 201, body
    ctx = tls_context(server)  # verifies that the certificate names the new hub
    seen = set()
    deadline = time.monotonic() + 10
    while seen != {a.worker, _b.worker} and time.monotonic() < deadline:
        try:
            conn = http.client.HTTPSConnection(extra, 443, context=ctx, timeout=5)
            conn.request("GET", "/opendps/health")
            seen.add(conn.getresponse().getheader("x-opendps-instance"))
            conn.close()
        except ssl.SSLCertVerificationError:
            time.sleep(0.05)  # this worker has not reloaded yet
    assert seen == {a.worker, _b.worker}
    a.close()
    _b.close()


def test_a_worker_that_dies_is_replaced(server: ServerProcess) -> None:
    before = worker_pids(server)
    os.kill(before[0], signal.SIGKILL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        now = worker_pids(server)
        if len(now) == 2 and before[0] not in now:
            names = set()
            for _ in range(30):
                pinned = Pinned(server)
                names.add(pinned.worker)
                pinned.close()
            if len(names) == 2:
                break
        time.sleep(0.1)
    else:
        raise AssertionError(f"no replacement worker: {worker_pids(server)}\n{server.log()}")
    assert server.alive()
    assert "restarting it" in server.log()


def test_a_bench_run_with_both_workers(server: ServerProcess) -> None:
    pids = [server.proc.pid, *worker_pids(server)]
    proc = subprocess.run(
        [sys.executable, "-m", "opendps", "bench", "register", "--transport", "https",
         "--devices", "200", "--concurrency", "16", "--poll-immediately",
         "--data-dir", str(server.data_dir), "--json",
         *[arg for pid in pids for arg in ("--server-pid", str(pid))]],
        capture_output=True, text=True, timeout=60, check=False)
    assert proc.stdout, proc.stderr
    result = json.loads(proc.stdout)
    assert result["error_count"] == 0, result["errors"]
    assert result["completed"] == 200
    assert result["server_cpu_ms_per_registration"] > 0


def test_a_taken_port_fails_the_start(server: ServerProcess, tmp_path: Path) -> None:
    env = dict(server.env, OPENDPS_DATA_DIR=str(tmp_path / "other"))
    proc = subprocess.run([sys.executable, "-m", "opendps", "serve"], env=env,
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 1
    assert f"cannot listen for HTTPS on {server.host}:443" in proc.stderr


def test_sigterm_stops_every_worker(hubs_server: ServerProcess) -> None:
    """(Runs after the hub test, on its server.)"""
    workers = worker_pids(hubs_server)
    assert len(workers) == 2
    hubs_server.proc.send_signal(signal.SIGTERM)
    assert hubs_server.proc.wait(20) == 0, hubs_server.log()
    assert not any(running(pid) for pid in workers)
    assert not (hubs_server.data_dir / "run").exists() or not any(
        (hubs_server.data_dir / "run").iterdir())  # the bus sockets are gone too


def test_kill_9_of_the_parent_leaves_no_worker(tmp_path: Path) -> None:
    server = start_server(tmp_path, extra_env=WORKERS)
    workers = worker_pids(server)
    try:
        assert len(workers) == 2
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(5)
        deadline = time.monotonic() + 5
        while any(running(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(running(pid) for pid in workers), server.log()
    finally:
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
