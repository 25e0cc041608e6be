"""Bad chains, each refused with 401 / 401002 and a message that names the failing certificate
and check; lookup order; proof-of-possession failures. Driven over HTTPS with a TLS client
certificate, the way C, Node and Edge devices register."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import ssl
import uuid
from pathlib import Path

import pytest

from .ca_rest import call, upload_and_prove
from .raw import API
from .sdk_helpers import service_client
from .x509_factory import NOW, Issued, device_files, make


@pytest.fixture(scope="module")
def server(opendps_server):  # type: ignore[no-untyped-def]
    return opendps_server


@pytest.fixture(scope="module")
def pki(server):  # type: ignore[no-untyped-def]
    """A verified root with a group on it, and an intermediate under it."""
    root = make("Matrix Root", ca=True)
    intermediate = make("Matrix Intermediate", root, ca=True)
    name = f"matrix-{uuid.uuid4().hex[:6]}"
    upload_and_prove(server, name, root)
    group_id = f"matrix-{uuid.uuid4().hex[:6]}"
    service_client(server).enrollment_group.create_or_update(group_id, {
        "enrollmentGroupId": group_id, "attestation": {"type": "x509", "x509": {
            "caReferences": {"primary": name}}}})
    return {"root": root, "intermediate": intermediate, "ca_name": name, "group": group_id}


def register_with_cert(server, tmp: Path, registration_id: str, leaf: Issued,  # type: ignore[no-untyped-def]
                       *chain: Issued) -> tuple[int, dict]:
    cert_file, key_file = device_files(tmp, leaf, *chain)
    ctx = ssl.create_default_context(cafile=server.info["caCertificate"])
    ctx.load_cert_chain(str(cert_file), str(key_file))
    conn = http.client.HTTPSConnection(server.host, 443, context=ctx, timeout=10)
    try:
        conn.request("PUT", f"/{server.id_scope}/registrations/{registration_id}/register"
                     f"?api-version={API}", json.dumps({"registrationId": registration_id}),
                     {"Content-Type": "application/json"})
        resp = conn.getresponse()
        body = json.loads(resp.read())
        if resp.status != 202:
            return resp.status, body
        conn.request("GET", f"/{server.id_scope}/registrations/{registration_id}/operations/"
                     f"{body['operationId']}?api-version={API}")
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def expect_401(status: int, body: dict, *words: str) -> None:
    assert status == 401, body
    assert body["errorCode"] == 401002
    for word in words:
        assert word.lower() in body["message"].lower(), body["message"]


def test_good_chain_is_assigned(server, pki, tmp_path) -> None:  # type: ignore[no-untyped-def]
    reg_id = f"good-{uuid.uuid4().hex[:6]}"
    status, body = register_with_cert(server, tmp_path, reg_id,
                                      make(reg_id, pki["intermediate"]), pki["intermediate"])
    assert status == 200 and body["status"] == "assigned", body
    x509_block = body["registrationState"]["x509"]
    assert x509_block["enrollmentGroupId"] == pki["group"]
    assert x509_block["certificateInfo"]["subjectName"] == f"CN={reg_id}"
    assert x509_block["signingCertificateInfo"]["subjectName"] == "CN=Matrix Root"


@pytest.mark.parametrize("case", [
    "expired-leaf", "not-yet-valid-leaf", "unknown-ca", "intermediate-not-ca", "pathlen",
    "cn-mismatch", "cn-too-long", "missing-intermediate", "unverified-root"])
def test_bad_chain(server, pki, tmp_path, case: str) -> None:  # type: ignore[no-untyped-def]
    reg_id = f"bad-{uuid.uuid4().hex[:6]}"
    inter = pki["intermediate"]
    if case == "expired-leaf":
        leaf = make(reg_id, inter, not_after=NOW - dt.timedelta(hours=1))
        status, body = register_with_cert(server, tmp_path, reg_id, leaf, inter)
        expect_401(status, body, f"CN={reg_id}", "expired")
    elif case == "not-yet-valid-leaf":
        leaf = make(reg_id, inter, not_before=NOW + dt.timedelta(days=1))
        status, body = register_with_cert(server, tmp_path, reg_id, leaf, inter)
        expect_401(status, body, f"CN={reg_id}", "not valid before")
    elif case == "unknown-ca":
        stranger = make("Stranger Root", ca=True)
        status, body = register_with_cert(server, tmp_path, reg_id, make(reg_id, stranger))
        expect_401(status, body, "CN=Stranger Root", "neither a verified CA")
    elif case == "intermediate-not-ca":
        fake_int = make("Not A CA", pki["root"], ca=False)
        leaf = make(reg_id, fake_int)
        status, body = register_with_cert(server, tmp_path, reg_id, leaf, fake_int)
        expect_401(status, body, "CN=Not A CA", "not a CA")
    elif case == "pathlen":
        strict_root = make("Strict Root", ca=True, pathlen=0)
        name = f"strict-{uuid.uuid4().hex[:6]}"
        upload_and_prove(server, name, strict_root)
        group = f"strict-{uuid.uuid4().hex[:6]}"
        service_client(server).enrollment_group.create_or_update(group, {
            "enrollmentGroupId": group, "attestation": {"type": "x509", "x509": {
                "caReferences": {"primary": name}}}})
        strict_int = make("Strict Intermediate", strict_root, ca=True)
        leaf = make(reg_id, strict_int)
        status, body = register_with_cert(server, tmp_path, reg_id, leaf, strict_int)
        expect_401(status, body, "CN=Strict Root", "pathlen")
    elif case == "cn-mismatch":
        leaf = make("somebody-else", inter)
        status, body = register_with_cert(server, tmp_path, reg_id, leaf, inter)
        expect_401(status, body, "somebody-else", reg_id, "does not match")
    elif case == "cn-too-long":
        long_id = "d" * 65
        leaf = make(long_id, inter)
        status, body = register_with_cert(server, tmp_path, long_id, leaf, inter)
        expect_401(status, body, "64")
    elif case == "missing-intermediate":
        leaf = make(reg_id, inter)
        status, body = register_with_cert(server, tmp_path, reg_id, leaf)
        expect_401(status, body, "CN=Matrix Intermediate", "not presented")
    elif case == "unverified-root":
        lazy_root = make("Unverified Root", ca=True)
        name = f"lazy-{uuid.uuid4().hex[:6]}"
        status, _ = call(server, "PUT", f"/{name}", {"certificate": lazy_root.pem})
        assert status == 201
        group = f"lazy-{uuid.uuid4().hex[:6]}"
        service_client(server).enrollment_group.create_or_update(group, {
            "enrollmentGroupId": group, "attestation": {"type": "x509", "x509": {
                "caReferences": {"primary": name}}}})
        status, body = register_with_cert(server, tmp_path, reg_id, make(reg_id, lazy_root))
        expect_401(status, body, "CN=Unverified Root", "neither a verified CA")


def test_disabled_individual_blocks_over_enabled_group(server, pki, tmp_path) -> None:  # type: ignore[no-untyped-def]
    reg_id = f"blocked-{uuid.uuid4().hex[:6]}"
    service_client(server).enrollment.create_or_update(reg_id, {
        "registrationId": reg_id, "attestation": {"type": "symmetricKey"},
        "provisioningStatus": "disabled"})
    leaf = make(reg_id, pki["intermediate"])
    status, body = register_with_cert(server, tmp_path, reg_id, leaf, pki["intermediate"])
    expect_401(status, body, f"CN={reg_id}", "disabled")


def test_deleted_group_falls_back_to_enabled_parent(server, pki, tmp_path) -> None:  # type: ignore[no-untyped-def]
    client = service_client(server)
    child = f"child-{uuid.uuid4().hex[:6]}"
    client.enrollment_group.create_or_update(child, {
        "enrollmentGroupId": child, "attestation": {"type": "x509", "x509": {
            "signingCertificates": {"primary": {"certificate": pki["intermediate"].pem}}}}})
    first = f"kid-{uuid.uuid4().hex[:6]}"
    status, body = register_with_cert(server, tmp_path, first, make(first, pki["intermediate"]),
                                      pki["intermediate"])
    assert status == 200 and body["registrationState"]["x509"]["enrollmentGroupId"] == child
    client.enrollment_group.delete(child)
    second = f"kid-{uuid.uuid4().hex[:6]}"
    status, body = register_with_cert(server, tmp_path, second,
                                      make(second, pki["intermediate"]), pki["intermediate"])
    assert status == 200, body
    assert body["registrationState"]["x509"]["enrollmentGroupId"] == pki["group"]


def test_disabled_intermediate_group_blocks_its_subtree(server, pki, tmp_path) -> None:  # type: ignore[no-untyped-def]
    other_int = make("Matrix Intermediate B", pki["root"], ca=True)
    group = f"off-{uuid.uuid4().hex[:6]}"
    service_client(server).enrollment_group.create_or_update(group, {
        "enrollmentGroupId": group, "provisioningStatus": "disabled",
        "attestation": {"type": "x509", "x509": {
            "signingCertificates": {"primary": {"certificate": other_int.pem}}}}})
    reg_id = f"sub-{uuid.uuid4().hex[:6]}"
    status, body = register_with_cert(server, tmp_path, reg_id, make(reg_id, other_int),
                                      other_int)
    expect_401(status, body, "disabled enrollment group")


def test_certificate_rolling(server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    reg_id = f"roll-{uuid.uuid4().hex[:6]}"
    old, new = make(reg_id), make(reg_id)
    client = service_client(server)
    created = client.enrollment.create_or_update(reg_id, {
        "registrationId": reg_id, "attestation": {"type": "x509", "x509": {
            "clientCertificates": {"primary": {"certificate": old.pem},
                                   "secondary": {"certificate": new.pem}}}}})
    for cert in (old, new):
        status, body = register_with_cert(server, tmp_path, reg_id, cert)
        assert status == 200 and body["status"] == "assigned", body
    created["attestation"] = {"type": "x509", "x509": {
        "clientCertificates": {"primary": {"certificate": make(reg_id).pem},
                               "secondary": {"certificate": new.pem}}}}
    client.enrollment.create_or_update(reg_id, created, if_match=created["etag"])
    status, body = register_with_cert(server, tmp_path, reg_id, new)
    assert status == 200
    status, body = register_with_cert(server, tmp_path, reg_id, old)
    expect_401(status, body, f"CN={reg_id}")


def test_proof_of_possession_failures(server) -> None:  # type: ignore[no-untyped-def]
    ca = make("PoP Root", ca=True)
    name = f"pop-{uuid.uuid4().hex[:6]}"
    status, uploaded = call(server, "PUT", f"/{name}", {"certificate": ca.pem})
    assert status == 201
    status, coded = call(server, "POST", f"/{name}/generateVerificationCode",
                         if_match=uploaded["etag"])
    code = coded["properties"]["verificationCode"]
    impostor = make("PoP Root", ca=True)  # same name, another key: no possession
    wrong_key = make(code, impostor, client_eku=False)
    status, body = call(server, "POST", f"/{name}/verify", {"certificate": wrong_key.pem},
                        if_match=coded["etag"])
    assert status == 400 and "proof of possession failed" in body["message"]
    wrong_cn = make("not-the-code", ca, client_eku=False)
    status, body = call(server, "POST", f"/{name}/verify", {"certificate": wrong_cn.pem},
                        if_match=coded["etag"])
    assert status == 400 and code in body["message"]
    status, body = call(server, "GET", f"/{name}")
    assert body["properties"]["isVerified"] is False
    # a private key is refused on upload, without echoing it
    status, body = call(server, "PUT", f"/{name}-k", {"certificate": ca.pem + ca.key_pem})
    assert status == 400 and "private key" in body["message"]
    assert ca.key_pem.splitlines()[1] not in json.dumps(body)


def test_hub_refuses_certificates_it_does_not_trust(server, pki, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from opendps.protocol.mqtt import ConnAck

    from .raw import RawMqtt

    reg_id = f"hubx-{uuid.uuid4().hex[:6]}"
    leaf = make(reg_id, pki["intermediate"])
    status, _ = register_with_cert(server, tmp_path, reg_id, leaf, pki["intermediate"])
    assert status == 200
    username = f"{server.host}/{reg_id}/?api-version=2021-04-12"
    good = RawMqtt(server, client_cert=tuple(map(str, device_files(
        tmp_path, leaf, pki["intermediate"]))))
    try:
        assert good.connect(reg_id, username, None).return_code == 0
    finally:
        good.close()
    for impostor in (make(reg_id), make(reg_id, make("Other Root", ca=True))):
        client = RawMqtt(server, client_cert=tuple(map(str, device_files(tmp_path, impostor))))
        try:
            ack = client.connect(reg_id, username, None)
            assert isinstance(ack, ConnAck) and ack.return_code == 5
        finally:
            client.close()
