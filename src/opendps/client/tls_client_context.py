"""Client TLS on pyOpenSSL: the server's chain verified by OpenSSL, its host name checked here.

The stdlib ``ssl`` module links the system OpenSSL (3.0 here), whose handshakes cost a client
half as much again as cryptography's bundled OpenSSL does, so a load generator sharing cores
with the server it measures uses this instead (``tls_client.py`` drives it over memory BIOs).
What it checks is what ``client/tls.py`` checks: TLS 1.2 or 1.3, a chain ending at ``ca_file``
(VERIFY_PEER, the handshake fails otherwise), and a SAN matching the name the device asked for.

pyOpenSSL exposes no host-name check, so the SAN is matched in Python once per distinct leaf
and host and remembered: a name check is a pure function of those two, while the chain (and
so the leaf's validity) is still verified by OpenSSL on every handshake.
"""

from __future__ import annotations

import functools
import ipaddress
import ssl
from pathlib import Path

from cryptography import x509
from OpenSSL import SSL, crypto

__all__ = ["TlsClientContext", "TlsError", "TlsVerifyError", "host_matches"]

# OpenSSL 3.0's default key-exchange groups. The bundled OpenSSL puts the hybrid X25519MLKEM768
# first, which costs both ends ~0.1-0.25 ms more per handshake than X25519; devices on
# OpenSSL 3.0 (the Python SDK here) and nginx use X25519, so the server is measured with it.
CLASSIC_GROUPS = b"X25519:P-256:X448:P-521:P-384"
_VERIFIED_MAX = 4096  # (leaf DER, host) pairs remembered; cleared when full


class TlsError(ssl.SSLError):
    """A pyOpenSSL failure dressed as ``ssl.SSLError``, so callers and the load generator's
    error table (``tls <reason>``) treat both TLS stacks alike."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.library = "SSL"

    def __str__(self) -> str:
        return str(self.args[0])


class TlsVerifyError(TlsError, ssl.SSLCertVerificationError):
    """The server's certificate does not chain to the CA, or is not valid for the host."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "CERTIFICATE_VERIFY_FAILED")
        self.verify_message = message


