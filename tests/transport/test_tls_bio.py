"""The server's TLS layer asks the memory BIOs how much they hold instead of catching the
``WantReadError`` pyOpenSSL raises when one is empty, so a record received costs no exception;
without the private pieces it needs it falls back to the exception path and still works."""

from __future__ import annotations

import pytest
from OpenSSL import SSL

from opendps.transport import tls_bio, tls_transport

from .conftest import EchoServer, client_context, open_tls
from .pki_files import PkiFiles


def test_the_bio_sizes_are_readable_with_this_pyopenssl() -> None:
    # if a pyOpenSSL release drops the private attributes, this says so (the server still works)
    assert tls_bio.available
    server = SSL.Connection(SSL.Context(SSL.TLS_METHOD), None)
    server.set_accept_state()
    client = SSL.Connection(SSL.Context(SSL.TLS_METHOD), None)
    client.set_connect_state()
    with pytest.raises(SSL.WantReadError):
        client.do_handshake()
    hello = client.bio_read(65536)
    assert tls_bio.outgoing(client) == 0 and tls_bio.incoming(server) == 0
    server.bio_write(hello)
    assert tls_bio.incoming(server) == len(hello)
    with pytest.raises(SSL.Error):  # no certificate: an alert, but one queued to send
        server.do_handshake()
    assert tls_bio.incoming(server) == 0
    assert tls_bio.outgoing(server) > 0
    alert = server.bio_read(tls_bio.outgoing(server))
    assert alert and tls_bio.outgoing(server) == 0


@pytest.fixture
def empty_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every recv/bio_read on a server connection that raised WantReadError."""
    raised: list[str] = []
    for name in ("recv", "bio_read"):
        original = getattr(SSL.Connection, name)

        def counted(self, *args, _original=original, _name=name):  # type: ignore[no-untyped-def]
            try:
                return _original(self, *args)
            except SSL.WantReadError:
                raised.append(_name)
                raise

        monkeypatch.setattr(SSL.Connection, name, counted)
    return raised


@pytest.mark.parametrize("bio_sizes", [True, False])
async def test_records_are_read_without_an_exception_per_record(
        test_pki: PkiFiles, echo: EchoServer, empty_reads: list[str],
        monkeypatch: pytest.MonkeyPatch, bio_sizes: bool) -> None:
    monkeypatch.setattr(tls_transport, "_BIO_SIZES", bio_sizes)
    reader, writer = await open_tls(echo.port, client_context(test_pki))
    writer.write(b"first")
    assert await reader.readexactly(5) == b"first"
    empty_reads.clear()  # the handshake's are OpenSSL's way of saying "send me more"
    for i in range(20):
        message = b"message %02d" % i
        writer.write(message)
        assert await reader.readexactly(len(message)) == message
    if bio_sizes:
        assert empty_reads == []
    else:  # the fallback: one empty recv per record, and still correct (the answer's own
        # flush reads a BIO that holds it, so no empty bio_read)
        assert empty_reads.count("recv") >= 20 and empty_reads.count("bio_read") == 0
    writer.close()
