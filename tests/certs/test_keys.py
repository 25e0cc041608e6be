"""Key generation and PEM round trips, plain and encrypted."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from opendps.certs import (
    CertError,
    WrongPasswordError,
    generate_ec_key,
    generate_key,
    generate_rsa_key,
    load_private_key,
    private_key_to_pem,
)
from opendps.certs.keys import describe_key, public_keys_match

from .conftest import Pki


@pytest.mark.parametrize(("curve", "bits"), [("P-256", 256), ("P-384", 384), ("p-384", 384)])
def test_ec_curves(curve: str, bits: int) -> None:
    key = generate_ec_key(curve)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size == bits
    assert describe_key(key) == ("EC", bits, f"EC P-{bits}")


def test_generate_key_defaults_and_rejections(rsa_key: rsa.RSAPrivateKey) -> None:
    assert isinstance(generate_key(), ec.EllipticCurvePrivateKey)
    assert describe_key(rsa_key) == ("RSA", 2048, "RSA 2048")
    with pytest.raises(CertError, match="one of 2048, 3072, 4096"):
        generate_rsa_key(1024)
    with pytest.raises(CertError, match="P-256, P-384"):
        generate_ec_key("P-521")
    with pytest.raises(CertError, match="RSA keys only"):
        generate_key("ec", size=2048)
    with pytest.raises(CertError, match="EC keys only"):
        generate_key("rsa", curve="P-256")
    with pytest.raises(CertError, match="key type"):
        generate_key("dsa")  # type: ignore[arg-type]


def test_plain_pem_round_trip(pki: Pki, rsa_key: rsa.RSAPrivateKey) -> None:
    for key in (pki.device_key, rsa_key):
        pem = private_key_to_pem(key)
        assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
        assert public_keys_match(load_private_key(pem), key)
        # a password for a plain key is ignored: one --key-password reads and encrypts
        assert public_keys_match(load_private_key(pem, "unused"), key)


def test_encrypted_pem_round_trip(pki: Pki) -> None:
    pem = private_key_to_pem(pki.device_key, "1234")
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert public_keys_match(load_private_key(pem, "1234"), pki.device_key)
    assert public_keys_match(load_private_key(pem, b"1234"), pki.device_key)
    with pytest.raises(WrongPasswordError, match="wrong password"):
        load_private_key(pem, "4321")
    with pytest.raises(WrongPasswordError, match="encrypted"):
        load_private_key(pem)


def test_traditional_and_der_keys_load(rsa_key: rsa.RSAPrivateKey) -> None:
    pkcs1 = rsa_key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.BestAvailableEncryption(b"pw"))
    assert b"BEGIN RSA PRIVATE KEY" in pkcs1
    assert public_keys_match(load_private_key(pkcs1, "pw"), rsa_key)
    der = rsa_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    assert public_keys_match(load_private_key(der), rsa_key)


def test_unusable_keys() -> None:
    with pytest.raises(CertError, match="not a PEM or DER private key"):
        load_private_key(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(CertError, match="not a PEM or DER private key"):
        load_private_key(b"hello")
    ed = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    with pytest.raises(CertError, match="unsupported key type"):
        load_private_key(ed)
