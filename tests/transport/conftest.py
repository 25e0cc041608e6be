"""Real TLS sockets on 127.0.0.1 port 0, under both event loops the server may run on."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field

import pytest

from opendps.transport.tls_transport import start_tls_server

from .loops import both_loops
from .pki_files import DeviceFiles, PkiFiles, make_pki


@pytest.hookimpl(optionalhook=True)
def pytest_asyncio_loop_factories(config: pytest.Config,
                                  item: pytest.Item) -> Mapping[str, Callable[[], object]]:
    """``opendps serve`` runs on uvloop; tests and the SDKs' fakes on the stdlib loop."""
    return both_loops()


@pytest.fixture(scope="session")
def test_pki(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return make_pki(tmp_path_factory.mktemp("tls-pki"))


class EchoApp(asyncio.Protocol):
    """Echoes. ``CLOSE`` / ``ABORT`` ask it to close or abort, ``SEND <n>`` for n bytes and
    ``SEND+CLOSE <n>`` for n bytes then close. Records what it saw."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.chain: list = []
        self.received = 0
        self.eofs = 0
        self.losses: list[Exception | None] = []
        self.write_pauses = 0
        self.write_paused = asyncio.Event()
        self.buffered_at_pause = 0
        self.write_resumes = 0
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.chain = transport.get_extra_info("peercert_chain")

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.received += len(data)
        if data == b"CLOSE":
            self.transport.close()
        elif data == b"ABORT":
            self.transport.abort()
        elif data.startswith(b"SEND"):
            command, size = data.split()
            self.transport.write(bytes(int(size)))
            if command == b"SEND+CLOSE":
                self.transport.close()
        else:
            self.transport.write(data)

    def pause_writing(self) -> None:  # the peer reads slower than it writes: stop reading too
        self.write_pauses += 1
        assert self.transport is not None
        self.buffered_at_pause = self.transport.get_write_buffer_size()
        self.write_paused.set()
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_resumes += 1
        assert self.transport is not None
        self.transport.resume_reading()

    def eof_received(self) -> bool:
        self.eofs += 1
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.losses.append(exc)
        if not self.lost.done():
            self.lost.set_result(exc)


@dataclass
class EchoServer:
    server: asyncio.Server
    port: int
    apps: list[EchoApp] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def first_app(self) -> EchoApp:
        async with asyncio.timeout(5):
            await self.arrived.wait()
        return self.apps[0]


async def start_echo(test_pki: PkiFiles, **kwargs: object) -> EchoServer:
    apps: list[EchoApp] = []
    arrived = asyncio.Event()

    def factory() -> EchoApp:
        app = EchoApp()
        apps.append(app)
        arrived.set()
        return app

    server = await start_tls_server(factory, "127.0.0.1", 0, test_pki.tls, **kwargs)  # type: ignore[arg-type]
    return EchoServer(server, server.sockets[0].getsockname()[1], apps, arrived)


@pytest.fixture
async def echo(test_pki: PkiFiles) -> AsyncIterator[EchoServer]:
    server = await start_echo(test_pki)
    yield server
    server.server.close()


def client_context(test_pki: PkiFiles, device: DeviceFiles | None = None,
                   version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    """A stdlib client, as the Python SDK builds it (it pins TLS 1.2)."""
    ctx = ssl.create_default_context(cafile=str(test_pki.server_ca_file))
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    if device is not None:
        ctx.load_cert_chain(str(device.cert_file), str(device.key_file))
    return ctx


async def open_tls(port: int, ctx: ssl.SSLContext) -> tuple[asyncio.StreamReader,
                                                            asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost",
                                         limit=1 << 20)


@pytest.fixture
def tls_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Everything logged while a test ran, at DEBUG and up."""
    caplog.set_level("DEBUG")
    yield caplog


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records
           if r.exc_info or r.levelname in ("WARNING", "ERROR", "CRITICAL")]
    assert not bad, [r.getMessage() for r in bad]
