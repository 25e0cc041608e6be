"""How many bytes a pyOpenSSL ``Connection``'s memory BIOs hold.

pyOpenSSL answers "empty" only by raising ``WantReadError`` (from ``bio_read`` on the outgoing
BIO, from ``recv`` once the incoming one is drained), and building and catching that exception
costs about 2.3 µs. Every record received paid it twice (the ``recv`` after the last record,
the ``bio_read`` of a flush with nothing to send): a twentieth of a telemetry message's server
CPU. OpenSSL's ``BIO_get_mem_data`` reads the length in 0.2 µs. pyOpenSSL exposes neither the
BIOs nor that call publicly, so this reaches for its private ``_into_ssl``/``_from_ssl`` and
cryptography's bindings, checked once at import: without them ``available`` is False and the
caller keeps the exception path, which is correct, only slower."""

from __future__ import annotations

from typing import Any

from OpenSSL import SSL

try:
    from OpenSSL._util import ffi as _ffi
    from OpenSSL._util import lib as _lib

    _mem_data = _lib.BIO_get_mem_data
    _NULL = _ffi.NULL
    _probe = SSL.Connection(SSL.Context(SSL.TLS_METHOD), None)
    _probe.bio_write(b"\x16")
    available = (_mem_data(_probe._into_ssl, _NULL) == 1
                 and _mem_data(_probe._from_ssl, _NULL) == 0)
    del _probe
except (ImportError, AttributeError, SSL.Error):  # pragma: no cover - pyOpenSSL changed
    available = False


def incoming(conn: Any) -> int:
    """Ciphertext received and not yet consumed by OpenSSL (only when ``available``)."""
    return int(_mem_data(conn._into_ssl, _NULL))


def outgoing(conn: Any) -> int:
    """Bytes OpenSSL has queued for the peer (only when ``available``)."""
    return int(_mem_data(conn._from_ssl, _NULL))
