"""Keys and certificates for TLS tests: the server's (``opendps.pki``) and device chains (a root,
an intermediate, a leaf whose CN is a registration id and which has no SAN, as DPS devices use)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from opendps import pki
from opendps.transport.tls import TlsConfig

REGISTRATION_ID = "device-x509-01"
Key = ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class DeviceFiles:
    cert_file: Path  # what the client sends: the leaf, maybe followed by intermediates
    key_file: Path
    sent: tuple[x509.Certificate, ...]  # the same certificates, in order


@dataclass(frozen=True)
class PkiFiles:
    tls: TlsConfig
    server_ca_file: Path
    leaf_only: DeviceFiles
    leaf_and_intermediate: DeviceFiles
    expired: DeviceFiles
    untrusted: DeviceFiles


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, key: Key, issuer: x509.Name | None, issuer_key: Key, *, ca: bool,
          days: tuple[int, int] = (-1, 365)) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject)).issuer_name(issuer or _name(subject))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=days[0]))
        .not_valid_after(now + dt.timedelta(days=days[1]))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _key() -> Key:
    return ec.generate_private_key(ec.SECP256R1())


def _write(directory: Path, name: str, key: Key, *certs: x509.Certificate) -> DeviceFiles:
    cert_file, key_file = directory / f"{name}.pem", directory / f"{name}.key"
    cert_file.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return DeviceFiles(cert_file, key_file, certs)


def make_pki(directory: Path, server_names: tuple[str, ...] = ()) -> PkiFiles:
    ca_pem, ca_key_pem = pki.create_ca("opendps test server CA")
    cert_pem, key_pem = pki.create_server_cert(ca_pem, ca_key_pem,
                                               pki.server_names(server_names))
    (directory / "server.pem").write_text(cert_pem + ca_pem)
    (directory / "server.key").write_text(key_pem)
    (directory / "ca.pem").write_text(ca_pem)

    root_key, inter_key, leaf_key = _key(), _key(), _key()
    root = _cert("device root CA", root_key, None, root_key, ca=True)
    inter = _cert("device intermediate CA", inter_key, root.subject, root_key, ca=True)
    leaf = _cert(REGISTRATION_ID, leaf_key, inter.subject, inter_key, ca=False)
    expired_key, stranger_key = _key(), _key()
    expired = _cert(REGISTRATION_ID, expired_key, inter.subject, inter_key, ca=False,
                    days=(-30, -1))
    stranger = _cert(REGISTRATION_ID, stranger_key, None, stranger_key, ca=False)  # self-signed
    return PkiFiles(
        tls=TlsConfig(directory / "server.pem", directory / "server.key"),
        server_ca_file=directory / "ca.pem",
        leaf_only=_write(directory, "leaf", leaf_key, leaf),
        leaf_and_intermediate=_write(directory, "leaf-chain", leaf_key, leaf, inter),
        expired=_write(directory, "expired", expired_key, expired, inter),
        untrusted=_write(directory, "untrusted", stranger_key, stranger),
    )
