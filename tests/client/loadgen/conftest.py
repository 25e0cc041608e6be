"""The load generator's clients on both loops it may run on (uvloop is its default, the stdlib
loop its fallback), against the real TLS listener and a real ``opendps serve``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from opendps.client.tls_client_context import TlsClientContext
from transport.loops import both_loops
from transport.pki_files import PkiFiles, make_pki


@pytest.hookimpl(optionalhook=True)
def pytest_asyncio_loop_factories(config: pytest.Config,
                                  item: pytest.Item) -> Mapping[str, Callable[[], object]]:
    return both_loops()


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    """A server certificate for localhost, 127.0.0.1 and ::1; device chains without SANs."""
    return make_pki(tmp_path_factory.mktemp("loadgen-pki"))


@pytest.fixture(scope="session")
def client_tls(pki: PkiFiles) -> TlsClientContext:
    return TlsClientContext(pki.server_ca_file)


@pytest.fixture(scope="session")
def stranger_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA that signed nothing the servers present."""
    from opendps import pki as opendps_pki

    path = tmp_path_factory.mktemp("stranger") / "ca.pem"
    path.write_text(opendps_pki.create_ca("a stranger's CA")[0])
    return path
