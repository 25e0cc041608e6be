"""A scripted HTTPS server in a background thread, for CLI commands (which run their own loop).

Serves on 127.0.0.1 with a certificate from a throwaway CA; every request is recorded and
answered by the route table the test fills in.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from opendps import pki

Responder = Callable[["Seen"], web.StreamResponse]


@dataclass
class TlsFiles:
    ca: Path
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


def make_tls_files(directory: Path, names: list[str]) -> TlsFiles:
    ca_cert, ca_key = pki.create_ca("cli test CA")
    cert, key = pki.create_server_cert(ca_cert, ca_key, names)
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    files.ca.write_text(ca_cert)
    files.cert.write_text(cert + ca_cert)
    files.key.write_text(key)
    return files


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeHttps:
    tls: TlsFiles
    routes: dict[tuple[str, str], Responder] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None
    _thread: threading.Thread | None = None

    def start(self) -> FakeHttps:
        ready = threading.Event()

        def main() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._serve())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=main, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.tls.server_context())
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        text = await request.text()
        seen = Seen(request.method, request.path, dict(request.query), dict(request.headers),
                    json.loads(text) if text else None)
        self.seen.append(seen)
        route = self.routes.get((request.method, request.path))
        if route is None:
            return web.json_response({"errorCode": 404000, "trackingId": "t",
                                      "message": f"no route {request.path}"}, status=404)
        result = route(seen)
        if asyncio.iscoroutine(result):
            result = await result
        return result

    def stop(self) -> None:
        if self._loop is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        if not self._loop.is_running():
            self._loop.close()


def reply(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Responder:
    return lambda seen: web.json_response(body, status=status, headers=headers)


def fake_https(directory: Path) -> FakeHttps:
    return FakeHttps(make_tls_files(directory, ["localhost", "127.0.0.1"])).start()
