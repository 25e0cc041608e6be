"""Simulated device identities and the enrollment groups they register against.

Every run makes its own group (``bench-…``) so runs never collide and the records a run left
can be counted afterwards. Symmetric-key devices share one TLS context (the key travels in
the SAS token); X.509 devices each get a leaf signed by the run's own CA, which the group
names in ``signingCertificates``, so each handshake carries a distinct client certificate.
Registrations use pyOpenSSL contexts (``client/tls_client_context.py``); ``base_context`` is
the stdlib one the hub loads' clients take.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import secrets
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...protocol import sas
from ..service import DpsServiceClient
from ..tls_client_context import TlsClientContext


@dataclass(frozen=True, slots=True)
class Identity:
    registration_id: str
    key: str | None  # the derived device key; None for X.509
    tls: TlsClientContext  # an X.509 device's holds its certificate and key


@dataclass
class DeviceFleet:
    """``identity(i)`` makes device i's identity on demand, so 100,000 devices cost nothing
    until they connect (X.509 certificates are made up front: see ``prepare``)."""

    group_id: str
    attestation: str
    ca_file: str | None
    prefix: str
    group_key: str | None = None
    _base: ssl.SSLContext | None = None
    _tls: TlsClientContext | None = None
    _x509_dir: Path | None = None
    _ca: Any = None
    _made: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def new(cls, attestation: str, ca_file: str | None, run_id: str | None = None
            ) -> DeviceFleet:
        run_id = run_id or secrets.token_hex(4)
        group_id = f"bench-{'sk' if attestation == 'symmetric-key' else 'x509'}-{run_id}"
        fleet = cls(group_id, attestation, ca_file, prefix=f"{group_id}-dev")
        if attestation == "symmetric-key":
            fleet.group_key = base64.b64encode(os.urandom(32)).decode()
        return fleet

    def registration_id(self, i: int) -> str:
        return f"{self.prefix}-{i:06d}"

    def base_context(self) -> ssl.SSLContext:
        if self._base is None:
            self._base = ssl.create_default_context(cafile=self.ca_file)
            self._base.minimum_version = ssl.TLSVersion.TLSv1_2
        return self._base

    def tls_context(self) -> TlsClientContext:
        """The symmetric-key devices' shared pyOpenSSL context."""
        if self._tls is None:
            self._tls = TlsClientContext(self.ca_file)
        return self._tls

    def group_document(self) -> dict[str, Any]:
        if self.attestation == "symmetric-key":
            attestation: dict[str, Any] = {"type": "symmetricKey", "symmetricKey": {
                "primaryKey": self.group_key, "secondaryKey": self.group_key}}
        else:
            attestation = {"type": "x509", "x509": {"signingCertificates": {
                "primary": {"certificate": self._ca_pem()}}}}
        return {"enrollmentGroupId": self.group_id, "attestation": attestation,
                "reprovisionPolicy": {"updateHubAssignment": True, "migrateDeviceData": True}}

    async def create_group(self, service: DpsServiceClient) -> None:
        await service.create_or_update_enrollment_group(self.group_document())

    def prepare(self, count: int) -> None:
        """Make the X.509 leaves for devices [0, count): key generation is client CPU that
        must not be counted in the measured interval."""
        if self.attestation != "x509":
            return
        self._x509_dir = self._x509_dir or Path(tempfile.mkdtemp(prefix="opendps-bench-"))
        for i in range(self._made, count):
            cert_pem, key_pem = self._leaf(self.registration_id(i))
            (self._x509_dir / f"{i}.pem").write_bytes(cert_pem + key_pem)
        self._made = max(self._made, count)

    def identity(self, i: int) -> Identity:
        reg_id = self.registration_id(i)
        if self.attestation == "symmetric-key":
            assert self.group_key is not None
            return Identity(reg_id, sas.derive_device_key(self.group_key, reg_id),
                            self.tls_context())
        assert self._x509_dir is not None and i < self._made, "prepare() first"
        # its own context (~0.5 ms, the stdlib's was ~1.7 ms): a shared one would need the
        # key converted per connection, which costs about as much and is deprecated
        return Identity(reg_id, None,
                        TlsClientContext(self.ca_file, self._x509_dir / f"{i}.pem"))

    def cleanup(self) -> None:
        if self._x509_dir is not None:
            for path in self._x509_dir.iterdir():
                path.unlink()
            self._x509_dir.rmdir()
            self._x509_dir = None

    # -- X.509 -------------------------------------------------------------------------------
    def _ca_pair(self) -> Any:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        if self._ca is None:
            key = ec.generate_private_key(ec.SECP256R1())
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{self.group_id} CA")])
            now = dt.datetime.now(dt.UTC)
            cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                    .public_key(key.public_key()).serial_number(x509.random_serial_number())
                    .not_valid_before(now - dt.timedelta(days=1))
                    .not_valid_after(now + dt.timedelta(days=30))
                    .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                    .add_extension(x509.KeyUsage(False, False, False, False, False, True,
                                                 True, False, False), True)
                    .sign(key, hashes.SHA256()))
            self._ca = (cert, key)
        return self._ca

    def _ca_pem(self) -> str:
        from cryptography.hazmat.primitives.serialization import Encoding

        return self._ca_pair()[0].public_bytes(Encoding.PEM).decode()

    def _leaf(self, reg_id: str) -> tuple[bytes, bytes]:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        ca_cert, ca_key = self._ca_pair()
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, reg_id)]))
                .issuer_name(ca_cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1))
                .not_valid_after(now + dt.timedelta(days=30))
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
                .sign(ca_key, hashes.SHA256()))
        return (cert.public_bytes(serialization.Encoding.PEM),
                key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
