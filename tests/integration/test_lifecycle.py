"""Issue 4 end to end with the official SDK: the custom allocation tutorial with the sample
webhook, each reprovisioning policy, disenrollment and re-enrollment, and an external hub (a
second opendps process linked by connection string)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from azure.iot.device import IoTHubDeviceClient

from opendps.protocol.sas import derive_device_key

from .ca_rest import admin
from .raw import API, device_token, https
from .sdk_helpers import hub_rest, provision, service_client, telemetry
from .servers import _free_loopback, start_server

pytestmark = pytest.mark.sdk
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def two_hubs(tmp_path_factory):  # type: ignore[no-untyped-def]
    dps, h1, h2 = (_free_loopback() for _ in range(3))
    server = start_server(tmp_path_factory.mktemp("life"), host=dps, extra_env={
        "OPENDPS_BIND": ",".join((dps, h1, h2)), "OPENDPS_HUB_HOST_NAMES": f"{h1},{h2}"})
    server.hub_hosts = [h1, h2]  # type: ignore[attr-defined]
    yield server
    server.stop()
    assert server.proc.returncode == 0, server.log()


def _poll_http(server, reg_id: str, key: str, body: dict) -> dict:  # type: ignore[no-untyped-def]
    token = device_token(server, reg_id, key)
    status, _, started = https(server, "PUT", f"/{server.id_scope}/registrations/{reg_id}/"
                               f"register?api-version={API}", json.dumps(body),
                               {"Authorization": token})
    assert status == 202, started
    for _ in range(100):
        status, _, polled = https(server, "GET", f"/{server.id_scope}/registrations/{reg_id}/"
                                  f"operations/{started['operationId']}?api-version={API}",
                                  headers={"Authorization": token})
        if polled["status"] != "assigning":
            return polled
        time.sleep(0.1)
    raise AssertionError("still assigning")


def test_custom_allocation_tutorial(two_hubs) -> None:  # type: ignore[no-untyped-def]
    server = two_hubs
    toasters, heatpumps = server.hub_hosts
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    webhook = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "custom_allocation_webhook.py"),
         "--port", str(port), "--toaster-hub-match", toasters,
         "--heatpump-hub-match", heatpumps], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        group_id = "contoso-custom-allocated-devices"
        group = service_client(server).enrollment_group.create_or_update(group_id, {
            "enrollmentGroupId": group_id, "attestation": {"type": "symmetricKey"},
            "allocationPolicy": "custom", "iotHubs": [toasters, heatpumps],
            "customAllocationDefinition": {
                "webhookUrl": f"http://127.0.0.1:{port}/api/allocate?code=s3cret",
                "apiVersion": "2021-10-01"}})
        key = group["attestation"]["symmetricKey"]["primaryKey"]
        toaster = "breakroom499-contoso-tstrsd-007"
        heatpump = "mainbuilding167-contoso-hpsd-088"
        payload = {"MyDeviceFirmwareVersion": "12.0.2.5"}
        result = provision(server, toaster, derive_device_key(key, toaster), payload=payload)
        assert result.registration_state.assigned_hub == toasters
        answer = json.loads(result.registration_state.response_payload)
        assert answer["devicePayload"] == payload  # the device payload reached the webhook
        status, twin = hub_rest(server, "GET", f"/twins/{toaster}", hub=toasters)
        assert status == 200 and twin["tags"] == {"deviceType": "toaster"}
        assert twin["properties"]["desired"]["darknessSetting"] == "medium"
        result = provision(server, heatpump, derive_device_key(key, heatpump))
        assert result.registration_state.assigned_hub == heatpumps
        unknown = "mystery-device-001"
        polled = _poll_http(server, unknown, derive_device_key(key, unknown),
                            {"registrationId": unknown})
        assert polled["status"] == "failed"
        assert polled["registrationState"]["errorCode"] == 400207
        assert "400" in polled["registrationState"]["errorMessage"]
    finally:
        webhook.terminate()
        webhook.wait(10)
    assert b"s3cret" not in Path(server.log_path).read_bytes()


@pytest.mark.parametrize("policy,substatus,keeps_data,moves", [
    ({"updateHubAssignment": True, "migrateDeviceData": True}, "deviceDataMigrated", True, True),
    ({"updateHubAssignment": True, "migrateDeviceData": False}, "deviceDataReset", False, True),
    ({"updateHubAssignment": False, "migrateDeviceData": True}, "initialAssignment", True, False),
], ids=["migrate", "reset", "never"])
def test_reprovisioning_policies(two_hubs, policy, substatus, keeps_data, moves) -> None:  # type: ignore[no-untyped-def]
    server = two_hubs
    h1, h2 = server.hub_hosts
    client = service_client(server)
    reg_id = f"repro-{uuid.uuid4().hex[:6]}"
    created = client.enrollment.create_or_update(reg_id, {
        "registrationId": reg_id, "attestation": {"type": "symmetricKey"},
        "iotHubs": [h1], "reprovisionPolicy": policy,
        "initialTwin": {"tags": {"fleet": "a"}, "properties": {"desired": {"mode": "initial"}}}})
    key = created["attestation"]["symmetricKey"]["primaryKey"]
    first = provision(server, reg_id, key)
    assert first.registration_state.assigned_hub == h1
    assert first.registration_state.sub_status == "initialAssignment"
    status, _ = hub_rest(server, "PATCH", f"/twins/{reg_id}",
                         {"properties": {"desired": {"mode": "tuned"}}}, hub=h1)
    assert status == 200

    created["iotHubs"] = [h2]
    client.enrollment.create_or_update(reg_id, created, if_match=created["etag"])
    second = provision(server, reg_id, key)
    state = second.registration_state
    assert state.sub_status == substatus
    assert state.assigned_hub == (h2 if moves else h1)
    status, twin = hub_rest(server, "GET", f"/twins/{reg_id}", hub=state.assigned_hub)
    assert status == 200
    assert twin["properties"]["desired"]["mode"] == ("tuned" if keeps_data else "initial")
    assert twin["tags"] == {"fleet": "a"}
    if moves:
        status, _ = hub_rest(server, "GET", f"/devices/{reg_id}", hub=h1)
        assert status == 404  # the old identity is gone
        device = IoTHubDeviceClient.create_from_symmetric_key(
            symmetric_key=key, hostname=h2, device_id=reg_id,
            server_verification_cert=server.ca_pem)
        try:
            device.connect()
            device.send_message(telemetry("after the move"))
        finally:
            device.shutdown()
        # and back again: the hub it had before
        updated = client.enrollment.get(reg_id)
        updated["attestation"] = {"type": "symmetricKey", "symmetricKey": {
            "primaryKey": key, "secondaryKey": created["attestation"]["symmetricKey"][
                "secondaryKey"]}}
        updated["iotHubs"] = [h1]
        client.enrollment.create_or_update(reg_id, updated, if_match=updated["etag"])
        back = provision(server, reg_id, key)
        assert back.registration_state.assigned_hub == h1
        assert back.registration_state.sub_status == "reprovisionedToInitialAssignment"


def test_disenrollment_and_reenrollment(two_hubs) -> None:  # type: ignore[no-untyped-def]
    server = two_hubs
    client = service_client(server)
    group_id = f"fleet-{uuid.uuid4().hex[:6]}"
    group = client.enrollment_group.create_or_update(group_id, {
        "enrollmentGroupId": group_id, "attestation": {"type": "symmetricKey"}})
    group_key = group["attestation"]["symmetricKey"]["primaryKey"]
    bad, good = f"{group_id}-stolen", f"{group_id}-fine"
    for reg_id in (bad, good):
        assert provision(server, reg_id, derive_device_key(group_key, reg_id)).status == \
            "assigned"
    # blocklist one device of the group: a disabled individual enrollment, any attestation
    status, result = admin(server, "POST", f"/registrations/{bad}/deprovision", {})
    assert status == 200, result
    assert "disabled individual enrollment" in result["enrollment"]
    hub = server.hub_hosts[0] if "deleted from " + server.hub_hosts[0] in result[
        "hubIdentity"] else server.hub_hosts[1]
    assert hub_rest(server, "GET", f"/devices/{bad}", hub=hub)[0] == 404
    polled = _poll_http(server, bad, derive_device_key(group_key, bad),
                        {"registrationId": bad})
    assert polled["status"] == "failed" and polled["registrationState"]["errorCode"] == 403001
    assert provision(server, good, derive_device_key(group_key, good)).status == "assigned"

    # disable the whole group, then enable it again
    current = client.enrollment_group.get(group_id)
    current["provisioningStatus"] = "disabled"
    current["attestation"] = group["attestation"]
    client.enrollment_group.create_or_update(group_id, current, if_match=current["etag"])
    polled = _poll_http(server, good, derive_device_key(group_key, good),
                        {"registrationId": good})
    assert polled["status"] == "failed"
    current = client.enrollment_group.get(group_id)
    current["provisioningStatus"] = "enabled"
    current["attestation"] = group["attestation"]
    client.enrollment_group.create_or_update(group_id, current, if_match=current["etag"])
    assert provision(server, good, derive_device_key(group_key, good)).status == "assigned"

    # re-enroll the blocked device: remove its disabled entry and its registration record
    client.enrollment.delete(bad)
    try:
        client.device_registration_state.delete(bad)
    except Exception:
        pass
    again = provision(server, bad, derive_device_key(group_key, bad))
    assert again.status == "assigned"
    assert again.registration_state.sub_status == "initialAssignment"


def test_external_hub_receives_the_device(tmp_path) -> None:  # type: ignore[no-untyped-def]
    other = start_server(tmp_path / "b")
    try:
        main = start_server(tmp_path / "a", extra_env={
            "OPENDPS_EXTERNAL_HUB_CA_FILE": other.info["caCertificate"]})
        try:
            external = other.info["hubs"][0]
            status, body = admin(main, "PUT", f"/linkedHubs/{external['hostName']}",
                                 {"connectionString": external["connectionString"],
                                  "allocationWeight": 1})
            assert status == 201, body
            assert "****" in body["connectionString"]
            reg_id = f"ext-{uuid.uuid4().hex[:6]}"
            created = service_client(main).enrollment.create_or_update(reg_id, {
                "registrationId": reg_id, "attestation": {"type": "symmetricKey"},
                "iotHubs": [external["hostName"]],
                "initialTwin": {"properties": {"desired": {"site": "remote"}}}})
            key = created["attestation"]["symmetricKey"]["primaryKey"]
            result = provision(main, reg_id, key)
            assert result.registration_state.assigned_hub == other.host
            device = IoTHubDeviceClient.create_from_symmetric_key(
                symmetric_key=key, hostname=other.host, device_id=reg_id,
                server_verification_cert=other.ca_pem)
            try:
                device.connect()
                assert device.get_twin()["desired"]["site"] == "remote"
                device.send_message(telemetry("hello from afar"))
            finally:
                device.shutdown()
            out = subprocess.run([sys.executable, "-m", "opendps", "hub", "monitor-events",
                                  "--device-id", reg_id, "--timeout", "1", "--json"],
                                 env=other.env, capture_output=True, text=True, timeout=30)
            assert [json.loads(line)["event"]["payload"] for line in out.stdout.splitlines()] \
                == ["hello from afar"]
        finally:
            main.stop()
    finally:
        other.stop()
