"""Issue 6: three instances on one PostgreSQL behind nginx ``stream`` are one service."""

from __future__ import annotations

import http.client
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.sdk_helpers import hub_client, provision, service_client
from opendps.protocol import sas
from opendps.protocol.mqtt import ConnAck, ConnectionClosed, PingReq, PingResp
from opendps.protocol.sas import derive_device_key

from .cluster import Cluster, direct_context, direct_mqtt, start_cluster
from .storm import run_storm

pytestmark = [pytest.mark.postgres, pytest.mark.sdk]
API = "2019-03-31"
HUB_API = "2021-04-12"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start_cluster(tmp_path_factory.mktemp("cluster"))
    yield c
    c.stop()


@pytest.fixture(scope="module")
def group(cluster: Cluster) -> dict:
    group_id = f"cluster-{uuid.uuid4().hex[:8]}"
    return service_client(cluster.lb).enrollment_group.create_or_update(group_id, {
        "enrollmentGroupId": group_id, "attestation": {"type": "symmetricKey"}})


def _group_key(group: dict) -> str:
    return group["attestation"]["symmetricKey"]["primaryKey"]


def _https(cluster: Cluster, method: str, path: str, body: object = None,
           headers: dict[str, str] | None = None,
           host: str | None = None) -> tuple[int, dict[str, str], object]:
    """One request on a fresh TCP connection (so the balancer picks an instance each time)."""
    ctx = direct_context(cluster.lb)
    conn = http.client.HTTPSConnection(host or cluster.lb.host, 443, context=ctx, timeout=10)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers={
            "Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, (
            json.loads(raw) if raw else None)
    finally:
        conn.close()


def _hub_token(cluster: Cluster) -> str:
    fields = dict(p.split("=", 1)
                  for p in cluster.lb.info["hubs"][0]["connectionString"].split(";"))
    return sas.generate(fields["HostName"], fields["SharedAccessKey"],
                        key_name=fields["SharedAccessKeyName"])


def test_instances_share_one_identity(cluster: Cluster) -> None:
    infos = [s.info for s in cluster.instances]
    assert len({i["idScope"] for i in infos}) == 1
    assert len({Path(i["caCertificate"]).read_text() for i in infos}) == 1
    assert len({i["serviceConnectionString"] for i in infos}) == 1
    assert len({json.dumps(i["hubs"], sort_keys=True) for i in infos}) == 1
    for server in cluster.instances:
        status, headers, body = _https(cluster, "GET", "/opendps/ready", host=server.host)
        assert status == 200, body
        assert body["checks"]["bus"] is True  # type: ignore[index]
        assert headers["x-opendps-instance"] in cluster.names


def test_polls_land_on_other_instances(cluster: Cluster, group: dict) -> None:
    """Register through the balancer, then poll on fresh connections: the instance named in
    x-opendps-instance changes, and every instance knows the operation."""
    reg_id = f"poll-{uuid.uuid4().hex[:8]}"
    key = derive_device_key(_group_key(group), reg_id)
    auth = {"Authorization": sas.generate(f"{cluster.lb.id_scope}/registrations/{reg_id}", key,
                                          key_name="registration")}
    base = f"/{cluster.lb.id_scope}/registrations/{reg_id}"
    status, headers, body = _https(cluster, "PUT", f"{base}/register?api-version={API}",
                                   {"registrationId": reg_id}, auth)
    assert status == 202, body
    registered_on = headers["x-opendps-instance"]
    op = body["operationId"]  # type: ignore[index]
    seen = set()
    for _ in range(9):
        status, headers, body = _https(cluster, "GET",
                                       f"{base}/operations/{op}?api-version={API}", None, auth)
        assert status == 200, body
        assert body["status"] == "assigned"  # type: ignore[index]
        seen.add(headers["x-opendps-instance"])
    assert seen - {registered_on}, f"all polls answered by {registered_on}"
    assert len(seen) >= 2


