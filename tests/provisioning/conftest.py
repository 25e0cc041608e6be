"""Real aiohttp servers on 127.0.0.1, port 0, for the webhook client tests."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from aiohttp import web


@asynccontextmanager
async def serve(app: web.Application,
                ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    """Serve ``app`` on a free loopback port; yield its base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = runner.addresses[0][1]
    scheme = "https" if ssl_context else "http"
    try:
        yield f"{scheme}://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


class Recorder:
    """A webhook whose answers are scripted; it keeps every request it was sent."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.answers: list[Callable[[], Awaitable[web.StreamResponse]]] = []

    def then(self, status: int = 200, *, json: object = None, text: str | None = None,
             body: bytes | None = None, delay: float = 0.0) -> Recorder:
        async def answer() -> web.StreamResponse:
            if delay:
                await asyncio.sleep(delay)
            if body is not None:
                return web.Response(status=status, body=body, content_type="application/json")
            if text is not None:
                return web.Response(status=status, text=text)
            return web.json_response(json, status=status)
        self.answers.append(answer)
        return self

    def app(self) -> web.Application:
        async def handle(request: web.Request) -> web.StreamResponse:
            self.requests.append((request.method, request.path_qs, dict(request.headers),
                                  await request.read()))
            answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
            return await answer()

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        return app


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def webhook(recorder: Recorder) -> AsyncIterator[str]:
    async with serve(recorder.app()) as base:
        yield base
