"""Certificates for X.509 tests, including the broken ones no tool should make."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = dt.datetime.now(dt.UTC)


@dataclass
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def key_pem(self) -> str:
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()).decode()


def make(cn: str, issuer: Issued | None = None, *, ca: bool | None = False,
         pathlen: int | None = None, not_before: dt.datetime | None = None,
         not_after: dt.datetime | None = None, client_eku: bool = True,
         signing_key: ec.EllipticCurvePrivateKey | None = None) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    # _validate=False: tests need the over-long CNs no well-behaved tool would make
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn, _validate=False)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.cert.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - dt.timedelta(days=1))
        .not_valid_after(not_after or NOW + dt.timedelta(days=30))
    )
    if ca is not None:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=ca, path_length=pathlen if ca else None), critical=True)
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True)
    elif client_eku:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    signer = signing_key or (issuer.key if issuer else key)
    return Issued(builder.sign(signer, hashes.SHA256()), key)


def device_files(tmp: Path, leaf: Issued, *chain: Issued) -> tuple[Path, Path]:
    """The cert file a device presents (leaf + intermediates) and its key file."""
    cert_file = tmp / f"{leaf.cert.serial_number}.chain.pem"
    key_file = tmp / f"{leaf.cert.serial_number}.key.pem"
    cert_file.write_text(leaf.pem + "".join(c.pem for c in chain))
    key_file.write_text(leaf.key_pem)
    return cert_file, key_file
