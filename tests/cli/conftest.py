"""CLI fixtures: a scripted HTTPS server and a data directory whose info.json points at it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from .fake_https import FakeHttps, fake_https

DPS_KEY = "ZHBzIHNlcnZpY2Uga2V5IGZvciB0aGUgY2xpIHRlc3Rz"
HUB_KEY = "aHViIHNlcnZpY2Uga2V5IGZvciB0aGUgY2xpIHRlc3Rz"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FakeHttps]:
    fake = fake_https(tmp_path)
    yield fake
    fake.stop()


@pytest.fixture
def data_dir(tmp_path: Path, server: FakeHttps) -> Path:
    """What a running server leaves behind: info.json with real ports and the CA path."""
    directory = tmp_path / "data"
    directory.mkdir()
    info = {
        "idScope": "0ne00000001",
        "deviceEndpoint": "127.0.0.1",
        "caCertificate": str(server.tls.ca),
        "serviceConnectionString": "HostName=127.0.0.1;SharedAccessKeyName="
                                   f"provisioningserviceowner;SharedAccessKey={DPS_KEY}",
        "ports": {"https": server.port, "mqtt": 8883},
        "hubs": [{"hostName": "127.0.0.1", "builtIn": True,
                  "connectionString": "HostName=127.0.0.1;SharedAccessKeyName=iothubowner;"
                                      f"SharedAccessKey={HUB_KEY}"}],
    }
    (directory / "info.json").write_text(json.dumps(info))
    return directory
