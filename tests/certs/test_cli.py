"""``opendps cert …`` through click's CliRunner: every command, the ``--json`` shape, and the
one-line errors (existing files, missing CA key, wrong password, bad registration ID)."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from opendps.certs import is_signed_by, load_certificates, load_private_key
from opendps.cli.main import cli

CLEAN_ENV: dict[str, str | None] = {name: None for name in (
    "OPENDPS_KEY_PASSWORD", "OPENDPS_CA_KEY_PASSWORD", "OPENDPS_PFX_PASSWORD")}
CERT_KEYS = {"subject", "issuer", "commonName", "serialNumber", "sha1Thumbprint",
             "sha256Thumbprint", "notBefore", "notAfter", "isCa", "pathLength", "keyType",
             "keySize", "signatureAlgorithm", "extendedKeyUsage", "selfSigned", "signedByNext"}


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, ["cert", *map(str, args)], env=CLEAN_ENV,
                              catch_exceptions=False)


def ok_json(*args: str | Path) -> dict[str, Any]:
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def fails(*args: str | Path, code: int = 1) -> str:
    result = invoke(*args)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result.stderr


@pytest.fixture(scope="module")
def cas(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """root + intermediate made by the CLI, both keys encrypted with 1234 (as the docs do)."""
    out = tmp_path_factory.mktemp("cas")
    ok_json("create-root", "--cn", "Azure IoT Hub CA Cert Test Only", "--out-dir", out,
            "--key-password", "1234", "--pathlen", "1")
    ok_json("create-intermediate", "--cn", "Azure IoT Hub Intermediate Cert Test Only",
            "--ca-cert", out / "root.cert.pem", "--ca-key", out / "root.key.pem",
            "--key-password", "1234", "--out-dir", out)
    return out


def ca_args(cas: Path, name: str = "intermediate") -> list[str | Path]:
    return ["--ca-cert", cas / f"{name}.cert.pem", "--ca-key", cas / f"{name}.key.pem"]


# -- creating -------------------------------------------------------------------------------------
def test_create_root_json_and_files(cas: Path) -> None:
    assert sorted(p.name for p in cas.iterdir()) == [
        "intermediate.cert.pem", "intermediate.key.pem", "root.cert.pem", "root.key.pem"]
    assert stat.S_IMODE((cas / "root.key.pem").stat().st_mode) == 0o600
    assert b"ENCRYPTED" in (cas / "root.key.pem").read_bytes()
    shown = ok_json("show", cas / "root.cert.pem")
    root = shown["certificates"][0]
    assert root["isCa"] and root["pathLength"] == 1 and root["selfSigned"]
    assert root["subject"] == "CN=Azure IoT Hub CA Cert Test Only"


def test_create_root_rsa_table_output(tmp_path: Path) -> None:
    result = invoke("create-root", "--cn", "rsa root", "--key-type", "rsa", "--key-size",
                    "2048", "--days", "30", "--out-dir", tmp_path / "new", "--name", "rsa")
    assert result.exit_code == 0, result.output
    assert "SHA-1 thumbprint" in result.stdout and "RSA 2048" in result.stdout
    assert "rsa.key.pem" in result.stdout
    assert (tmp_path / "new" / "rsa.cert.pem").exists()


def test_create_intermediate_json(cas: Path, tmp_path: Path) -> None:
    data = ok_json("create-intermediate", "--cn", "second", *ca_args(cas, "root"),
                   "--ca-key-password", "1234", "--curve", "P-384", "--pathlen", "0",
                   "--out-dir", tmp_path, "--name", "second")
    assert set(data) == {"certificate", "files"}
    assert set(data["certificate"]) == CERT_KEYS
    assert data["certificate"]["issuer"] == "CN=Azure IoT Hub CA Cert Test Only"
    assert data["certificate"]["keySize"] == 384 and data["certificate"]["pathLength"] == 0
    assert data["files"] == {"certificate": str(tmp_path / "second.cert.pem"),
                             "key": str(tmp_path / "second.key.pem")}
    assert b"ENCRYPTED" not in (tmp_path / "second.key.pem").read_bytes()


def test_create_device_json_chain_and_pfx(cas: Path, tmp_path: Path) -> None:
    data = ok_json("create-device", "--registration-id", "device-01", *ca_args(cas),
                   "--key-password", "1234", "--pfx", "--password", "pfxpw",
                   "--out-dir", tmp_path)
    assert data["certificate"]["commonName"] == "device-01"
    assert data["certificate"]["extendedKeyUsage"] == ["clientAuth"]
    assert set(data["files"]) == {"certificate", "key", "chain", "pfx"}
    chain = load_certificates((tmp_path / "device-01.chain.pem").read_bytes())
    inter = load_certificates((cas / "intermediate.cert.pem").read_bytes())[0]
    assert len(chain) == 2 and chain[1] == inter and is_signed_by(chain[0], inter)
    load_private_key((tmp_path / "device-01.key.pem").read_bytes(), "1234")
    shown = ok_json("show", tmp_path / "device-01.pfx", "--password", "pfxpw")
    assert shown["format"] == "PFX" and shown["hasPrivateKey"] and shown["chainIntact"]
    assert [c["commonName"] for c in shown["certificates"]] == [
        "device-01", "Azure IoT Hub Intermediate Cert Test Only"]


def test_create_device_with_chain_and_root(cas: Path, tmp_path: Path) -> None:
    ok_json("create-device", "--registration-id", "dev-2", *ca_args(cas), "--ca-key-password",
            "1234", "--chain", cas / "root.cert.pem", "--include-root", "--key-type", "rsa",
            "--out-dir", tmp_path)
    chain = load_certificates((tmp_path / "dev-2.chain.pem").read_bytes())
    assert [c.subject.rfc4514_string() for c in chain] == [
        "CN=dev-2", "CN=Azure IoT Hub Intermediate Cert Test Only",
        "CN=Azure IoT Hub CA Cert Test Only"]
    # the root given in --chain is left out of the chain file without --include-root
    ok_json("create-device", "--registration-id", "dev-3", *ca_args(cas), "--ca-key-password",
            "1234", "--chain", cas / "root.cert.pem", "--out-dir", tmp_path)
    assert len(load_certificates((tmp_path / "dev-3.chain.pem").read_bytes())) == 2


def test_create_device_self_signed(tmp_path: Path) -> None:
    data = ok_json("create-device", "--registration-id", "solo", "--self-signed",
                   "--out-dir", tmp_path)
    assert data["certificate"]["selfSigned"] is True
    assert data["certificate"]["issuer"] == "CN=solo"
    assert len(load_certificates((tmp_path / "solo.chain.pem").read_bytes())) == 1


def test_create_verification(cas: Path, tmp_path: Path) -> None:
    code = "4D2A5E8F0C3B1A7D9E6F2B4C8A0D3E5F7A9B1C3D5E7F9A1B"
    data = ok_json("create-verification", "--code", code, *ca_args(cas, "root"),
                   "--key-password", "1234", "--out-dir", tmp_path)
    assert data["certificate"]["subject"] == f"CN={code}"
    assert data["files"] == {"certificate": str(tmp_path / f"verification-{code}.cert.pem")}
    verification = load_certificates(Path(data["files"]["certificate"]).read_bytes())[0]
    root = load_certificates((cas / "root.cert.pem").read_bytes())[0]
    assert is_signed_by(verification, root)


def test_show_table(cas: Path, tmp_path: Path) -> None:
    chain = tmp_path / "chain.pem"
    chain.write_bytes((cas / "intermediate.cert.pem").read_bytes()
                      + (cas / "root.cert.pem").read_bytes())
    result = invoke("show", chain)
    assert result.exit_code == 0, result.output
    assert "2 certificates" in result.stdout and "certificate 2 of 2" in result.stdout
    assert "each certificate is signed by the next" in result.stdout
    reversed_chain = tmp_path / "reversed.pem"
    reversed_chain.write_bytes((cas / "root.cert.pem").read_bytes()
                               + (cas / "intermediate.cert.pem").read_bytes())
    assert "BROKEN" in invoke("show", reversed_chain).stdout
    assert ok_json("show", reversed_chain)["chainIntact"] is False


@pytest.mark.parametrize("command", ["create-root", "create-intermediate", "create-device",
                                     "create-verification", "show"])
def test_help(command: str) -> None:
    assert invoke(command, "--help").exit_code == 0


# -- errors ---------------------------------------------------------------------------------------
def test_refuses_to_overwrite(cas: Path, tmp_path: Path) -> None:
    args = ["create-device", "--registration-id", "d", "--self-signed", "--out-dir", tmp_path]
    assert invoke(*args).exit_code == 0
    before = (tmp_path / "d.key.pem").read_bytes()
    assert "d.cert.pem exists (use --force to overwrite)" in fails(*args)
    assert (tmp_path / "d.key.pem").read_bytes() == before
    assert invoke(*args, "--force").exit_code == 0
    assert (tmp_path / "d.key.pem").read_bytes() != before
    assert "exists" in fails("create-root", "--cn", "r", "--out-dir", cas)


def test_missing_ca_key(cas: Path, tmp_path: Path) -> None:
    err = fails("create-device", "--registration-id", "d", "--ca-cert",
                cas / "intermediate.cert.pem", "--out-dir", tmp_path, code=2)
    assert "--ca-key is required" in err
    err = fails("create-intermediate", "--cn", "i", "--ca-cert", cas / "root.cert.pem",
                "--ca-key", tmp_path / "nope.pem", "--out-dir", tmp_path, code=2)
    assert "does not exist" in err
    assert not list(tmp_path.iterdir())


def test_wrong_or_missing_ca_key_password(cas: Path, tmp_path: Path) -> None:
    err = fails("create-verification", "--code", "ABC", *ca_args(cas, "root"),
                "--key-password", "nope", "--out-dir", tmp_path)
    assert err.strip().splitlines() == [
        f"Error: --ca-key {cas / 'root.key.pem'}: wrong password for the private key "
        "(see --key-password)"]
    err = fails("create-device", "--registration-id", "d", *ca_args(cas), "--out-dir", tmp_path)
    assert "encrypted: give its password" in err
    assert not list(tmp_path.iterdir())


def test_wrong_pfx_password(tmp_path: Path) -> None:
    ok_json("create-device", "--registration-id", "p", "--self-signed", "--pfx", "--password",
            "right", "--out-dir", tmp_path)
    assert "wrong password for the PFX" in fails("show", tmp_path / "p.pfx", "--password", "no")
    assert "give its password" in fails("show", tmp_path / "p.pfx")


@pytest.mark.parametrize(("registration_id", "message"), [
    ("x" * 65, "1–64 characters"), ("bad id", "invalid registration ID"),
    ("../escape", "invalid registration ID"),
])
def test_bad_registration_id(tmp_path: Path, registration_id: str, message: str) -> None:
    err = fails("create-device", "--registration-id", registration_id, "--self-signed",
                "--out-dir", tmp_path, code=2)
    assert message in err


@pytest.mark.parametrize(("args", "message"), [
    (["--self-signed", "--pfx"], "--pfx needs --password"),
    (["--self-signed", "--password", "x"], "--password applies to --pfx"),
    (["--self-signed", "--key-size", "2048"], "--key-size applies to RSA"),
    (["--self-signed", "--key-type", "rsa", "--curve", "P-256"], "--curve applies to EC"),
])
def test_device_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    assert message in fails("create-device", "--registration-id", "d", *args, "--out-dir",
                            tmp_path, code=2)


def test_self_signed_takes_no_ca(cas: Path, tmp_path: Path) -> None:
    assert "--self-signed takes no" in fails("create-device", "--registration-id", "d",
                                             "--self-signed", *ca_args(cas), "--out-dir",
                                             tmp_path, code=2)


def test_other_errors(cas: Path, tmp_path: Path) -> None:
    # a chain that does not continue from the CA
    err = fails("create-device", "--registration-id", "d", *ca_args(cas, "root"),
                "--key-password", "1234", "--chain", cas / "intermediate.cert.pem",
                "--out-dir", tmp_path)
    assert "chain out of order" in err
    err = fails("create-intermediate", "--cn", "i", "--ca-cert", cas / "intermediate.cert.pem",
                "--ca-key", cas / "root.key.pem", "--key-password", "1234", "--out-dir",
                tmp_path)
    assert "does not belong to the CA certificate" in err
    err = fails("create-intermediate", "--cn", "i", "--ca-cert", cas / "root.key.pem",
                "--ca-key", cas / "root.key.pem", "--out-dir", tmp_path)
    assert "holds no certificate" in err
    assert "--name" in fails("create-root", "--cn", "r", "--name", "../x", "--out-dir",
                             tmp_path, code=2)
    assert "--code" in fails("create-verification", "--code", "a/b", *ca_args(cas, "root"),
                             "--out-dir", tmp_path, code=2)
    assert "holds no certificate" in fails("show", cas / "root.key.pem")
