"""The DPS service API through the official service SDK (azure-iot-deviceprovisioning):
lifecycles with etags, paging, registration states, rights; on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.iot.deviceprovisioning import DeviceProvisioningClient

from opendps.protocol.sas import derive_device_key

from .raw import https
from .sdk_helpers import provision, service_client

pytestmark = pytest.mark.sdk


@pytest.fixture(scope="module")
def server(any_backend_server):  # type: ignore[no-untyped-def]
    return any_backend_server


def test_enrollment_lifecycle_with_etags(server) -> None:  # type: ignore[no-untyped-def]
    client = service_client(server)
    reg_id = f"life-{uuid.uuid4().hex[:8]}"
    created = client.enrollment.create_or_update(reg_id, {
        "registrationId": reg_id, "attestation": {"type": "symmetricKey"},
        "capabilities": {"iotEdge": True}, "deviceId": "custom-device-id"})
    keys = created["attestation"]["symmetricKey"]
    assert len(keys["primaryKey"]) == 88 and keys["primaryKey"] != keys["secondaryKey"]
    assert created["etag"].startswith('"') and created["provisioningStatus"] == "enabled"
    assert created["reprovisionPolicy"] == {"updateHubAssignment": True,
                                           "migrateDeviceData": True}

    fetched = client.enrollment.get(reg_id)
    assert fetched["etag"] == created["etag"]
    assert fetched["attestation"] == {"type": "symmetricKey", "symmetricKey": {}}
    assert client.enrollment.get_attestation_mechanism(reg_id)["symmetricKey"] == keys

    fetched["provisioningStatus"] = "disabled"
    fetched["attestation"] = {"type": "symmetricKey", "symmetricKey": keys}
    updated = client.enrollment.create_or_update(reg_id, fetched, if_match=created["etag"])
    assert updated["etag"] != created["etag"] and updated["provisioningStatus"] == "disabled"
    assert updated["createdDateTimeUtc"] == created["createdDateTimeUtc"]

    with pytest.raises(HttpResponseError) as stale:
        client.enrollment.create_or_update(reg_id, fetched, if_match=created["etag"])
    assert stale.value.status_code == 412
    with pytest.raises(HttpResponseError) as stale_delete:
        client.enrollment.delete(reg_id, if_match=created["etag"])
    assert stale_delete.value.status_code == 412
    # unquoted If-Match works too (Node copies the etag verbatim, C# adds quotes)
    client.enrollment.delete(reg_id, if_match=updated["etag"].strip('"'))
    with pytest.raises(ResourceNotFoundError):
        client.enrollment.get(reg_id)


def test_group_lifecycle(server) -> None:  # type: ignore[no-untyped-def]
    client = service_client(server)
    group_id = f"grp-{uuid.uuid4().hex[:8]}"
    given = {"primaryKey": "A" * 86 + "==", "secondaryKey": "B" * 86 + "=="}
    created = client.enrollment_group.create_or_update(group_id, {
        "enrollmentGroupId": group_id,
        "attestation": {"type": "symmetricKey", "symmetricKey": given},
        "provisioningStatus": "disabled"})
    assert created["attestation"]["symmetricKey"] == given
    # re-PUT of the returned object (the Node sample's enable flow)
    created["provisioningStatus"] = "enabled"
    enabled = client.enrollment_group.create_or_update(group_id, created,
                                                       if_match=created["etag"])
    assert enabled["provisioningStatus"] == "enabled"
    assert client.enrollment_group.get(group_id)["enrollmentGroupId"] == group_id
    with pytest.raises(HttpResponseError) as stale:
        client.enrollment_group.delete(group_id, if_match=created["etag"])
    assert stale.value.status_code == 412
    client.enrollment_group.delete(group_id)
    with pytest.raises(ResourceNotFoundError):
        client.enrollment_group.get(group_id)


def test_query_paging(server) -> None:  # type: ignore[no-untyped-def]
    client = service_client(server)
    prefix = f"page-{uuid.uuid4().hex[:6]}"
    made = {f"{prefix}-{i:02d}" for i in range(7)}
    for reg_id in made:
        client.enrollment.create_or_update(reg_id, {
            "registrationId": reg_id, "attestation": {"type": "symmetricKey"}})
    pages = list(client.enrollment.query({"query": "SELECT * FROM enrollments"},
                                         top=3).by_page())
    seen = [e["registrationId"] for page in pages for e in page]
    assert made <= set(seen)
    assert len(seen) == len(set(seen))
    assert all(len(list(p)) <= 3 for p in pages)
    assert len(pages) >= 3


def test_registration_state_after_device_registered(server) -> None:  # type: ignore[no-untyped-def]
    client = service_client(server)
    group_id = f"rs-{uuid.uuid4().hex[:8]}"
    group = client.enrollment_group.create_or_update(group_id, {
        "enrollmentGroupId": group_id, "attestation": {"type": "symmetricKey"}})
    key = group["attestation"]["symmetricKey"]["primaryKey"]
    devices = [f"{group_id}-dev-{i}" for i in range(2)]
    for reg_id in devices:
        assert provision(server, reg_id, derive_device_key(key, reg_id)).status == "assigned"
    state = client.device_registration_state.get(devices[0])
    assert state["status"] == "assigned" and state["assignedHub"] == server.host
    assert state["deviceId"] == devices[0] and state["substatus"] == "initialAssignment"
    listed = list(client.device_registration_state.query(group_id, top=1))
    assert sorted(s["registrationId"] for s in listed) == sorted(devices)
    with pytest.raises(HttpResponseError) as stale:
        client.device_registration_state.delete(devices[0], if_match='"not-the-etag"')
    assert stale.value.status_code == 412
    client.device_registration_state.delete(devices[0], if_match=state["etag"])
    with pytest.raises(ResourceNotFoundError):
        client.device_registration_state.get(devices[0])


def test_bulk_operation(server) -> None:  # type: ignore[no-untyped-def]
    client = service_client(server)
    ids = [f"bulk-{uuid.uuid4().hex[:6]}" for _ in range(3)]
    result = client.enrollment.run_bulk_operation({"mode": "create", "enrollments": [
        {"registrationId": r, "attestation": {"type": "symmetricKey"}} for r in ids]})
    assert result == {"isSuccessful": True, "errors": []}
    again = client.enrollment.run_bulk_operation({"mode": "create", "enrollments": [
        {"registrationId": ids[0], "attestation": {"type": "symmetricKey"}}]})
    assert again["isSuccessful"] is False and again["errors"][0]["registrationId"] == ids[0]
    removed = client.enrollment.run_bulk_operation({"mode": "delete", "enrollments": [
        {"registrationId": r, "attestation": {"type": "symmetricKey"}} for r in ids]})
    assert removed["isSuccessful"] is True


def test_policy_without_right_gets_401(server) -> None:  # type: ignore[no-untyped-def]
    owner = service_client(server)
    import json

    from opendps.protocol import sas

    host = server.host
    owner_token = sas.generate(host, server.info["serviceConnectionString"].split(
        "SharedAccessKey=")[1], key_name="provisioningserviceowner")
    status, _, policy = https(server, "PUT", "/opendps/accesspolicies/readonly?api-version="
                              "2021-10-01", json.dumps({"rights": "EnrollmentRead"}),
                              {"Authorization": owner_token})
    assert status == 200, policy
    reader = DeviceProvisioningClient.from_connection_string(
        f"HostName={host};SharedAccessKeyName=readonly;SharedAccessKey={policy['primaryKey']}",
        connection_verify=server.info["caCertificate"])
    reg_id = f"rights-{uuid.uuid4().hex[:6]}"
    owner.enrollment.create_or_update(reg_id, {"registrationId": reg_id,
                                               "attestation": {"type": "symmetricKey"}})
    assert reader.enrollment.get(reg_id)["registrationId"] == reg_id
    with pytest.raises(HttpResponseError) as denied:
        reader.enrollment.delete(reg_id)
    assert denied.value.status_code == 401
    with pytest.raises(HttpResponseError) as denied_states:
        reader.device_registration_state.get(reg_id)
    assert denied_states.value.status_code == 401


@pytest.mark.parametrize("version", ["2018-09-01-preview", "2019-03-31", "2021-10-01"])
def test_service_api_versions(server, version: str) -> None:  # type: ignore[no-untyped-def]
    from opendps.protocol import sas

    key = server.info["serviceConnectionString"].split("SharedAccessKey=")[1]
    token = sas.generate(server.host, key, key_name="provisioningserviceowner")
    status, _, body = https(server, "POST", f"/enrollments/query?api-version={version}",
                                  '{"query": "SELECT * FROM enrollments"}',
                                  {"Authorization": token, "x-ms-max-item-count": "1"})
    assert status == 200 and isinstance(body, list)
    status, _, body = https(server, "POST", "/enrollments/query?api-version=2017-01-01",
                            '{"query": "SELECT *"}', {"Authorization": token})
    assert status == 400 and body["errorCode"] == 400003
    # case-insensitive paths (Node's /enrollmentgroups/…/attestationmechanism)
    status, _, body = https(server, "POST",
                            f"/ENROLLMENTGROUPS/query?api-version={version}",
                            '{"query": "SELECT *"}', {"Authorization": token})
    assert status == 200
