"""An ``ExternalHub`` pointed at a real second opendps process (one per test module)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from integration.servers import ServerProcess
from opendps.hub.external import ExternalHub

from .registry_raw import hub_connection_string


@pytest.fixture
async def external(opendps_server: ServerProcess) -> AsyncIterator[ExternalHub]:
    hub = ExternalHub(hub_connection_string(opendps_server),
                      ca_file=opendps_server.info["caCertificate"])
    yield hub
    await hub.close()
