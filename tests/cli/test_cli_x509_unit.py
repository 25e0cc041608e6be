"""X.509 on the command line against the scripted HTTPS server: the exact enrollment bodies,
what updates keep, how show renders certificate info, and the argument errors."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from opendps.certs import (
    create_root_ca,
    create_self_signed_device_certificate,
    generate_ec_key,
    private_key_to_pem,
)
from opendps.cli.device import x509_identity

from .fake_https import FakeHttps, reply
from .test_cli_unit import invoke

NOT_FOUND = {"errorCode": 404203, "trackingId": "t", "message": "not found"}
INFO = {"subjectName": "CN=dev-x", "sha1Thumbprint": "AA11BB22", "sha256Thumbprint": "CC",
        "issuerName": "CN=dev-x", "notBeforeUtc": "2025-01-01T00:00:00Z",
        "notAfterUtc": "2027-02-03T04:05:06Z", "serialNumber": "01", "version": 3}


@dataclass
class Files:
    device: Path
    device_pem: str
    other: Path
    other_pem: str
    with_key: Path
    two: Path


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(Encoding.PEM).decode()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    directory = tmp_path_factory.mktemp("certs")
    key = generate_ec_key()
    device = create_self_signed_device_certificate("dev-x", key)
    other = create_root_ca("some CA", generate_ec_key())
    out = Files(directory / "dev-x.pem", pem(device), directory / "ca.der", pem(other),
                directory / "with-key.pem", directory / "two.pem")
    out.device.write_text(out.device_pem)
    out.other.write_bytes(other.public_bytes(Encoding.DER))  # DER is converted to PEM
    out.with_key.write_text(out.device_pem + private_key_to_pem(key).decode())
    out.two.write_text(out.device_pem + out.other_pem)
    return out


def created(server: FakeHttps, path: str) -> None:
    server.routes[("GET", path)] = reply(NOT_FOUND, status=404)
    server.routes[("PUT", path)] = lambda seen: web.json_response(seen.body)


def test_enrollment_create_with_client_certificates(server: FakeHttps, data_dir: Path,
                                                    files: Files) -> None:
    created(server, "/enrollments/dev-x")
    result = invoke("enrollment", "create", "--registration-id", "dev-x", "--attestation", "x509",
                    "--certificate", str(files.device), "--secondary-certificate",
                    str(files.other), "--json", data_dir=data_dir)
    assert result.exit_code == 0, result.output
    assert server.seen[-1].body == {
        "registrationId": "dev-x",
        "attestation": {"type": "x509", "x509": {"clientCertificates": {
            "primary": {"certificate": files.device_pem},
            "secondary": {"certificate": files.other_pem}}}}}


def test_enrollment_create_with_ca_references(server: FakeHttps, data_dir: Path) -> None:
    created(server, "/enrollments/dev-x")
    result = invoke("enrollment", "create", "--registration-id", "dev-x", "--attestation", "x509",
                    "--ca-name", "root-1", "--secondary-ca-name", "root-2", data_dir=data_dir)
    assert result.exit_code == 0, result.output
    assert server.seen[-1].body["attestation"] == {
        "type": "x509", "x509": {"caReferences": {"primary": "root-1", "secondary": "root-2"}}}


@pytest.mark.parametrize("option", ["--certificate", "--ca-name"])
def test_group_create_infers_x509(server: FakeHttps, data_dir: Path, files: Files,
                                  option: str) -> None:
    created(server, "/enrollmentGroups/grp-x")
    value = str(files.other) if option == "--certificate" else "root-1"
    result = invoke("enrollment-group", "create", "--group-id", "grp-x", option, value,
                    data_dir=data_dir)
    assert result.exit_code == 0, result.output
    x509_body = ({"signingCertificates": {"primary": {"certificate": files.other_pem}}}
                 if option == "--certificate" else {"caReferences": {"primary": "root-1"}})
    assert server.seen[-1].body == {"enrollmentGroupId": "grp-x",
                                    "attestation": {"type": "x509", "x509": x509_body}}


def test_symmetric_key_stays_the_default(server: FakeHttps, data_dir: Path) -> None:
    created(server, "/enrollments/dev-s")
    result = invoke("enrollment", "create", "--registration-id", "dev-s",
                    "--attestation", "symmetric-key", data_dir=data_dir)
    assert result.exit_code == 0, result.output
    assert server.seen[-1].body == {"registrationId": "dev-s",
                                    "attestation": {"type": "symmetricKey", "symmetricKey": {}}}


@pytest.mark.parametrize(("args", "message"), [
    (["--attestation", "x509"], "needs --certificate FILE or --ca-name"),
    (["--certificate", "DEV", "--ca-name", "r"], "not both"),
    (["--attestation", "symmetric-key", "--ca-name", "r"], "need --attestation x509"),
    (["--secondary-ca-name", "r"], "--secondary-ca-name needs --ca-name"),
    (["--certificate", "DEV", "--primary-key", "a2V5a2V5a2V5a2V5a2V5a2V5"],
     "does not use symmetric keys"),
    (["--certificate", "WITH_KEY"], "holds a private key"),
    (["--certificate", "TWO"], "holds 2 certificates"),
])
def test_x509_usage_errors_send_nothing(server: FakeHttps, data_dir: Path, files: Files,
                                        args: list[str], message: str) -> None:
    created(server, "/enrollments/dev-x")
    paths = {"DEV": files.device, "WITH_KEY": files.with_key, "TWO": files.two}
    args = [str(paths.get(a, a)) for a in args]
    result = invoke("enrollment", "create", "--registration-id", "dev-x", *args,
                    data_dir=data_dir)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert [s.method for s in server.seen if s.method == "PUT"] == []


def stored_x509(server: FakeHttps, files: Files) -> dict:
    stored = {"registrationId": "dev-x", "deviceId": "dev-x", "etag": '"e5"',
              "provisioningStatus": "enabled", "lastUpdatedDateTimeUtc": "t",
              "attestation": {"type": "x509", "x509": {"clientCertificates": {
                  "primary": {"certificate": files.device_pem, "info": INFO}}}}}
    server.routes[("GET", "/enrollments/dev-x")] = reply(stored)
    server.routes[("PUT", "/enrollments/dev-x")] = lambda seen: web.json_response(seen.body)
    return stored


def test_update_keeps_the_certificates(server: FakeHttps, data_dir: Path, files: Files) -> None:
    stored = stored_x509(server, files)
    result = invoke("enrollment", "update", "--registration-id", "dev-x", "--disabled",
                    data_dir=data_dir)
    assert result.exit_code == 0, result.output
    assert [s.method for s in server.seen] == ["GET", "PUT"]  # no attestation-mechanism call
    put = server.seen[-1]
    assert put.headers["If-Match"] == '"e5"'
    assert put.body["attestation"] == stored["attestation"]
    assert put.body["provisioningStatus"] == "disabled"


def test_update_adds_a_secondary_and_replaces_certificates(server: FakeHttps, data_dir: Path,
                                                          files: Files) -> None:
    stored_x509(server, files)
    added = invoke("enrollment", "update", "--registration-id", "dev-x",
                   "--secondary-certificate", str(files.other), data_dir=data_dir)
    assert added.exit_code == 0, added.output
    assert server.seen[-1].body["attestation"]["x509"] == {"clientCertificates": {
        "primary": {"certificate": files.device_pem},
        "secondary": {"certificate": files.other_pem}}}
    moved = invoke("enrollment", "update", "--registration-id", "dev-x", "--ca-name", "root-1",
                   data_dir=data_dir)
    assert moved.exit_code == 0, moved.output
    assert server.seen[-1].body["attestation"] == {
        "type": "x509", "x509": {"caReferences": {"primary": "root-1"}}}


def test_update_can_switch_back_to_symmetric_keys(server: FakeHttps, data_dir: Path,
                                                  files: Files) -> None:
    stored_x509(server, files)
    result = invoke("enrollment", "update", "--registration-id", "dev-x",
                    "--attestation", "symmetric-key", data_dir=data_dir)
    assert result.exit_code == 0, result.output
    assert server.seen[-1].body["attestation"] == {"type": "symmetricKey", "symmetricKey": {}}


def test_show_renders_certificate_info(server: FakeHttps, data_dir: Path, files: Files) -> None:
    stored = stored_x509(server, files)
    text = invoke("enrollment", "show", "--registration-id", "dev-x", data_dir=data_dir)
    as_json = invoke("enrollment", "show", "--registration-id", "dev-x", "--json",
                     data_dir=data_dir)
    assert text.exit_code == 0, text.output
    for expected in ("primary subject", "CN=dev-x", "primary SHA-1 thumbprint", "AA11BB22",
                     "primary expires", "2027-02-03T04:05:06Z"):
        assert expected in text.stdout
    assert "BEGIN CERTIFICATE" not in text.stdout
    assert json.loads(as_json.stdout) == stored


def test_group_show_lists_ca_references(server: FakeHttps, data_dir: Path) -> None:
    server.routes[("GET", "/enrollmentGroups/grp-x")] = reply(
        {"enrollmentGroupId": "grp-x", "attestation": {"type": "x509", "x509": {
            "caReferences": {"primary": "root-1"}}}})
    result = invoke("enrollment-group", "show", "--group-id", "grp-x", data_dir=data_dir)
    assert result.exit_code == 0, result.output
    assert "primary CA certificate" in result.stdout and "root-1" in result.stdout


def test_simulate_identity_defaults_to_the_cn(files: Files, tmp_path: Path) -> None:
    cert, registration_id, described = x509_identity(str(files.with_key), None, None, None, None)
    assert registration_id == "dev-x"
    assert described.startswith("CN=dev-x, SHA-1 ")
    assert cert.key_file is None


@pytest.mark.parametrize(("args", "message"), [
    (["--cert", "DEV"], "--cert needs --key FILE"),
    (["--cert", "WITH_KEY", "--group-key", "a2V5"], "--group-key is for symmetric keys"),
    (["--registration-id", "d", "--key", "a2V5", "--chain", "DEV"], "need --cert"),
    (["--key", "a2V5"], "--registration-id is required"),
    (["--cert", "WITH_KEY", "--key", "OTHER_KEY"], "does not belong to the certificate"),
    (["--cert", "DER"], "TLS needs PEM"),
])
def test_simulate_x509_argument_errors(files: Files, tmp_path: Path, args: list[str],
                                       message: str) -> None:
    other_key = tmp_path / "other.key.pem"
    other_key.write_bytes(private_key_to_pem(generate_ec_key()))
    paths = {"DEV": files.device, "WITH_KEY": files.with_key, "OTHER_KEY": other_key,
             "DER": files.other}
    args = [str(paths.get(a, a)) for a in args]
    result = invoke("device", "simulate", *args, "--dps-host", "127.0.0.1",
                    "--id-scope", "0ne00000001", "--mqtt-port", "1")
    assert result.exit_code in (1, 2), result.output
    assert message in result.stderr
