"""Zero-touch provisioning with the official Python device SDK (azure-iot-device 2.14):
individual and group-derived keys, MQTT and MQTT over WebSocket, then the hub."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import pytest

from opendps.protocol.sas import derive_device_key

from .sdk_helpers import hub_client, hub_rest, provision, service_client, telemetry

pytestmark = pytest.mark.sdk

DESIRED = {"telemetryInterval": 30, "mode": {"fast": True}}
TAGS = {"site": "lab-7"}


@pytest.fixture(scope="module")
def server(any_backend_server):  # type: ignore[no-untyped-def]
    return any_backend_server


@pytest.fixture(scope="module")
def group(server):  # type: ignore[no-untyped-def]
    client = service_client(server)
    group_id = f"group-{uuid.uuid4().hex[:8]}"
    created = client.enrollment_group.create_or_update(group_id, {
        "enrollmentGroupId": group_id,
        "attestation": {"type": "symmetricKey"},
        "initialTwin": {"tags": TAGS, "properties": {"desired": DESIRED}},
    })
    return created


def _events(server, device_id: str, count: int, timeout: float = 15.0) -> list[dict]:  # type: ignore[no-untyped-def]
    """Read telemetry through the live monitor (``opendps hub monitor-events``)."""
    proc = subprocess.run(
        [sys.executable, "-m", "opendps", "hub", "monitor-events", "--device-id", device_id,
         "--timeout", "3", "--properties", "--json"],
        env=server.env, capture_output=True, text=True, timeout=timeout + 10)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return events


def _flow(server, registration_id: str, key: str, *, websockets: bool) -> None:  # type: ignore[no-untyped-def]
    result = provision(server, registration_id, key, websockets=websockets,
                       payload={"model": "toaster"})
    assert result.status == "assigned"
    state = result.registration_state
    assert state.assigned_hub == server.host
    assert state.device_id == registration_id
    assert state.sub_status == "initialAssignment"
    assert str(state)  # the SDK joins device id, hub, substatus and payload

    device = hub_client(server, result, key, websockets=websockets)
    try:
        device.connect()
        for i in range(3):
            device.send_message(telemetry(json.dumps({"n": i}), kind="reading"))
        twin = device.get_twin()
        assert twin["desired"]["$version"] >= 1
        assert twin["desired"]["telemetryInterval"] == DESIRED["telemetryInterval"]
        assert twin["desired"]["mode"] == DESIRED["mode"]
        device.patch_twin_reported_properties({"firmware": "1.2.3", "rebooted": True})
    finally:
        device.shutdown()

    events = _events(server, registration_id, 3)
    mine = [e["event"] for e in events if e["event"]["origin"] == registration_id]
    assert [e["payload"] for e in mine] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert all(e["properties"]["application"]["kind"] == "reading" for e in mine)

    status, twin_doc = hub_rest(server, "GET", f"/twins/{registration_id}")
    assert status == 200
    assert twin_doc["properties"]["reported"]["firmware"] == "1.2.3"
    assert twin_doc["properties"]["reported"]["rebooted"] is True
    assert twin_doc["tags"] == TAGS


@pytest.mark.parametrize("websockets", [False, True], ids=["mqtt", "websocket"])
def test_group_derived_key(server, group, websockets: bool) -> None:  # type: ignore[no-untyped-def]
    registration_id = f"dev-{uuid.uuid4().hex[:10]}"
    group_key = service_client(server).enrollment_group.get_attestation_mechanism(
        group["enrollmentGroupId"])["symmetricKey"]["primaryKey"]
    _flow(server, registration_id, derive_device_key(group_key, registration_id),
          websockets=websockets)


@pytest.mark.parametrize("websockets", [False, True], ids=["mqtt", "websocket"])
def test_individual_key(server, websockets: bool) -> None:  # type: ignore[no-untyped-def]
    registration_id = f"ind-{uuid.uuid4().hex[:10]}"
    created = service_client(server).enrollment.create_or_update(registration_id, {
        "registrationId": registration_id,
        "attestation": {"type": "symmetricKey"},
        "initialTwin": {"tags": TAGS, "properties": {"desired": DESIRED}},
    })
    _flow(server, registration_id, created["attestation"]["symmetricKey"]["secondaryKey"],
          websockets=websockets)


def test_reregistration_is_idempotent(server, group) -> None:  # type: ignore[no-untyped-def]
    registration_id = f"again-{uuid.uuid4().hex[:8]}"
    group_key = service_client(server).enrollment_group.get_attestation_mechanism(
        group["enrollmentGroupId"])["symmetricKey"]["secondaryKey"]
    key = derive_device_key(group_key, registration_id)
    first = provision(server, registration_id, key)
    second = provision(server, registration_id, key)
    assert first.status == second.status == "assigned"
    assert first.registration_state.assigned_hub == second.registration_state.assigned_hub
    assert first.registration_state.device_id == second.registration_state.device_id
    assert first.registration_state.created_date_time == second.registration_state.created_date_time
    status, devices = hub_rest(server, "GET", "/devices")
    assert status == 200
    assert [d["deviceId"] for d in devices].count(registration_id) == 1


def test_desired_update_reaches_connected_device(server, group) -> None:  # type: ignore[no-untyped-def]
    registration_id = f"desired-{uuid.uuid4().hex[:8]}"
    group_key = service_client(server).enrollment_group.get_attestation_mechanism(
        group["enrollmentGroupId"])["symmetricKey"]["primaryKey"]
    key = derive_device_key(group_key, registration_id)
    result = provision(server, registration_id, key)
    device = hub_client(server, result, key)
    try:
        device.connect()
        device.get_twin()  # subscribes to twin responses
        received: list[dict] = []
        device.on_twin_desired_properties_patch_received = received.append
        time.sleep(0.5)
        status, _ = hub_rest(server, "PATCH", f"/twins/{registration_id}",
                             {"properties": {"desired": {"colour": "blue"}}})
        assert status == 200
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            time.sleep(0.1)
        assert received and received[0]["colour"] == "blue"
        assert isinstance(received[0]["$version"], int)
    finally:
        device.shutdown()
