"""Bad input on the device API: each answered with the right DPS error, the server still
serving afterwards. HTTPS cases use raw requests; MQTT cases raw packets and bytes."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from opendps.protocol import sas
from opendps.protocol.mqtt import ConnAck, Publish, SubAck, Subscribe

from .raw import API, RawMqtt, device_token, https, register
from .sdk_helpers import provision, service_client, symmetric_key_enrollment


@pytest.fixture(scope="module")
def server(opendps_server):  # type: ignore[no-untyped-def]
    return opendps_server


@pytest.fixture(scope="module")
def enrollment(server):  # type: ignore[no-untyped-def]
    return symmetric_key_enrollment(server, "err")


def assert_dps_error(status: int, headers: dict, body: dict, want_status: int,
                     want_code: int) -> None:
    assert status == want_status, body
    assert body["errorCode"] == want_code
    assert headers["x-ms-error-code"] == str(want_code)
    assert headers["content-type"].startswith("application/json")
    assert body["trackingId"] and body["message"]
    assert body["timestampUtc"].endswith("Z") and len(body["timestampUtc"].split(".")[1]) == 8


def still_serving(server, enrollment) -> None:  # type: ignore[no-untyped-def]
    registration_id, key = enrollment
    status, _, body = register(server, registration_id,
                               device_token(server, registration_id, key))
    assert status == 202 and body["status"] == "assigning"


def test_https_register_then_poll_assigned(server, enrollment) -> None:  # type: ignore[no-untyped-def]
    registration_id, key = enrollment
    token = device_token(server, registration_id, key)
    status, headers, body = register(server, registration_id, token,
                                     {"registrationId": registration_id, "payload": None})
    assert status == 202
    assert headers["retry-after"] == "3"
    assert body["status"] == "assigning"
    assert body["registrationState"] == {"registrationId": registration_id,
                                         "status": "assigning"}
    op = body["operationId"]
    assert headers["location"].endswith(f"/operations/{op}")
    status, _, polled = https(server, "GET", f"/{server.id_scope}/registrations/"
                              f"{registration_id}/operations/{op}?api-version={API}",
                              headers={"Authorization": token})
    assert status == 200
    state = polled["registrationState"]
    assert polled["status"] == "assigned" and polled["operationId"] == op
    assert state["assignedHub"] == server.host and state["deviceId"] == registration_id
    assert state["substatus"] == "initialAssignment"
    assert state["createdDateTimeUtc"].endswith("Z")
    assert state["etag"]
    # the status lookup returns the registration record without an operation wrapper
    status, _, lookup = https(server, "POST", f"/{server.id_scope}/registrations/"
                              f"{registration_id}?api-version={API}",
                              json.dumps({"registrationId": registration_id}),
                              {"Authorization": token})
    assert status == 200 and lookup["assignedHub"] == server.host and "operationId" not in lookup


def test_node_style_token_unencoded_sr_and_field_order(server, enrollment) -> None:  # type: ignore[no-untyped-def]
    registration_id, key = enrollment
    resource = f"{server.id_scope}/registrations/{registration_id}"
    se = int(time.time()) + 600
    import base64
    import hashlib
    import hmac
    import urllib.parse

    sig = base64.b64encode(hmac.new(base64.b64decode(key), f"{resource}\n{se}".encode(),
                                    hashlib.sha256).digest()).decode()
    token = (f"SharedAccessSignature sr={resource}&sig={urllib.parse.quote(sig, safe='')}"
             f"&skn=registration&se={se}")
    status, _, body = register(server, registration_id, token)
    assert status == 202, body


@pytest.mark.parametrize("case", ["wrong-key", "expired", "other-regid", "other-scope",
                                  "unknown-regid", "no-token", "garbage-token"])
def test_https_unauthorized(server, enrollment, case: str) -> None:  # type: ignore[no-untyped-def]
    registration_id, key = enrollment
    scope = server.id_scope
    target = registration_id
    wrong = "A" * 43 + "="
    token = {
        "wrong-key": device_token(server, registration_id, wrong),
        "expired": device_token(server, registration_id, key, ttl=-10),
        "other-regid": sas.generate(f"{scope}/registrations/someone-else", key),
        "other-scope": device_token(server, registration_id, key),
        "unknown-regid": device_token(server, "nobody-knows-me", wrong),
        "no-token": None,
        "garbage-token": "Bearer xyz",
    }[case]
    if case == "unknown-regid":
        target = "nobody-knows-me"
    status, headers, body = register(server, target, token,
                                     scope="0ne00000000" if case == "other-scope" else None)
    assert_dps_error(status, headers, body, 401, 401002)
    if case in ("wrong-key", "unknown-regid"):
        # an unknown device and a wrong key are indistinguishable
        assert body["message"] == "Unauthorized"
    still_serving(server, enrollment)


def test_disabled_enrollment_fails_with_reason(server) -> None:  # type: ignore[no-untyped-def]
    client = service_client(server)
    registration_id = f"off-{uuid.uuid4().hex[:8]}"
    created = client.enrollment.create_or_update(registration_id, {
        "registrationId": registration_id, "attestation": {"type": "symmetricKey"},
        "provisioningStatus": "disabled"})
    key = created["attestation"]["symmetricKey"]["primaryKey"]
    token = device_token(server, registration_id, key)
    status, _, body = register(server, registration_id, token)
    assert status == 202
    status, _, polled = https(server, "GET", f"/{server.id_scope}/registrations/"
                              f"{registration_id}/operations/{body['operationId']}"
                              f"?api-version={API}", headers={"Authorization": token})
    assert status == 200 and polled["status"] == "failed"
    assert polled["registrationState"]["errorCode"] == 403001
    assert "disabled" in polled["registrationState"]["errorMessage"]
    record = client.device_registration_state.get(registration_id)
    assert record["status"] == "disabled"


@pytest.mark.parametrize("body,code", [
    ("{not json", 400001),
    ("[1,2,3]", 400001),
    ('{"registrationId": 42}', 400002),
    ('{"registrationId": "someone-else"}', 400005),
])
def test_https_malformed_body(server, enrollment, body: str, code: int) -> None:  # type: ignore[no-untyped-def]
    registration_id, key = enrollment
    status, headers, data = https(
        server, "PUT", f"/{server.id_scope}/registrations/{registration_id}/register"
        f"?api-version={API}", body, {"Authorization": device_token(server, registration_id, key)})
    assert_dps_error(status, headers, data, code // 1000, code)
    still_serving(server, enrollment)


def test_https_oversized_payload(server, enrollment) -> None:  # type: ignore[no-untyped-def]
    registration_id, key = enrollment
    body = json.dumps({"registrationId": registration_id, "payload": {"x": "y" * 100_000}})
    status, headers, data = https(
        server, "PUT", f"/{server.id_scope}/registrations/{registration_id}/register"
        f"?api-version={API}", body, {"Authorization": device_token(server, registration_id, key)})
    assert_dps_error(status, headers, data, 413, 413002)
    still_serving(server, enrollment)


@pytest.mark.parametrize("bad_id", ["-leading", "trailing.", "has space", "x" * 129, "ümlaut"])
def test_https_invalid_registration_id(server, enrollment, bad_id: str) -> None:  # type: ignore[no-untyped-def]
    import urllib.parse

    token = device_token(server, bad_id, enrollment[1])
    status, headers, data = https(
        server, "PUT", f"/{server.id_scope}/registrations/{urllib.parse.quote(bad_id)}/register"
        f"?api-version={API}", json.dumps({"registrationId": bad_id}), {"Authorization": token})
    assert_dps_error(status, headers, data, 400, 400002)
    still_serving(server, enrollment)


def test_registration_id_is_case_insensitive(server, enrollment) -> None:  # type: ignore[no-untyped-def]
    registration_id, key = enrollment
    upper = registration_id.upper()
    status, _, body = register(server, upper, device_token(server, upper, key))
    assert status == 202, body


def test_missing_api_version_and_unknown_path(server) -> None:  # type: ignore[no-untyped-def]
    status, headers, data = https(server, "PUT", f"/{server.id_scope}/registrations/x/register",
                                  "{}")
    assert_dps_error(status, headers, data, 400, 400003)
    status, headers, data = https(server, "GET", "/no/such/thing")
    assert_dps_error(status, headers, data, 404, 404000)


def test_unknown_operation_id(server, enrollment) -> None:  # type: ignore[no-untyped-def]
    registration_id, key = enrollment
    status, headers, data = https(
        server, "GET", f"/{server.id_scope}/registrations/{registration_id}/operations/"
        f"4.deadbeef.nope?api-version={API}",
        headers={"Authorization": device_token(server, registration_id, key)})
    assert_dps_error(status, headers, data, 404, 404202)


# ---------------------------------------------------------------------------------- MQTT
def dps_username(server, registration_id: str) -> str:  # type: ignore[no-untyped-def]
    return f"{server.id_scope}/registrations/{registration_id}/api-version={API}&ClientVersion=t"


def test_mqtt_register_and_poll_raw(server, enrollment) -> None:  # type: ignore[no-untyped-def]
    registration_id, key = enrollment
    client = RawMqtt(server)
    try:
        ack = client.connect(registration_id, dps_username(server, registration_id),
                             device_token(server, registration_id, key))
        assert ack.return_code == 0 and ack.session_present is False
        client.send(Subscribe(1, (("$dps/registrations/res/#", 2),)))
        sub = client.next()
        assert isinstance(sub, SubAck) and sub.return_codes == (1,)
        client.send(Publish("$dps/registrations/PUT/iotdps-register/?$rid=7",
                            json.dumps({"registrationId": registration_id}).encode(), 1, 2))
        replies = [client.next(), client.next()]
        response = next(p for p in replies if isinstance(p, Publish))
        assert response.topic == "$dps/registrations/res/202/?$rid=7&retry-after=3"
        op = json.loads(response.payload)["operationId"]
        client.send(Publish(f"$dps/registrations/GET/iotdps-get-operationstatus/?$rid=8"
                            f"&operationId={op}", b" ", 0))
        polled = client.next()
        assert isinstance(polled, Publish)
        assert polled.topic == "$dps/registrations/res/200/?$rid=8"
        assert json.loads(polled.payload)["status"] == "assigned"
    finally:
        client.close()


@pytest.mark.parametrize("case,expected_rc", [
    ("wrong-key", 5), ("expired", 5), ("unknown", 5), ("wrong-username", 4),
    ("client-id-mismatch", 2), ("no-password", 5)])
def test_mqtt_connect_refused(server, enrollment, case: str, expected_rc: int) -> None:  # type: ignore[no-untyped-def]
    registration_id, key = enrollment
    username = dps_username(server, registration_id)
    client_id = registration_id
    password: str | None = device_token(server, registration_id, key)
    if case == "wrong-key":
        password = device_token(server, registration_id, "B" * 43 + "=")
    elif case == "expired":
        password = device_token(server, registration_id, key, ttl=-5)
    elif case == "unknown":
        username = dps_username(server, "ghost-device")
        client_id = "ghost-device"
        password = device_token(server, "ghost-device", key)
    elif case == "wrong-username":
        username = "just-a-name"
    elif case == "client-id-mismatch":
        client_id = "someone-else"
    elif case == "no-password":
        password = None
    client = RawMqtt(server)
    try:
        ack = client.connect(client_id, username, password)
        assert isinstance(ack, ConnAck) and ack.return_code == expected_rc
        assert client.closed_by_server()
    finally:
        client.close()
    still_serving(server, enrollment)


@pytest.mark.parametrize("garbage", [
    b"\x00\x00\x00\x00",  # reserved packet type 0
    b"\x10\xff\xff\xff\xff\x7f",  # remaining length over 4 bytes
    b"\x10\x0c\x00\x04MQTT\x04",  # truncated CONNECT, then EOF
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\x30\x05\x00\x01a",  # PUBLISH before CONNECT
])
def test_mqtt_garbage_bytes(server, enrollment, garbage: bytes) -> None:  # type: ignore[no-untyped-def]
    client = RawMqtt(server)
    try:
        client.send_bytes(garbage)
        if garbage.startswith(b"\x10\x0c"):
            # half-close: the TLS layer is gone from here on, so read raw records to EOF
            client.sock.shutdown(1)
            client.sock.settimeout(10)
            while chunk := client.sock.recv(65536):
                assert chunk[:1] in (b"\x15", b"\x16", b"\x17")  # TLS records only
        else:
            assert client.closed_by_server()
    finally:
        client.close()
    still_serving(server, enrollment)


def test_mqtt_wrong_protocol_level_gets_connack_1(server, enrollment) -> None:  # type: ignore[no-untyped-def]
    client = RawMqtt(server)
    try:
        # CONNECT with protocol level 3 ("MQIsdp" style level on the MQTT name)
        client.send_bytes(b"\x10\x0d\x00\x04MQTT\x03\x02\x00\x3c\x00\x01x")
        data = client.sock.recv(16)
        assert data == b"\x20\x02\x00\x01"
    finally:
        client.close()
    still_serving(server, enrollment)


def test_mqtt_publish_to_unknown_topic_closes(server, enrollment) -> None:  # type: ignore[no-untyped-def]
    registration_id, key = enrollment
    client = RawMqtt(server)
    try:
        client.connect(registration_id, dps_username(server, registration_id),
                       device_token(server, registration_id, key))
        client.send(Publish("devices/x/messages/events/", b"hi", 1, 3))
        assert client.closed_by_server()
    finally:
        client.close()
    still_serving(server, enrollment)


def test_mqtt_malformed_register_body(server, enrollment) -> None:  # type: ignore[no-untyped-def]
    registration_id, key = enrollment
    client = RawMqtt(server)
    try:
        client.connect(registration_id, dps_username(server, registration_id),
                       device_token(server, registration_id, key))
        client.send(Subscribe(1, (("$dps/registrations/res/#", 1),)))
        client.next()
        client.send(Publish("$dps/registrations/PUT/iotdps-register/?$rid=9", b"{oops", 1, 2))
        response = None
        for _ in range(2):
            event = client.next()
            if isinstance(event, Publish):
                response = event
        assert response is not None
        assert response.topic == "$dps/registrations/res/400/?$rid=9"
        body = json.loads(response.payload)
        assert body["errorCode"] == 400001 and body["trackingId"]
    finally:
        client.close()


def test_sdk_still_provisions_after_abuse(server, enrollment) -> None:  # type: ignore[no-untyped-def]
    registration_id, key = enrollment
    result = provision(server, registration_id, key)
    assert result.status == "assigned"
