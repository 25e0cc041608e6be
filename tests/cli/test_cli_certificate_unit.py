"""``opendps certificate`` against the scripted HTTPS server: exact requests (bodies, If-Match),
the one-step proof of possession with a local CA key, and one-line errors."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from opendps.certs import create_root_ca, generate_ec_key, is_signed_by, private_key_to_pem
from opendps.protocol import sas

from .conftest import DPS_KEY
from .fake_https import FakeHttps, Seen, reply
from .test_cli_unit import invoke

BASE = "/opendps/certificates"


@dataclass
class Ca:
    cert: x509.Certificate
    pem: str
    cert_file: Path
    key_file: Path
    other_key_file: Path


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Ca:
    directory = tmp_path_factory.mktemp("ca")
    key = generate_ec_key()
    cert = create_root_ca("unit root", key)
    out = Ca(cert, cert.public_bytes(Encoding.PEM).decode(), directory / "root.pem",
             directory / "root.key.pem", directory / "other.key.pem")
    out.cert_file.write_text(out.pem)
    out.key_file.write_bytes(private_key_to_pem(key))
    out.other_key_file.write_bytes(private_key_to_pem(generate_ec_key()))
    return out


def resource(ca: Ca, etag: str = '"e1"', verified: bool = False, **extra: Any) -> dict:
    return {"name": "root-1", "etag": etag,
            "properties": {"subject": "CN=unit root", "thumbprint": "F00D", "isVerified": verified,
                           "certificate": ca.pem, "expiry": "2035-01-01T00:00:00Z",
                           "created": "c", "updated": "u", **extra}}


def test_upload_sends_pem_and_the_verified_flag(server: FakeHttps, data_dir: Path,
                                                ca: Ca) -> None:
    server.routes[("GET", f"{BASE}/root-1")] = reply(
        {"errorCode": 404000, "trackingId": "t", "message": "not found"}, status=404)
    server.routes[("PUT", f"{BASE}/root-1")] = reply(resource(ca), status=201)
    plain = invoke("certificate", "upload", "--name", "root-1", "--file", str(ca.cert_file),
                   data_dir=data_dir)
    vouched = invoke("certificate", "upload", "--name", "root-1", "--file", str(ca.cert_file),
                     "--verified", "--json", data_dir=data_dir)
    assert plain.exit_code == 0 and vouched.exit_code == 0, plain.output + vouched.output
    puts = [s for s in server.seen if s.method == "PUT"]
    assert [p.body for p in puts] == [{"certificate": ca.pem, "isVerified": False},
                                      {"certificate": ca.pem, "isVerified": True}]
    assert "If-Match" not in puts[0].headers
    assert puts[0].query == {"api-version": "2021-10-01"}
    token = sas.parse(puts[0].headers["Authorization"])
    assert token.key_name == "provisioningserviceowner"
    assert sas.signature_matches(token, [DPS_KEY])
    assert "F00D" in plain.stdout and "CN=unit root" in plain.stdout
    assert json.loads(vouched.stdout)["name"] == "root-1"


def test_upload_refuses_to_replace_without_an_etag(server: FakeHttps, data_dir: Path,
                                                   ca: Ca) -> None:
    server.routes[("GET", f"{BASE}/root-1")] = reply(resource(ca))
    server.routes[("PUT", f"{BASE}/root-1")] = reply(resource(ca))
    refused = invoke("certificate", "upload", "--name", "root-1", "--file", str(ca.cert_file),
                     data_dir=data_dir)
    assert refused.exit_code == 1
    assert "already exists" in refused.stderr
    replaced = invoke("certificate", "upload", "--name", "root-1", "--file", str(ca.cert_file),
                      "--etag", "*", data_dir=data_dir)
    assert replaced.exit_code == 0, replaced.output
    assert server.seen[-1].headers["If-Match"] == "*"


def test_upload_never_sends_a_private_key(server: FakeHttps, data_dir: Path, ca: Ca) -> None:
    result = invoke("certificate", "upload", "--name", "root-1", "--file", str(ca.key_file),
                    data_dir=data_dir)
    assert result.exit_code == 2
    assert "private key" in result.stderr
    assert server.seen == []


def test_list_show_delete(server: FakeHttps, data_dir: Path, ca: Ca) -> None:
    server.routes[("GET", BASE)] = reply({"value": [resource(ca, verified=True)]})
    server.routes[("GET", f"{BASE}/root-1")] = reply(resource(ca))
    server.routes[("DELETE", f"{BASE}/root-1")] = lambda seen: web.Response(status=204)
    listed = invoke("certificate", "list", data_dir=data_dir)
    listed_json = invoke("certificate", "list", "--json", data_dir=data_dir)
    shown = invoke("certificate", "show", "--name", "root-1", data_dir=data_dir)
    deleted = invoke("certificate", "delete", "--name", "root-1", "--etag", "e1",
                     data_dir=data_dir)
    assert "root-1" in listed.stdout and "yes" in listed.stdout
    assert json.loads(listed_json.stdout)[0]["properties"]["isVerified"] is True
    assert "verified" in shown.stdout and "BEGIN CERTIFICATE" not in shown.stdout
    assert deleted.stdout.strip() == "deleted CA certificate root-1"
    assert server.seen[-1].headers["If-Match"] == '"e1"'


def test_verification_code_uses_the_current_etag(server: FakeHttps, data_dir: Path,
                                                 ca: Ca) -> None:
    server.routes[("GET", f"{BASE}/root-1")] = reply(resource(ca, etag='"e7"'))
    server.routes[("POST", f"{BASE}/root-1/generateVerificationCode")] = reply(
        resource(ca, etag='"e8"', verificationCode="ABC123"))
    result = invoke("certificate", "verification-code", "--name", "root-1", data_dir=data_dir)
    assert result.exit_code == 0, result.output
    assert result.stdout == "ABC123\n"
    assert "create-verification --code ABC123" in result.stderr
    assert server.seen[-1].headers["If-Match"] == '"e7"'


def proof_checker(ca: Ca, code: str, answer: dict) -> Any:
    def verify(seen: Seen) -> web.Response:
        proof = x509.load_pem_x509_certificate(seen.body["certificate"].encode())
        cn = proof.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        assert cn == code and is_signed_by(proof, ca.cert)
        assert set(seen.body) == {"certificate"}
        return web.json_response(answer)
    return verify


def test_verify_with_the_ca_key_in_one_step(server: FakeHttps, data_dir: Path, ca: Ca) -> None:
    server.routes[("GET", f"{BASE}/root-1")] = reply(resource(ca))
    server.routes[("POST", f"{BASE}/root-1/generateVerificationCode")] = reply(
        resource(ca, etag='"e2"', verificationCode="C0DE42"))
    server.routes[("POST", f"{BASE}/root-1/verify")] = proof_checker(
        ca, "C0DE42", resource(ca, etag='"e3"', verified=True))
    result = invoke("certificate", "verify", "--name", "root-1", "--ca-key", str(ca.key_file),
                    "--json", data_dir=data_dir)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["properties"]["isVerified"] is True
    get, generate, verify = server.seen
    assert (get.method, generate.headers["If-Match"], verify.headers["If-Match"]) == (
        "GET", '"e1"', '"e2"')


def test_verify_with_a_key_that_is_not_the_cas(server: FakeHttps, data_dir: Path,
                                               ca: Ca) -> None:
    server.routes[("GET", f"{BASE}/root-1")] = reply(resource(ca))
    result = invoke("certificate", "verify", "--name", "root-1", "--ca-key",
                    str(ca.other_key_file), data_dir=data_dir)
    assert result.exit_code == 1
    assert "does not belong to CA certificate 'root-1'" in result.stderr
    assert [s.method for s in server.seen] == ["GET"]  # no code was generated


def test_verify_with_a_verification_certificate(server: FakeHttps, data_dir: Path,
                                                ca: Ca) -> None:
    server.routes[("POST", f"{BASE}/root-1/verify")] = reply(resource(ca, verified=True))
    result = invoke("certificate", "verify", "--name", "root-1", "--verification-cert",
                    str(ca.cert_file), "--etag", "e9", data_dir=data_dir)
    assert result.exit_code == 0, result.output
    assert "yes" in result.stdout
    verify = server.seen[-1]
    assert verify.body == {"certificate": ca.pem}
    assert verify.headers["If-Match"] == '"e9"'


def test_verify_errors_are_one_line(server: FakeHttps, data_dir: Path, ca: Ca) -> None:
    server.routes[("GET", f"{BASE}/root-1")] = reply(resource(ca))
    server.routes[("POST", f"{BASE}/root-1/verify")] = reply(
        {"errorCode": 400004, "trackingId": "t",
         "message": "proof of possession failed: the CN is not the verification code"},
        status=400)
    failed = invoke("certificate", "verify", "--name", "root-1", "--verification-cert",
                    str(ca.cert_file), data_dir=data_dir)
    assert failed.exit_code == 1
    assert failed.stderr == ("Error: 400004: proof of possession failed: the CN is not the "
                             "verification code\n")
    neither = invoke("certificate", "verify", "--name", "root-1", data_dir=data_dir)
    assert neither.exit_code == 2
    assert "exactly one of --ca-key and --verification-cert" in neither.stderr
