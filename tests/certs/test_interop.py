"""What we generate works elsewhere: ``openssl verify`` accepts the chain as the DPS tutorial
checks it, and a device presents its chain file + key as a TLS client certificate to a stdlib
server that trusts only the root (CERT_REQUIRED), as DPS and the hub require."""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import socket
import ssl
import subprocess
import threading
from pathlib import Path
from typing import NamedTuple

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from opendps.certs import (
    create_device_certificate,
    create_root_ca,
    create_self_signed_device_certificate,
    generate_ec_key,
    write_certificate,
    write_chain,
    write_pfx,
    write_private_key,
)

from .conftest import Pki

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="no openssl binary")


class Files(NamedTuple):
    root: Path
    intermediate: Path
    device: Path
    chain: Path  # device + intermediate: what the device presents
    key: Path  # device key, encrypted with "devpw"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Files:
    out = tmp_path_factory.mktemp("interop")
    return Files(write_certificate(out / "root.pem", pki.root),
                 write_certificate(out / "intermediate.pem", pki.intermediate),
                 write_certificate(out / "device.pem", pki.device),
                 write_chain(out / "chain.pem", pki.device, [pki.intermediate]),
                 write_private_key(out / "device.key.pem", pki.device_key, "devpw"))


def openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    assert OPENSSL is not None
    return subprocess.run([OPENSSL, *map(str, args)], capture_output=True, text=True,
                          timeout=30, check=False)


# -- openssl --------------------------------------------------------------------------------------
@needs_openssl
def test_openssl_verifies_the_chain(files: Files) -> None:
    done = openssl("verify", "-CAfile", files.root, "-untrusted", files.intermediate,
                   files.device)
    assert done.returncode == 0 and done.stdout.strip().endswith(": OK"), done.stdout + done.stderr
    done = openssl("verify", "-purpose", "sslclient", "-x509_strict", "-CAfile", files.root,
                   "-untrusted", files.intermediate, files.device)
    assert done.returncode == 0, done.stdout + done.stderr


@needs_openssl
def test_openssl_rejects_a_chain_without_the_intermediate(files: Files) -> None:
    assert openssl("verify", "-CAfile", files.root, files.device).returncode != 0


@needs_openssl
def test_openssl_verifies_an_rsa_chain_and_reads_our_pfx(tmp_path: Path, pki: Pki,
                                                         rsa_key: rsa.RSAPrivateKey) -> None:
    root = create_root_ca("rsa root", rsa_key, 2)
    device = create_device_certificate("rsa-dev", pki.device_key, root, rsa_key, 1)
    root_path = write_certificate(tmp_path / "root.pem", root)
    device_path = write_certificate(tmp_path / "dev.pem", device)
    assert openssl("verify", "-CAfile", root_path, device_path).returncode == 0
    for legacy in (False, True):
        pfx = write_pfx(tmp_path / f"dev-{legacy}.pfx", pki.device_key, device, [root], "pw",
                        legacy=legacy)
        done = openssl("pkcs12", "-in", pfx, "-passin", "pass:pw", "-nokeys")
        assert done.returncode == 0, done.stderr
        assert done.stdout.count("BEGIN CERTIFICATE") == 2
        assert openssl("pkcs12", "-in", pfx, "-passin", "pass:bad", "-noout").returncode != 0


# -- TLS client authentication --------------------------------------------------------------------
def _server_identity(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway server CA and a certificate for 127.0.0.1 (not part of the device PKI)."""
    ca_key, key = generate_ec_key(), generate_ec_key()
    ca = create_root_ca("tls test server CA", ca_key, 1)
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), False)
            .sign(ca_key, hashes.SHA256()))
    return (write_certificate(directory / "server-ca.pem", ca),
            write_certificate(directory / "server.pem", cert),
            write_private_key(directory / "server.key.pem", key))


class TlsOutcome(NamedTuple):
    server_saw: str | None  # the client certificate's CN, as verified by the server
    server_error: str | None
    client_read: bytes | None


def tls_round_trip(tmp_path: Path, trusted_root: Path, chain: Path, key: Path,
                   key_password: str | None) -> TlsOutcome:
    server_ca, server_cert, server_key = _server_identity(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(server_cert, server_key)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.load_verify_locations(cafile=trusted_root)  # the device root, nothing else
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(cafile=server_ca)
    client_ctx.load_cert_chain(chain, key, password=key_password)

    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    result: dict[str, str | None] = {"cn": None, "error": None}

    def serve() -> None:
        try:
            raw, _ = listener.accept()
            raw.settimeout(10)
            with server_ctx.wrap_socket(raw, server_side=True) as conn:
                peer = conn.getpeercert()
                result["cn"] = dict(item[0] for item in peer["subject"])["commonName"]
                conn.sendall(b"provisioned")
        except (ssl.SSLError, OSError) as exc:
            result["error"] = str(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    read: bytes | None = None
    try:
        with socket.create_connection(listener.getsockname(), timeout=10) as raw, \
                client_ctx.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
            read = conn.recv(64)
    except (ssl.SSLError, OSError):
        read = None
    finally:
        thread.join(10)
        listener.close()
    return TlsOutcome(result["cn"], result["error"], read)


def test_device_chain_is_a_working_tls_client_certificate(tmp_path: Path, files: Files) -> None:
    outcome = tls_round_trip(tmp_path, files.root, files.chain, files.key, "devpw")
    assert outcome == TlsOutcome("device-01", None, b"provisioned")


def test_leaf_alone_is_refused_when_the_server_has_only_the_root(tmp_path: Path,
                                                                 files: Files) -> None:
    outcome = tls_round_trip(tmp_path, files.root, files.device, files.key, "devpw")
    assert outcome.server_saw is None and outcome.client_read in (None, b"")
    assert outcome.server_error and "certificate verify failed" in outcome.server_error


def test_self_signed_device_certificate_works_when_trusted(tmp_path: Path, pki: Pki) -> None:
    cert = create_self_signed_device_certificate("solo-01", pki.device_key, 1)
    path = write_certificate(tmp_path / "solo.pem", cert)
    key = tmp_path / "solo.key.pem"
    key.write_bytes(pki.device_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    outcome = tls_round_trip(tmp_path, path, path, key, None)
    assert outcome == TlsOutcome("solo-01", None, b"provisioned")
