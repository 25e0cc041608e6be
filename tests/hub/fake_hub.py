"""A scripted HTTPS hub in the test's own loop: answers that a healthy opendps never gives
(503, 412, silence, errors echoing the token), with every request recorded."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from opendps import pki

KEY = "ZmFrZSBodWIgcG9saWN5IGtleSBmb3IgdGVzdHM="
HOST = "127.0.0.1"
SLOW = -1  # a scripted status meaning "never answer"


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeHub:
    port: int
    ca: str
    # (method, path) -> answers given in order; the last one repeats
    script: dict[tuple[str, str], list[tuple[int, Any]]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)

    @property
    def connection_string(self) -> str:
        return f"HostName={HOST};SharedAccessKeyName=iothubowner;SharedAccessKey={KEY}"

    def calls(self, method: str, path: str) -> int:
        return sum(1 for s in self.seen if (s.method, s.path) == (method, path))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        text = await request.text()
        self.seen.append(Seen(request.method, request.path, dict(request.query),
                              dict(request.headers), json.loads(text) if text else None))
        answers = self.script.get((request.method, request.path)) or [(404, None)]
        status, body = answers.pop(0) if len(answers) > 1 else answers[0]
        if status == SLOW:
            await asyncio.sleep(30)
        if callable(body):
            body = body(request)
        if body is None:
            return web.Response(status=status)
        return web.json_response(body, status=status)


def _tls(tmp: Path) -> tuple[Path, ssl.SSLContext]:
    """A throwaway CA and a server certificate for 127.0.0.1."""
    ca_cert, ca_key = pki.create_ca("external hub test CA")
    cert, key = pki.create_server_cert(ca_cert, ca_key, [HOST])
    ca, cert_file, key_file = tmp / "fake-ca.pem", tmp / "fake-hub.pem", tmp / "fake-hub.key"
    ca.write_text(ca_cert)
    cert_file.write_text(cert + ca_cert)
    key_file.write_text(key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return ca, context


@asynccontextmanager
async def fake_hub(tmp: Path) -> AsyncIterator[FakeHub]:
    ca, context = _tls(tmp)
    hub = FakeHub(port=0, ca=str(ca))
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hub.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0, ssl_context=context)
    await site.start()
    hub.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield hub
    finally:
        await runner.cleanup()