def test_sdk_devices_and_desired_updates_across_instances(cluster: Cluster,
                                                          group: dict) -> None:
    """Official SDK devices provision and connect through the balancer; desired patches sent
    through every instance directly reach each device, wherever its connection lives."""
    devices = []
    try:
        for i in range(3):
            reg_id = f"sdk-{i}-{uuid.uuid4().hex[:6]}"
            key = derive_device_key(_group_key(group), reg_id)
            result = provision(cluster.lb, reg_id, key)
            assert result.status == "assigned"
            assert result.registration_state.assigned_hub == cluster.lb.host
            client = hub_client(cluster.lb, result, key)
            got: list[dict] = []
            done = threading.Event()

            def on_patch(patch: dict, got: list = got, done: threading.Event = done) -> None:
                got.append(patch)
                if len(got) >= len(cluster.instances):
                    done.set()

            client.connect()
            client.on_twin_desired_properties_patch_received = on_patch
            devices.append((reg_id, client, got, done))
        token = _hub_token(cluster)
        for reg_id, _client, _got, _done in devices:
            for n, server in enumerate(cluster.instances):
                status, _h, body = _https(
                    cluster, "PATCH", f"/twins/{reg_id}?api-version={HUB_API}",
                    {"properties": {"desired": {"via": server.host, "n": n}}},
                    {"Authorization": token}, host=server.host)
                assert status == 200, body
        for reg_id, _client, got, done in devices:
            assert done.wait(15), f"{reg_id} got {got}"
            assert {p["via"] for p in got} == {s.host for s in cluster.instances}
    finally:
        for _reg, client, _got, _done in devices:
            client.shutdown()


def test_second_connection_elsewhere_drops_the_first(cluster: Cluster, group: dict) -> None:
    reg_id = f"dup-{uuid.uuid4().hex[:8]}"
    key = derive_device_key(_group_key(group), reg_id)
    assert provision(cluster.lb, reg_id, key).status == "assigned"
    host = cluster.lb.host
    username = f"{host}/{reg_id}/?api-version={HUB_API}"
    token = sas.generate(f"{host}/devices/{reg_id}", key)
    first = direct_mqtt(cluster.instances[0], cluster.lb)
    second = direct_mqtt(cluster.instances[1], cluster.lb)
    try:
        ack = first.connect(reg_id, username, token)
        assert isinstance(ack, ConnAck) and ack.return_code == 0
        ack = second.connect(reg_id, username, token)
        assert isinstance(ack, ConnAck) and ack.return_code == 0
        event = first.next(timeout=10)
        assert isinstance(event, ConnectionClosed), event
        second.send(PingReq())
        assert isinstance(second.next(timeout=5), PingResp)  # the new link stays up
    finally:
        first.close()
        second.close()


def test_a_hub_created_on_one_instance_is_served_by_all(cluster: Cluster) -> None:
    """``hubs_changed`` travels on the bus: every instance starts the hub and reloads the
    certificate that now names it (verified by a TLS handshake to each instance's address)."""
    import socket
    import ssl
    import time

    from integration.ca_rest import owner_headers

    name = f"hub-{uuid.uuid4().hex[:6]}.example"
    first = cluster.instances[0]
    status, _h, body = _https(cluster, "PUT",
                              f"/opendps/linkedHubs/{name}?api-version=2021-10-01",
                              {"builtIn": True}, owner_headers(cluster.lb), host=first.host)
    assert status == 201, body
    ctx = ssl.create_default_context(cafile=cluster.lb.info["caCertificate"])
    for server in cluster.instances:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection((server.host, 443), timeout=5) as raw, \
                        ctx.wrap_socket(raw, server_hostname=name):
                    break
            except ssl.SSLCertVerificationError:
                assert time.monotonic() < deadline, f"{server.host} never named {name}"
                time.sleep(0.1)


def test_kill_9_in_a_registration_storm(cluster: Cluster, group: dict) -> None:
    """Kill one instance while devices register through the balancer: every device ends
    assigned (retrying through the others), and the database holds exactly one hub identity
    per device and every acknowledged registration."""
    victim = cluster.instances[1]
    result = run_storm(cluster, _group_key(group), devices=150, concurrency=30,
                       kill_after=40, victim=victim)
    assert not victim.alive()
    assert result.failed == [], result.failed[:5]
    assert len(result.assigned) == 150
    counts = result.database_counts
    assert counts["registrations_assigned"] == 150, counts
    assert counts["devices"] == counts["distinct_devices"] >= 150, counts
    assert counts["missing_devices"] == 0, counts
    assert counts["acknowledged_missing"] == 0, counts
    assert result.retried > 0 or result.killed_at is not None
