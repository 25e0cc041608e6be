"""The one client TLS factory: TLS 1.2+, host names checked, trusting the given CA, and for an
X.509 device its client certificate.

Devices check the host name of the DPS endpoint and of ``assignedHub`` (protocol.md §2.4),
and so do we, so a certificate without the right SAN fails here as it would on a real device.
An X.509 device proves itself in the handshake (leaf, then intermediates, then the key), so
the same context serves DPS and the hub and neither CONNECT carries a password.
"""

from __future__ import annotations

import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path


class ClientCertificateError(ValueError):
    """The certificate or key files cannot be used (unreadable, not PEM, key mismatch)."""


@dataclass(frozen=True)
class ClientCertificate:
    """A device's X.509 identity. ``cert_file`` holds the leaf first and may already hold the
    intermediates; ``chain_file`` appends more. ``key_file`` None: the key is in ``cert_file``."""

    cert_file: str | Path
    key_file: str | Path | None = None
    chain_file: str | Path | None = None
    password: str | None = None


def client_ssl_context(ca_file: str | Path | None,
                       client_cert: ClientCertificate | None = None) -> ssl.SSLContext:
    """Trust ``ca_file`` (a PEM bundle), or the system store when it is None."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if client_cert is not None:
        load_client_certificate(context, client_cert)
    return context


def load_client_certificate(context: ssl.SSLContext, cert: ClientCertificate) -> None:
    """``load_cert_chain`` reads one file (leaf + chain), so a separate chain file is joined
    with the certificate file in a private temporary directory first."""
    key_file = str(cert.key_file) if cert.key_file else None
    try:
        if cert.chain_file is None:
            context.load_cert_chain(str(cert.cert_file), key_file, cert.password)
            return
        joined = _read(cert.cert_file).rstrip(b"\n") + b"\n" + _read(cert.chain_file)
        with tempfile.TemporaryDirectory(prefix="opendps-") as directory:
            path = Path(directory) / "chain.pem"
            path.write_bytes(joined)
            context.load_cert_chain(str(path), key_file or str(cert.cert_file), cert.password)
    except ssl.SSLError as exc:
        raise ClientCertificateError(_describe(exc, cert)) from None
    except OSError as exc:
        raise ClientCertificateError(
            f"cannot read {exc.filename or cert.cert_file}: {exc.strerror or exc}") from None


def _read(path: str | Path) -> bytes:
    return Path(path).read_bytes()


def _describe(exc: ssl.SSLError, cert: ClientCertificate) -> str:
    """OpenSSL's reasons are terse ("PEM lib"); say which files and what to check."""
    reason = (exc.reason or "").upper()
    files = f"{cert.cert_file}" + (f" and {cert.key_file}" if cert.key_file else "")
    if "KEY_VALUES_MISMATCH" in reason:
        return f"the private key does not belong to the certificate ({files})"
    if "BAD_DECRYPT" in reason or "BAD_PASSWORD" in reason:
        return f"the private key is encrypted: wrong or missing password ({files})"
    return (f"cannot load the client certificate ({files}): expected PEM certificate(s) and a "
            f"PEM private key ({exc.reason or exc})")
