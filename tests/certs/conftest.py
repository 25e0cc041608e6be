"""A small PKI built once per session: an EC root → intermediate → device hierarchy and one
RSA key (RSA generation is the slow part, so it happens once)."""

from __future__ import annotations

from typing import NamedTuple

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from opendps.certs import (
    create_device_certificate,
    create_intermediate_ca,
    create_root_ca,
    generate_ec_key,
    generate_rsa_key,
)


class Pki(NamedTuple):
    root_key: ec.EllipticCurvePrivateKey
    root: x509.Certificate
    intermediate_key: ec.EllipticCurvePrivateKey
    intermediate: x509.Certificate
    device_key: ec.EllipticCurvePrivateKey
    device: x509.Certificate


@pytest.fixture(scope="session")
def pki() -> Pki:
    root_key = generate_ec_key()
    root = create_root_ca("opendps test root", root_key, 30)
    intermediate_key = generate_ec_key()
    intermediate = create_intermediate_ca("opendps test intermediate", intermediate_key, root,
                                          root_key, 30)
    device_key = generate_ec_key()
    device = create_device_certificate("device-01", device_key, intermediate, intermediate_key,
                                       30)
    return Pki(root_key, root, intermediate_key, intermediate, device_key, device)


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return generate_rsa_key(2048)
