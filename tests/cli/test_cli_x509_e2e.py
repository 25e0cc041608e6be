"""X.509 through the CLI as a user runs it (subprocesses) against a real ``opendps serve``:
proof of possession in one step and in two, an enrollment group on a verified root with a
device under an intermediate, and an individual enrollment with a self-signed certificate.

Certificates come from ``opendps cert``; should that group be missing, the same files are made
with ``opendps.certs`` so these tests still check what they are about."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from functools import cache
from pathlib import Path
from typing import Any

from opendps.certs import (
    create_device_certificate,
    create_intermediate_ca,
    create_root_ca,
    create_self_signed_device_certificate,
    create_verification_certificate,
    generate_ec_key,
    load_certificate,
    load_private_key,
    thumbprint,
    write_certificate,
    write_private_key,
)

from .test_cli_e2e import ok, opendps


@cache
def _cert_group_exists(python: str) -> bool:
    result = subprocess.run([python, "-m", "opendps", "cert", "--help"], capture_output=True,
                            check=False, timeout=60)
    return result.returncode == 0


def cert_cli(server: Any) -> bool:
    """Whether ``opendps cert`` exists in this build (checked once)."""
    return _cert_group_exists(sys.executable)


def make_root(server: Any, directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.cert.pem", directory / f"{name}.key.pem"
    if cert_cli(server):
        ok(opendps(server, "cert", "create-root", "--cn", f"E2E {name}", "--out-dir",
                   str(directory), "--name", name))
    else:
        private = generate_ec_key()
        write_certificate(cert, create_root_ca(f"E2E {name}", private))
        write_private_key(key, private)
    return cert, key


def make_intermediate(server: Any, directory: Path, name: str, issuer: tuple[Path, Path]
                      ) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.cert.pem", directory / f"{name}.key.pem"
    if cert_cli(server):
        ok(opendps(server, "cert", "create-intermediate", "--cn", f"E2E {name}", "--ca-cert",
                   str(issuer[0]), "--ca-key", str(issuer[1]), "--out-dir", str(directory),
                   "--name", name))
    else:
        private = generate_ec_key()
        ca_cert = load_certificate(issuer[0].read_bytes())
        ca_key = load_private_key(issuer[1].read_bytes())
        write_certificate(cert, create_intermediate_ca(f"E2E {name}", private, ca_cert, ca_key))
        write_private_key(key, private)
    return cert, key


def make_device(server: Any, directory: Path, registration_id: str,
                issuer: tuple[Path, Path] | None) -> tuple[Path, Path]:
    """The leaf alone (``ID.cert.pem``) and its key; ``issuer`` None: self-signed."""
    cert, key = (directory / f"{registration_id}.cert.pem",
                 directory / f"{registration_id}.key.pem")
    if cert_cli(server):
        signer = (["--self-signed"] if issuer is None else
                  ["--ca-cert", str(issuer[0]), "--ca-key", str(issuer[1])])
        ok(opendps(server, "cert", "create-device", "--registration-id", registration_id,
                   *signer, "--out-dir", str(directory)))
    else:
        private = generate_ec_key()
        if issuer is None:
            leaf = create_self_signed_device_certificate(registration_id, private)
        else:
            leaf = create_device_certificate(
                registration_id, private, load_certificate(issuer[0].read_bytes()),
                load_private_key(issuer[1].read_bytes()))
        write_certificate(cert, leaf)
        write_private_key(key, private)
    return cert, key


def make_verification(server: Any, directory: Path, code: str, ca: tuple[Path, Path]) -> Path:
    path = directory / f"verification-{code}.cert.pem"
    if cert_cli(server):
        ok(opendps(server, "cert", "create-verification", "--code", code, "--ca-cert",
                   str(ca[0]), "--ca-key", str(ca[1]), "--out-dir", str(directory)))
    else:
        write_certificate(path, create_verification_certificate(
            code, load_certificate(ca[0].read_bytes()), load_private_key(ca[1].read_bytes())))
    return path


def upload(server: Any, name: str, cert: Path) -> dict[str, Any]:
    uploaded = json.loads(ok(opendps(server, "certificate", "upload", "--name", name,
                                     "--file", str(cert), "--json")))
    assert uploaded["name"] == name
    assert uploaded["properties"]["isVerified"] is False
    return uploaded


def shown(server: Any, name: str) -> dict[str, Any]:
    return json.loads(ok(opendps(server, "certificate", "show", "--name", name, "--json")))


def test_proof_of_possession_in_one_step(opendps_server: Any, tmp_path: Path) -> None:
    name = f"root-{uuid.uuid4().hex[:6]}"
    root = make_root(opendps_server, tmp_path, name)
    upload(opendps_server, name, root[0])
    verified = json.loads(ok(opendps(opendps_server, "certificate", "verify", "--name", name,
                                     "--ca-key", str(root[1]), "--json")))
    assert verified["properties"]["isVerified"] is True
    assert shown(opendps_server, name)["properties"]["isVerified"] is True
    listed = json.loads(ok(opendps(opendps_server, "certificate", "list", "--json")))
    assert name in [c["name"] for c in listed]


def test_proof_of_possession_in_two_steps(opendps_server: Any, tmp_path: Path) -> None:
    name = f"root-{uuid.uuid4().hex[:6]}"
    root = make_root(opendps_server, tmp_path, name)
    stranger = make_root(opendps_server, tmp_path, "stranger")
    upload(opendps_server, name, root[0])

    code = ok(opendps(opendps_server, "certificate", "verification-code", "--name", name))
    code = code.strip()
    assert code and "\n" not in code
    forged = make_verification(opendps_server, tmp_path / "forged", code, stranger)
    refused = opendps(opendps_server, "certificate", "verify", "--name", name,
                      "--verification-cert", str(forged))
    assert refused.returncode == 1
    assert len(refused.stderr.strip().splitlines()) == 1
    assert refused.stderr.startswith("Error: 400")
    assert shown(opendps_server, name)["properties"]["isVerified"] is False

    proof = make_verification(opendps_server, tmp_path, code, root)
    ok(opendps(opendps_server, "certificate", "verify", "--name", name,
               "--verification-cert", str(proof)))
    assert shown(opendps_server, name)["properties"]["isVerified"] is True


def test_group_on_a_verified_root_with_a_device_under_an_intermediate(
        opendps_server: Any, tmp_path: Path) -> None:
    name = f"root-{uuid.uuid4().hex[:6]}"
    root = make_root(opendps_server, tmp_path, name)
    upload(opendps_server, name, root[0])
    ok(opendps(opendps_server, "certificate", "verify", "--name", name, "--ca-key",
               str(root[1])))
    group_id = f"x509-grp-{uuid.uuid4().hex[:6]}"
    group = json.loads(ok(opendps(opendps_server, "enrollment-group", "create", "--group-id",
                                  group_id, "--ca-name", name, "--initial-twin-desired",
                                  '{"interval": 7}', "--json")))
    assert group["attestation"] == {"type": "x509",
                                    "x509": {"caReferences": {"primary": name}}}

    intermediate = make_intermediate(opendps_server, tmp_path, "inter", root)
    reg_id = f"x509-dev-{uuid.uuid4().hex[:6]}"
    leaf, key = make_device(opendps_server, tmp_path, reg_id, intermediate)
    summary = json.loads(ok(opendps(
        opendps_server, "device", "simulate", "--cert", str(leaf), "--key", str(key),
        "--chain", str(intermediate[0]), "--count", "3", "--interval", "0", "--json")))
    assert summary["registrationId"] == reg_id  # from the certificate's CN
    assert summary["attestation"] == "x509"
    assert (summary["assignedHub"], summary["deviceId"]) == (opendps_server.host, reg_id)
    assert summary["messagesSent"] == 3
    assert summary["twin"]["desired"]["interval"] == 7
    assert summary["twin"]["reported"]["simulator"]["messagesSent"] == 3

    registrations = json.loads(ok(opendps(opendps_server, "registration", "list",
                                          "--group-id", group_id, "--json")))
    assert [(r["registrationId"], r["status"]) for r in registrations] == [(reg_id, "assigned")]


def test_individual_self_signed_enrollment(opendps_server: Any, tmp_path: Path) -> None:
    reg_id = f"x509-self-{uuid.uuid4().hex[:6]}"
    leaf, key = make_device(opendps_server, tmp_path, reg_id, None)
    created = json.loads(ok(opendps(
        opendps_server, "enrollment", "create", "--registration-id", reg_id,
        "--attestation", "x509", "--certificate", str(leaf), "--json")))
    info = created["attestation"]["x509"]["clientCertificates"]["primary"]["info"]
    assert info["subjectName"] == f"CN={reg_id}"
    assert info["sha1Thumbprint"] == thumbprint(load_certificate(leaf.read_bytes()))

    text = ok(opendps(opendps_server, "enrollment", "show", "--registration-id", reg_id))
    assert info["sha1Thumbprint"] in text and info["notAfterUtc"] in text

    updated = json.loads(ok(opendps(opendps_server, "enrollment", "update",
                                    "--registration-id", reg_id, "--initial-twin-tags",
                                    '{"kind": "self-signed"}', "--json")))
    assert updated["attestation"]["x509"]["clientCertificates"]["primary"]["info"] == info

    out = ok(opendps(opendps_server, "device", "simulate", "--cert", str(leaf), "--key",
                     str(key), "--count", "3", "--interval", "0"))
    assert f"assigned hub: {opendps_server.host}  device id: {reg_id}" in out
    assert out.count("sent {") == 3
    twin = json.loads(out.split("twin:\n", 1)[1])
    assert twin["reported"]["simulator"]["messagesSent"] == 3
