"""Files: PEM, keys at 0600, chains in device order, PFX round trips, no silent overwrite;
and reading any certificate file back (``inspect``)."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from opendps.certs import (
    CertError,
    OutputExistsError,
    WrongPasswordError,
    describe_file,
    ensure_writable,
    load_certificate_file,
    load_certificates,
    load_private_key,
    pfx_bytes,
    thumbprint,
    write_certificate,
    write_chain,
    write_pfx,
    write_private_key,
)
from opendps.certs.keys import public_keys_match

from .conftest import Pki


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_key_file_is_private_and_round_trips(tmp_path: Path, pki: Pki) -> None:
    path = write_private_key(tmp_path / "k.pem", pki.device_key, "pw")
    assert mode(path) == 0o600
    assert public_keys_match(load_private_key(path.read_bytes(), "pw"), pki.device_key)


def test_refuses_to_overwrite_unless_forced(tmp_path: Path, pki: Pki) -> None:
    cert_path = write_certificate(tmp_path / "c.pem", pki.root)
    key_path = tmp_path / "k.pem"
    key_path.write_text("old")
    key_path.chmod(0o644)
    with pytest.raises(OutputExistsError, match="exists"):
        write_certificate(cert_path, pki.device)
    with pytest.raises(OutputExistsError, match="--force"):
        write_private_key(key_path, pki.device_key)
    with pytest.raises(OutputExistsError):
        ensure_writable([tmp_path / "new.pem", key_path])
    ensure_writable([key_path], force=True)
    assert key_path.read_text() == "old"
    write_certificate(cert_path, pki.device, force=True)
    write_private_key(key_path, pki.device_key, force=True)
    assert load_certificates(cert_path.read_bytes()) == [pki.device]
    assert mode(key_path) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pem", "k.pem"]  # no temp files


def test_write_errors_are_cert_errors(tmp_path: Path, pki: Pki) -> None:
    with pytest.raises(CertError, match="cannot write"):
        write_certificate(tmp_path / "missing" / "c.pem", pki.root)


def test_chain_file_order(tmp_path: Path, pki: Pki) -> None:
    path = write_chain(tmp_path / "chain.pem", pki.device, [pki.intermediate])
    assert load_certificates(path.read_bytes()) == [pki.device, pki.intermediate]
    path = write_chain(tmp_path / "full.pem", pki.device, [pki.intermediate], pki.root)
    assert load_certificates(path.read_bytes()) == [pki.device, pki.intermediate, pki.root]


def test_pfx_round_trip(tmp_path: Path, pki: Pki) -> None:
    path = write_pfx(tmp_path / "d.pfx", pki.device_key, pki.device, [pki.intermediate],
                     "s3cret")
    assert mode(path) == 0o600
    loaded = pkcs12.load_pkcs12(path.read_bytes(), b"s3cret")
    assert loaded.cert is not None and loaded.cert.certificate == pki.device
    assert loaded.cert.friendly_name == b"device-01"
    assert [c.certificate for c in loaded.additional_certs] == [pki.intermediate]
    assert loaded.key is not None and public_keys_match(loaded.key, pki.device_key)
    ours = load_certificate_file(path.read_bytes(), "s3cret")
    assert ours.format == "PFX" and ours.certificates == (pki.device, pki.intermediate)


@pytest.mark.parametrize("legacy", [False, True])
def test_pfx_wrong_or_missing_password(pki: Pki, legacy: bool) -> None:
    data = pfx_bytes(pki.device_key, pki.device, (), "right", legacy=legacy)
    assert load_certificate_file(data, "right").key is not None
    with pytest.raises(WrongPasswordError, match="wrong password"):
        load_certificate_file(data, "wrong")
    with pytest.raises(WrongPasswordError, match="give its password"):
        load_certificate_file(data)
    with pytest.raises(CertError, match="needs a password"):
        pfx_bytes(pki.device_key, pki.device, (), "")


# -- reading back ---------------------------------------------------------------------------------
def test_describe_a_chain_file(pki: Pki) -> None:
    data = b"".join(c.public_bytes(serialization.Encoding.PEM)
                    for c in (pki.device, pki.intermediate, pki.root))
    info = describe_file(data)
    assert info.format == "PEM" and info.chain_intact and not info.has_private_key
    device, inter, root = info.certificates
    assert [c.signed_by_next for c in info.certificates] == [True, True, None]
    assert device.common_name == "device-01" and device.issuer == "CN=opendps test intermediate"
    assert device.sha1_thumbprint == pki.device.fingerprint(hashes.SHA1()).hex().upper()
    assert len(device.sha256_thumbprint) == 64 and device.sha256_thumbprint.isupper()
    assert device.extended_key_usage == ("clientAuth",) and not device.is_ca
    assert device.key == "EC P-256" and device.key_size == 256
    assert inter.is_ca and inter.pathlen is None and not inter.self_signed
    assert root.self_signed and root.not_after > root.not_before
    assert device.serial == format(pki.device.serial_number, "X")
    as_json = info.to_json()
    assert as_json["chainIntact"] is True
    assert as_json["certificates"][0]["notAfter"].endswith("Z")
    assert set(as_json["certificates"][0]) >= {
        "subject", "issuer", "serialNumber", "sha1Thumbprint", "sha256Thumbprint", "notBefore",
        "notAfter", "isCa", "pathLength", "keyType", "keySize", "extendedKeyUsage",
        "signedByNext"}


def test_describe_notices_a_broken_chain(pki: Pki) -> None:
    data = b"".join(c.public_bytes(serialization.Encoding.PEM)
                    for c in (pki.device, pki.root, pki.intermediate))
    info = describe_file(data)
    assert [c.signed_by_next for c in info.certificates] == [False, False, None]
    assert not info.chain_intact


def test_describe_der_and_base64_cer(pki: Pki) -> None:
    der = pki.root.public_bytes(serialization.Encoding.DER)
    assert describe_file(der).format == "DER"
    cer = base64.encodebytes(der)  # a .cer exported as base-64 without PEM armour
    info = describe_file(cer)
    assert info.format == "BASE64"
    assert info.certificates[0].sha1_thumbprint == thumbprint(pki.root)


def test_describe_pfx(pki: Pki) -> None:
    data = pfx_bytes(pki.device_key, pki.device, [pki.intermediate, pki.root], "pw")
    info = describe_file(data, "pw")
    assert info.format == "PFX" and info.has_private_key and info.chain_intact
    assert [c.common_name for c in info.certificates] == [
        "device-01", "opendps test intermediate", "opendps test root"]


@pytest.mark.parametrize(("data", "message"), [
    (b"not a certificate", "not a certificate file"),
    (b"\x30\x03\x02\x01\x05", "not a certificate file"),
    (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "holds no certificate"),
    (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "malformed"),
])
def test_describe_rejects_other_files(data: bytes, message: str) -> None:
    with pytest.raises(CertError, match=message):
        describe_file(data)
