"""Shared fixtures: real ``opendps serve`` processes (see ``integration/servers.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from integration.servers import ServerProcess, backend_params, start_server


@pytest.fixture(scope="module")
def opendps_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_server(tmp_path_factory.mktemp("opendps"))
    yield server
    server.stop()
    assert server.proc.returncode == 0, server.log()


@pytest.fixture(scope="module", params=backend_params())
def any_backend_server(request: pytest.FixtureRequest,
                       tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The same server on SQLite and on PostgreSQL, for tests that must pass on both."""
    server = start_server(tmp_path_factory.mktemp("opendps"), backend=request.param)
    yield server
    server.stop()
    assert server.proc.returncode == 0, server.log()
