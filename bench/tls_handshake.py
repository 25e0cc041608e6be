"""Server CPU per TLS handshake: stdlib ``ssl`` versus opendps's pyOpenSSL transport.

Not a test. Each cell serves N fresh connections (one short request, one reply, close; no
session resumption) to a load generator in another process, and divides the server process's
CPU time (user + system) by N. Cells: server kind x TLS version x client chain (none, or leaf +
intermediate). The stdlib server can only get a client chain by trusting its root
(CERT_REQUIRED); the opendps transport accepts any chain. Server on CPU 0, client on CPU 1 when
there are two. Run: ``.venv/bin/python bench/tls_handshake.py [-n 2000] [--repeat 3]``."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import resource
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from opendps import pki
from opendps.transport.tls import TlsConfig
from opendps.transport.tls_transport import start_tls_server

VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
CONCURRENCY = 64
REQUEST, REPLY = b"GET\n", b"OK\n"


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {cpu})


# -- files ---------------------------------------------------------------------------------------
def _cert(cn: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None,
          issuer_key: ec.EllipticCurvePrivateKey, ca: bool) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    return (x509.CertificateBuilder().subject_name(name)
            .issuer_name(issuer.subject if issuer else name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(issuer_key, hashes.SHA256()))


def make_files(d: Path) -> None:
    """Server: EC P-256 leaf + CA. Device: EC P-256 leaf (CN only) + intermediate + root."""
    ca, ca_key = pki.create_ca()
    cert, key = pki.create_server_cert(ca, ca_key, pki.server_names([]))
    (d / "server.pem").write_text(cert + ca)
    (d / "server.key").write_text(key)
    (d / "ca.pem").write_text(ca)
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(3)]
    root = _cert("bench root", keys[0], None, keys[0], True)
    inter = _cert("bench intermediate", keys[1], root, keys[0], True)
    leaf = _cert("bench-device-0001", keys[2], inter, keys[1], False)
    pem = serialization.Encoding.PEM
    (d / "device-root.pem").write_bytes(root.public_bytes(pem))
    (d / "device.pem").write_bytes(leaf.public_bytes(pem) + inter.public_bytes(pem))
    (d / "device.key").write_bytes(keys[2].private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


# -- server side -------------------------------------------------------------------------------
class Reply(asyncio.Protocol):
    """Answer the request, note whether a client certificate came, close."""

    with_cert = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        conn = transport.get_extra_info("ssl_object")
        has = (conn.get_peer_certificate() if hasattr(conn, "get_peer_certificate")
               else conn.getpeercert(binary_form=True))
        Reply.with_cert += has is not None

    def data_received(self, data: bytes) -> None:
        self.transport.write(REPLY)  # type: ignore[attr-defined]
        self.transport.close()


def stdlib_context(d: Path, chain: bool) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(d / "server.pem"), str(d / "server.key"))
    ctx.set_alpn_protocols(["http/1.1", "mqtt"])
    if chain:  # the only way stdlib gets a chain: trust its root
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(str(d / "device-root.pem"))
    return ctx


async def start(kind: str, d: Path, chain: bool) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    if kind == "stdlib":
        return await loop.create_server(Reply, "127.0.0.1", 0, ssl=stdlib_context(d, chain),
                                        backlog=1024)
    return await start_tls_server(Reply, "127.0.0.1", 0, TlsConfig(d / "server.pem",
                                                                   d / "server.key"))


async def cell(kind: str, version: str, chain: bool, d: Path, n: int, repeat: int) -> float:
    server = await start(kind, d, chain)
    port = server.sockets[0].getsockname()[1]
    try:
        await run_client(d, port, version, chain, max(200, n // 10))  # warm-up
        samples = []
        for _ in range(repeat):
            Reply.with_cert = 0
            before = resource.getrusage(resource.RUSAGE_SELF)
            await run_client(d, port, version, chain, n)
            after = resource.getrusage(resource.RUSAGE_SELF)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            assert Reply.with_cert == (n if chain else 0), Reply.with_cert
            samples.append(cpu / n)
        return statistics.median(samples)
    finally:
        server.close()


async def run_client(d: Path, port: int, version: str, chain: bool, n: int) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--client", str(d), str(port), version, str(int(chain)),
        str(n))
    if await proc.wait() != 0:
        raise SystemExit(f"load generator failed ({proc.returncode})")


# -- client side (its own process) -------------------------------------------------------------
async def client(d: Path, port: int, version: str, chain: bool, n: int) -> None:
    ctx = ssl.create_default_context(cafile=str(d / "ca.pem"))
    ctx.minimum_version = ctx.maximum_version = VERSIONS[version]
    if chain:
        ctx.load_cert_chain(str(d / "device.pem"), str(d / "device.key"))
    left = n

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                                           server_hostname="localhost")
            writer.write(REQUEST)
            assert await reader.read() == REPLY
            writer.close()

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


def chain_extraction_us(d: Path) -> float:
    """What ``get_extra_info("peercert_chain")`` adds for a leaf + intermediate (µs)."""
    timings: list[float] = []

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            tls = transport._tls  # type: ignore[attr-defined]
            for _ in range(200):
                tls._chain = None
                started = time.perf_counter()
                assert len(transport.get_extra_info("peercert_chain")) == 2
                timings.append(time.perf_counter() - started)
            transport.close()

    async def main() -> None:
        server = await start_tls_server(Probe, "127.0.0.1", 0,
                                        TlsConfig(d / "server.pem", d / "server.key"))
        ctx = ssl.create_default_context(cafile=str(d / "ca.pem"))
        ctx.load_cert_chain(str(d / "device.pem"), str(d / "device.key"))
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.sockets[0].getsockname()[1], ssl=ctx,
            server_hostname="localhost")
        await reader.read()
        writer.close()
        server.close()

    asyncio.run(main())
    return statistics.median(timings) * 1e6


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        d, port, version, chain, n = sys.argv[2:7]
        pin(1)
        with asyncio.Runner(loop_factory=new_loop) as runner:
            runner.run(client(Path(d), int(port), version, chain == "1", int(n)))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=2000, help="connections per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell (median)")
    args = parser.parse_args()
    pin(0)
    import OpenSSL

    print(f"python {sys.version.split()[0]}, stdlib {ssl.OPENSSL_VERSION}, pyOpenSSL "
          f"{OpenSSL.__version__} with {OpenSSL.SSL.OpenSSL_version(0).decode()}, "
          f"{os.cpu_count()} CPUs, N={args.n} x {args.repeat} runs (median), "
          f"{CONCURRENCY} in flight, server on uvloop")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        make_files(d)
        rows = []
        with asyncio.Runner(loop_factory=new_loop) as runner:
            for version in VERSIONS:
                for chain in (False, True):
                    std = runner.run(cell("stdlib", version, chain, d, args.n, args.repeat))
                    pyo = runner.run(cell("opendps", version, chain, d, args.n, args.repeat))
                    rows.append((version, "leaf+intermediate" if chain else "none", std, pyo))
        extract = chain_extraction_us(d)
    print()
    print("| TLS | client chain | stdlib ssl ms/handshake | opendps ms/handshake "
          "| ratio stdlib/opendps |")
    print("|---|---|---|---|---|")
    for version, chain_name, std, pyo in rows:
        print(f"| {version} | {chain_name} | {std * 1e3:.3f} | {pyo * 1e3:.3f} "
              f"| {std / pyo:.2f} |")
    print()
    print("stdlib with a chain = CERT_REQUIRED against the device root (it cannot accept any "
          "chain); ratio > 1: the opendps transport uses less server CPU.")
    print(f"get_extra_info('peercert_chain') for leaf + intermediate: {extract:.0f} µs "
          "(once per connection, only when asked)")


if __name__ == "__main__":
    main()
