"""Fixtures for the client tests: throwaway TLS material and a scripted MQTT server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from .fake_mqtt import FakeMqttServer, TlsFiles, make_tls_files


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(Path(tmp_path_factory.mktemp("tls")), ["localhost", "127.0.0.1"])


@pytest.fixture
async def mqtt_server(tls_files: TlsFiles) -> AsyncIterator[Callable[..., FakeMqttServer]]:
    started: list[FakeMqttServer] = []

    async def start(**kwargs: object) -> FakeMqttServer:
        server = await FakeMqttServer(tls_files, **kwargs).start()  # type: ignore[arg-type]
        started.append(server)
        return server

    yield start  # type: ignore[misc]
    for server in started:
        await server.stop()
