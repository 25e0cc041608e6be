"""X.509 attestation with the official Python device SDK: an individual self-signed device, a
group device on a verified root (leaf + intermediate sent), a group on an intermediate whose
root is verified; each then opens the hub with the same certificate and sends telemetry."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
from azure.iot.device import X509, IoTHubDeviceClient, ProvisioningDeviceClient

from .ca_rest import upload_and_prove
from .sdk_helpers import hub_rest, service_client, telemetry
from .x509_factory import device_files, make

pytestmark = pytest.mark.sdk


@pytest.fixture(scope="module")
def server(opendps_server):  # type: ignore[no-untyped-def]
    return opendps_server


def _provision_and_send(server, tmp_path, registration_id, leaf, *chain,  # type: ignore[no-untyped-def]
                        websockets=False):
    cert_file, key_file = device_files(tmp_path, leaf, *chain)
    x = X509(cert_file=str(cert_file), key_file=str(key_file))
    client = ProvisioningDeviceClient.create_from_x509_certificate(
        provisioning_host=server.host, registration_id=registration_id,
        id_scope=server.id_scope, x509=x, server_verification_cert=server.ca_pem,
        websockets=websockets)
    result = client.register()
    assert result.status == "assigned", result
    state = result.registration_state
    assert state.device_id == registration_id and state.assigned_hub == server.host
    device = IoTHubDeviceClient.create_from_x509_certificate(
        x509=X509(cert_file=str(cert_file), key_file=str(key_file)),
        hostname=state.assigned_hub, device_id=state.device_id,
        server_verification_cert=server.ca_pem, websockets=websockets)
    try:
        device.connect()
        device.send_message(telemetry(json.dumps({"x509": registration_id})))
    finally:
        device.shutdown()
    out = subprocess.run([sys.executable, "-m", "opendps", "hub", "monitor-events",
                          "--device-id", registration_id, "--timeout", "1", "--json"],
                         env=server.env, capture_output=True, text=True, timeout=30)
    payloads = [json.loads(line)["event"]["payload"] for line in out.stdout.splitlines()]
    assert payloads == [{"x509": registration_id}]
    return result


@pytest.mark.parametrize("websockets", [False, True], ids=["mqtt", "websocket"])
def test_individual_self_signed(server, tmp_path, websockets) -> None:  # type: ignore[no-untyped-def]
    reg_id = f"x509-ind-{uuid.uuid4().hex[:6]}"
    leaf = make(reg_id)
    service_client(server).enrollment.create_or_update(reg_id, {
        "registrationId": reg_id, "attestation": {"type": "x509", "x509": {
            "clientCertificates": {"primary": {"certificate": leaf.pem}}}}})
    _provision_and_send(server, tmp_path, reg_id, leaf, websockets=websockets)
    status, device = hub_rest(server, "GET", f"/devices/{reg_id}")
    assert status == 200 and device["authentication"]["type"] == "selfSigned"
    record = service_client(server).device_registration_state.get(reg_id)
    assert record["status"] == "assigned"


def test_group_on_verified_root_with_intermediate(server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    root = make("Contoso Root", ca=True)
    intermediate = make("Contoso Intermediate", root, ca=True)
    ca_name = f"root-{uuid.uuid4().hex[:6]}"
    upload_and_prove(server, ca_name, root)
    group_id = f"x509-grp-{uuid.uuid4().hex[:6]}"
    service_client(server).enrollment_group.create_or_update(group_id, {
        "enrollmentGroupId": group_id, "attestation": {"type": "x509", "x509": {
            "caReferences": {"primary": ca_name}}}})
    reg_id = f"x509-dev-{uuid.uuid4().hex[:6]}"
    leaf = make(reg_id, intermediate)
    _provision_and_send(server, tmp_path, reg_id, leaf, intermediate)
    status, device = hub_rest(server, "GET", f"/devices/{reg_id}")
    assert status == 200 and device["authentication"]["type"] == "certificateAuthority"
    states = list(service_client(server).device_registration_state.query(group_id))
    assert [s["registrationId"] for s in states] == [reg_id]


def test_group_on_intermediate_whose_root_is_verified(server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    root = make("Fabrikam Root", ca=True)
    intermediate = make("Fabrikam Line 2", root, ca=True)
    upload_and_prove(server, f"fab-{uuid.uuid4().hex[:6]}", root)
    group_id = f"x509-int-{uuid.uuid4().hex[:6]}"
    service_client(server).enrollment_group.create_or_update(group_id, {
        "enrollmentGroupId": group_id, "attestation": {"type": "x509", "x509": {
            "signingCertificates": {"primary": {"certificate": intermediate.pem}}}}})
    reg_id = f"x509-line2-{uuid.uuid4().hex[:6]}"
    leaf = make(reg_id, intermediate)
    result = _provision_and_send(server, tmp_path, reg_id, leaf, intermediate)
    assert result.registration_state.sub_status == "initialAssignment"