class TlsClientContext:
    """One pyOpenSSL client context; symmetric-key devices share one, an X.509 device has its
    own (``cert_file``: leaf first, then any intermediates; ``key_file`` None: the key is in
    ``cert_file`` too). ``ca_file`` None trusts the system store."""

    def __init__(self, ca_file: str | Path | None, cert_file: str | Path | None = None,
                 key_file: str | Path | None = None) -> None:
        self.ca_file = str(ca_file) if ca_file else None
        ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
        ctx.set_min_proto_version(SSL.TLS1_2_VERSION)  # and up to 1.3, the library's maximum
        ctx.set_options(SSL.OP_NO_COMPRESSION)
        if self.ca_file:
            ctx.load_verify_locations(self.ca_file)
        else:
            ctx.set_default_verify_paths()
        ctx.set_verify(SSL.VERIFY_PEER)  # no callback: OpenSSL's own verification decides
        if cert_file is not None:
            ctx.use_certificate_chain_file(str(cert_file))
            ctx.use_privatekey_file(str(key_file or cert_file), crypto.FILETYPE_PEM)
            ctx.check_privatekey()
        _prefer_classic_groups(ctx)
        self.context = ctx

    def connection(self, server_hostname: str) -> SSL.Connection:
        """A client connection on memory BIOs, with SNI unless the name is an IP literal."""
        conn = SSL.Connection(self.context, None)
        conn.set_connect_state()
        sni = _sni(server_hostname)
        if sni is not None:
            conn.set_tlsext_host_name(sni)
        return conn

    def check_host(self, conn: SSL.Connection, server_hostname: str) -> None:
        """After the handshake: raise TlsVerifyError unless the leaf's SAN names the host."""
        leaf = conn.get_peer_certificate()
        if leaf is None:  # pragma: no cover - VERIFY_PEER makes OpenSSL insist on one
            raise TlsVerifyError(f"{server_hostname} sent no certificate")
        der = crypto.dump_certificate(crypto.FILETYPE_ASN1, leaf)
        key = (der, server_hostname)
        if key in _verified:
            return
        cert = x509.load_der_x509_certificate(der)
        if not host_matches(cert, server_hostname):
            raise TlsVerifyError(
                f"certificate verify failed: Hostname mismatch, certificate is not valid for "
                f"{server_hostname!r} (it names {', '.join(_names(cert)) or 'nothing'})")
        if len(_verified) >= _VERIFIED_MAX:
            _verified.clear()
        _verified.add(key)

    def describe_failure(self, conn: SSL.Connection, server_hostname: str,
                         exc: SSL.Error) -> TlsError:
        """A handshake error with the reason spelled out; verification failures say why the
        chain was refused (worked out again here, on the error path only)."""
        reason = _reason(exc)
        if "certificate verify failed" not in reason:
            return TlsError(f"TLS handshake with {server_hostname} failed: {reason}",
                            reason.upper().replace(" ", "_") or "HANDSHAKE_FAILED")
        return TlsVerifyError(f"certificate verify failed: {self._chain_problem(conn)} "
                              f"(server {server_hostname}, trusted CA "
                              f"{self.ca_file or 'the system store'})")

    def _chain_problem(self, conn: SSL.Connection) -> str:
        chain = conn.get_peer_cert_chain() or []  # on a client the leaf comes first
        if not chain:
            return "the server's chain was refused"
        store = crypto.X509Store()
        if self.ca_file:
            store.load_locations(self.ca_file)
        else:
            store.set_default_paths()
        try:
            crypto.X509StoreContext(store, chain[0], chain[1:]).verify_certificate()
        except crypto.X509StoreContextError as err:
            return str(err)
        return "the server's chain was refused"


_verified: set[tuple[bytes, str]] = set()


def host_matches(cert: x509.Certificate, host: str) -> bool:
    """RFC 6125 as Python's ``ssl`` applies it: an IP literal matches an IP SAN only, a name a
    DNS SAN (case-insensitive, a wildcard only as the whole left-most label); never the CN."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    if _is_ip(host):
        address = ipaddress.ip_address(host)
        return address in sans.get_values_for_type(x509.IPAddress)
    wanted = host.rstrip(".").lower()
    return any(_dns_match(str(name).rstrip(".").lower(), wanted)
               for name in sans.get_values_for_type(x509.DNSName))


def _dns_match(pattern: str, host: str) -> bool:
    if pattern == host:
        return True
    if not pattern.startswith("*.") or "*" in pattern[2:]:
        return False
    first, dot, rest = host.partition(".")
    return bool(first and dot and rest == pattern[2:] and "." in rest)


def _names(cert: x509.Certificate) -> list[str]:
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(v) for v in (*sans.get_values_for_type(x509.DNSName),
                             *sans.get_values_for_type(x509.IPAddress))]


@functools.lru_cache(maxsize=256)
def _sni(host: str) -> bytes | None:
    return None if _is_ip(host) else host.encode("idna")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _reason(exc: SSL.Error) -> str:
    """One line from pyOpenSSL's list of (library, function, reason) tuples."""
    args = exc.args[0] if exc.args else None
    if isinstance(args, list) and args and all(isinstance(a, tuple) for a in args):
        return "; ".join(str(a[-1]) for a in args)
    return " ".join(str(a) for a in exc.args) or type(exc).__name__


def _prefer_classic_groups(ctx: SSL.Context) -> None:
    """pyOpenSSL has no public call for the group list; its binding does (guarded: a build
    without it keeps the library's defaults, which only costs CPU)."""
    from OpenSSL._util import lib

    set_list = getattr(lib, "SSL_CTX_set1_curves_list", None)
    raw = getattr(ctx, "_context", None)
    if set_list is not None and raw is not None:
        set_list(raw, CLASSIC_GROUPS)
