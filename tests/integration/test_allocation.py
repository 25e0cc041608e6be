"""Allocation across linked built-in hubs with the official SDK: weighted spread, stability
when hubs are added, runtime hub creation; lowest latency; static."""

from __future__ import annotations

import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from opendps.protocol.sas import derive_device_key

from .ca_rest import admin
from .raw import API, device_token, https
from .sdk_helpers import provision, service_client
from .servers import _free_loopback, start_server

pytestmark = pytest.mark.sdk
DEVICES = 1000
TOLERANCE = 0.05  # the hash is deterministic; this bounds the weighted share


@pytest.fixture(scope="module")
def hubs_server(tmp_path_factory):  # type: ignore[no-untyped-def]
    dps, h1, h2, h3 = (_free_loopback() for _ in range(4))
    server = start_server(tmp_path_factory.mktemp("alloc"), host=dps, extra_env={
        "OPENDPS_BIND": ",".join((dps, h1, h2, h3)), "OPENDPS_HUB_HOST_NAMES": f"{h1},{h2}"})
    server.hub_hosts = [h1, h2, h3]  # type: ignore[attr-defined]
    yield server
    server.stop()
    assert server.proc.returncode == 0, server.log()


def _force(server, reg_id: str, key: str) -> dict:  # type: ignore[no-untyped-def]
    """A re-registration that asks for reallocation (forceRegistration, as Node and C# send)."""
    token = device_token(server, reg_id, key)
    status, _, body = https(server, "PUT", f"/{server.id_scope}/registrations/{reg_id}/register"
                            f"?api-version={API}&forceRegistration=true",
                            f'{{"registrationId": "{reg_id}"}}', {"Authorization": token})
    assert status == 202, body
    status, _, polled = https(server, "GET", f"/{server.id_scope}/registrations/{reg_id}/"
                              f"operations/{body['operationId']}?api-version={API}",
                              headers={"Authorization": token})
    assert status == 200 and polled["status"] == "assigned", polled
    return polled["registrationState"]


def test_weighted_spread_then_unrelated_and_new_hub(hubs_server) -> None:  # type: ignore[no-untyped-def]
    server = hubs_server
    h1, h2, h3 = server.hub_hosts
    assert admin(server, "PUT", f"/linkedHubs/{h1}", {"builtIn": True,
                                                       "allocationWeight": 1})[0] == 200
    assert admin(server, "PUT", f"/linkedHubs/{h2}", {"builtIn": True,
                                                       "allocationWeight": 3})[0] == 200
    group_id = f"spread-{uuid.uuid4().hex[:6]}"
    group = service_client(server).enrollment_group.create_or_update(group_id, {
        "enrollmentGroupId": group_id, "attestation": {"type": "symmetricKey"}})
    group_key = group["attestation"]["symmetricKey"]["primaryKey"]
    ids = [f"{group_id}-{i:04d}" for i in range(DEVICES)]
    keys = {i: derive_device_key(group_key, i) for i in ids}

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(lambda i: provision(server, i, keys[i]), ids))
    assigned = {i: r.registration_state.assigned_hub for i, r in zip(ids, results, strict=True)}
    assert all(r.status == "assigned" for r in results)
    share = Counter(assigned.values())
    assert set(share) == {h1, h2}
    assert abs(share[h2] / DEVICES - 0.75) < TOLERANCE, share

    # a third hub that takes no part in allocation: a fresh allocation moves nobody
    status, body = admin(server, "PUT", f"/linkedHubs/{h3}", {
        "builtIn": True, "allocationWeight": 1, "applyAllocationPolicy": False})
    assert status == 201, body
    with ThreadPoolExecutor(16) as pool:
        again = dict(zip(ids, pool.map(lambda i: _force(server, i, keys[i])["assignedHub"], ids),
                         strict=True))
    assert again == assigned

    # the same hub taking part: devices move only onto it, about its weight's share
    status, _ = admin(server, "PUT", f"/linkedHubs/{h3}", {
        "builtIn": True, "allocationWeight": 1, "applyAllocationPolicy": True})
    assert status == 200
    with ThreadPoolExecutor(16) as pool:
        states = dict(zip(ids, pool.map(lambda i: _force(server, i, keys[i]), ids), strict=True))
    moved = [i for i in ids if states[i]["assignedHub"] != assigned[i]]
    assert all(states[i]["assignedHub"] == h3 for i in moved)
    assert abs(len(moved) / DEVICES - 0.2) < TOLERANCE
    assert all(states[i]["substatus"] == "deviceDataMigrated" for i in moved)
    # the SDK can reach the hub created at run time (its name is now in the certificate)
    sample = moved[0]
    from .sdk_helpers import hub_client

    result = provision(server, sample, keys[sample])
    assert result.registration_state.assigned_hub == h3
    device = hub_client(server, result, keys[sample])
    try:
        device.connect()
    finally:
        device.shutdown()


def test_static_and_lowest_latency(tmp_path) -> None:  # type: ignore[no-untyped-def]
    dps, h1, h2 = (_free_loopback() for _ in range(3))
    server = start_server(tmp_path, host=dps, extra_env={
        "OPENDPS_BIND": ",".join((dps, h1, h2)), "OPENDPS_HUB_HOST_NAMES": f"{h1},{h2}",
        "OPENDPS_LOCATION": "westeurope", "OPENDPS_ALLOCATION_POLICY": "geoLatency"})
    try:
        admin(server, "PUT", f"/linkedHubs/{h1}", {"builtIn": True, "location": "eastus"})
        admin(server, "PUT", f"/linkedHubs/{h2}", {"builtIn": True, "location": "northeurope"})
        client = service_client(server)
        group_id = f"geo-{uuid.uuid4().hex[:6]}"
        key = client.enrollment_group.create_or_update(group_id, {
            "enrollmentGroupId": group_id, "attestation": {"type": "symmetricKey"}})[
            "attestation"]["symmetricKey"]["primaryKey"]
        for i in range(5):
            reg_id = f"{group_id}-{i}"
            result = provision(server, reg_id, derive_device_key(key, reg_id))
            assert result.registration_state.assigned_hub == h2  # nearer to westeurope
        static_id = f"static-{uuid.uuid4().hex[:6]}"
        created = client.enrollment.create_or_update(static_id, {
            "registrationId": static_id, "attestation": {"type": "symmetricKey"},
            "allocationPolicy": "static", "iotHubHostName": h1})
        result = provision(server, static_id,
                           created["attestation"]["symmetricKey"]["primaryKey"])
        assert result.registration_state.assigned_hub == h1
        from azure.core.exceptions import HttpResponseError

        with pytest.raises(HttpResponseError) as unlinked:
            client.enrollment.create_or_update(f"x-{static_id}", {
                "registrationId": f"x-{static_id}", "attestation": {"type": "symmetricKey"},
                "iotHubs": ["not-linked.example"]})
        assert unlinked.value.status_code == 400
    finally:
        server.stop()
