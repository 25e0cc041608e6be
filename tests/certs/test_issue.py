"""Issued certificates carry exactly the extensions of their kind, and names follow DPS rules."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from opendps.certs import (
    CertError,
    create_device_certificate,
    create_intermediate_ca,
    create_root_ca,
    create_self_signed_device_certificate,
    create_verification_certificate,
    generate_ec_key,
    is_signed_by,
)

from .conftest import Pki

CA_EXTENSIONS = {ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.KEY_USAGE,
                 ExtensionOID.SUBJECT_KEY_IDENTIFIER, ExtensionOID.AUTHORITY_KEY_IDENTIFIER}
DEVICE_EXTENSIONS = CA_EXTENSIONS | {ExtensionOID.EXTENDED_KEY_USAGE}
KU_FLAGS = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
            "key_agreement", "key_cert_sign", "crl_sign")


def ext(cert: x509.Certificate, cls: type) -> x509.Extension:
    return cert.extensions.get_extension_for_class(cls)


def key_usages(cert: x509.Certificate) -> set[str]:
    usage = ext(cert, x509.KeyUsage).value
    return {flag for flag in KU_FLAGS if getattr(usage, flag)}


def cn(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def ski(cert: x509.Certificate) -> bytes:
    return ext(cert, x509.SubjectKeyIdentifier).value.digest


def aki(cert: x509.Certificate) -> bytes | None:
    return ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier


def assert_ca(cert: x509.Certificate, pathlen: int | None) -> None:
    assert {e.oid for e in cert.extensions} == CA_EXTENSIONS
    constraints = ext(cert, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    assert constraints.value.path_length == pathlen
    assert ext(cert, x509.KeyUsage).critical
    assert key_usages(cert) == {"key_cert_sign", "crl_sign"}
    assert ski(cert) == x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest


def assert_device(cert: x509.Certificate, usages: set[str]) -> None:
    assert {e.oid for e in cert.extensions} == DEVICE_EXTENSIONS  # no SAN
    constraints = ext(cert, x509.BasicConstraints)
    assert not constraints.value.ca and constraints.value.path_length is None
    assert key_usages(cert) == usages and ext(cert, x509.KeyUsage).critical
    assert list(ext(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]


# -- CAs ------------------------------------------------------------------------------------------
def test_root_ca_extensions(pki: Pki) -> None:
    assert_ca(pki.root, None)
    assert pki.root.subject == pki.root.issuer
    assert cn(pki.root) == "opendps test root"
    assert aki(pki.root) == ski(pki.root)
    assert is_signed_by(pki.root, pki.root)


def test_root_ca_with_pathlen_and_validity() -> None:
    key = generate_ec_key()
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    root = create_root_ca("r", key, 10, pathlen=1, now=now)
    assert_ca(root, 1)
    assert root.not_valid_after_utc == now + dt.timedelta(days=10)
    assert now - dt.timedelta(hours=1) < root.not_valid_before_utc < now


def test_intermediate_ca_extensions(pki: Pki) -> None:
    assert_ca(pki.intermediate, None)
    assert pki.intermediate.issuer == pki.root.subject
    assert aki(pki.intermediate) == ski(pki.root)
    assert is_signed_by(pki.intermediate, pki.root)
    assert not is_signed_by(pki.intermediate, pki.intermediate)


def test_intermediate_pathlen_must_fit_under_the_issuer() -> None:
    key = generate_ec_key()
    root = create_root_ca("r", key, 1, pathlen=1)
    inter = create_intermediate_ca("i", key, root, key, 1, pathlen=0)
    assert_ca(inter, 0)
    with pytest.raises(CertError, match="exceeds"):
        create_intermediate_ca("i", key, root, key, 1, pathlen=1)
    with pytest.raises(CertError, match="pathlen 0"):
        create_intermediate_ca("i2", key, inter, key, 1)


def test_issuer_checks(pki: Pki) -> None:
    with pytest.raises(CertError, match="does not belong"):
        create_intermediate_ca("i", generate_ec_key(), pki.root, pki.intermediate_key, 1)
    with pytest.raises(CertError, match="not a CA"):
        create_device_certificate("d", generate_ec_key(), pki.device, pki.device_key, 1)
    with pytest.raises(CertError, match="at least 1 day"):
        create_root_ca("r", pki.root_key, 0)
    with pytest.raises(CertError, match="at most 64"):
        create_root_ca("x" * 65, pki.root_key, 1)
    with pytest.raises(CertError, match="empty"):
        create_root_ca(" ", pki.root_key, 1)


# -- devices --------------------------------------------------------------------------------------
def test_ec_device_certificate(pki: Pki) -> None:
    assert_device(pki.device, {"digital_signature"})
    assert cn(pki.device) == "device-01"
    assert pki.device.issuer == pki.intermediate.subject
    assert aki(pki.device) == ski(pki.intermediate)
    assert ski(pki.device) == x509.SubjectKeyIdentifier.from_public_key(
        pki.device_key.public_key()).digest
    assert is_signed_by(pki.device, pki.intermediate)


def test_rsa_device_certificate_adds_key_encipherment(pki: Pki, rsa_key: rsa.RSAPrivateKey
                                                      ) -> None:
    cert = create_device_certificate("rsa-device", rsa_key, pki.intermediate,
                                     pki.intermediate_key, 1)
    assert_device(cert, {"digital_signature", "key_encipherment"})


def test_rsa_ca_signs_with_sha256(pki: Pki, rsa_key: rsa.RSAPrivateKey) -> None:
    root = create_root_ca("rsa root", rsa_key, 1)
    assert_ca(root, None)
    device = create_device_certificate("d1", pki.device_key, root, rsa_key, 1)
    assert isinstance(device.signature_hash_algorithm, hashes.SHA256)
    assert is_signed_by(device, root)


def test_p384_signer_uses_sha384() -> None:
    key = generate_ec_key("P-384")
    root = create_root_ca("r", key, 1)
    assert isinstance(root.signature_hash_algorithm, hashes.SHA384)


def test_serial_numbers_are_random(pki: Pki) -> None:
    serials = {create_device_certificate("d", pki.device_key, pki.intermediate,
                                         pki.intermediate_key, 1).serial_number
               for _ in range(3)}
    assert len(serials) == 3 and all(s.bit_length() > 64 for s in serials)


def test_self_signed_device_certificate(pki: Pki) -> None:
    cert = create_self_signed_device_certificate("solo-device", pki.device_key, 5)
    assert_device(cert, {"digital_signature"})
    assert cert.subject == cert.issuer and cn(cert) == "solo-device"
    assert aki(cert) == ski(cert)
    assert is_signed_by(cert, cert)


@pytest.mark.parametrize("registration_id", ["a", "x" * 64, "dev.01:a_b-c", "ABC"])
def test_registration_ids_accepted(pki: Pki, registration_id: str) -> None:
    cert = create_self_signed_device_certificate(registration_id, pki.device_key, 1)
    assert cn(cert) == registration_id


@pytest.mark.parametrize(("registration_id", "message"), [
    ("", "1–64 characters"), ("x" * 65, "1–64 characters"), ("dev ice", "invalid"),
    ("-dev", "invalid"), ("dev-", "invalid"), ("dev/1", "invalid"), ("dév", "invalid"),
])
def test_registration_ids_rejected(pki: Pki, registration_id: str, message: str) -> None:
    with pytest.raises(CertError, match=message):
        create_device_certificate(registration_id, pki.device_key, pki.intermediate,
                                  pki.intermediate_key, 1)
    with pytest.raises(CertError, match=message):
        create_self_signed_device_certificate(registration_id, pki.device_key, 1)


# -- proof of possession --------------------------------------------------------------------------
def test_verification_certificate(pki: Pki) -> None:
    code = "4D2A5E8F0C3B1A7D9E6F2B4C8A0D3E5F7A9B1C3D5E7F9A1B"
    now = dt.datetime.now(dt.UTC)
    cert = create_verification_certificate(code, pki.root, pki.root_key)
    assert cn(cert) == code
    assert cert.issuer == pki.root.subject
    assert is_signed_by(cert, pki.root)
    assert not ext(cert, x509.BasicConstraints).value.ca
    assert aki(cert) == ski(pki.root)
    assert cert.not_valid_after_utc - now < dt.timedelta(days=1, minutes=1)


def test_verification_certificate_needs_the_ca_key(pki: Pki) -> None:
    with pytest.raises(CertError, match="does not belong"):
        create_verification_certificate("ABC", pki.root, pki.intermediate_key)
    with pytest.raises(CertError, match="empty"):
        create_verification_certificate("  ", pki.root, pki.root_key)
