"""What the HTTP applications are given by the composition root."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from ..hub.builtin import BuiltinHub
from ..hub.bus import EventBus
from ..hub.connections import ConnectionTable
from ..provisioning.engine import ProvisioningEngine
from ..store.interface import Store

WebSocketHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class ApiContext:
    engine: ProvisioningEngine
    store: Store
    hubs: dict[str, BuiltinHub]  # lower-cased host name -> hub
    dps_host: str
    bus: EventBus
    connections: ConnectionTable
    websocket: WebSocketHandler | None = None
    max_ca_certificates: int = 25
    max_linked_hubs: int = 50
    external_hub_ca_file: str | None = None
    # called after the linked hubs changed: the server starts or stops built-in hubs and
    # re-issues its certificate when a new host name needs a SAN
    hubs_changed: Callable[[], Awaitable[None]] | None = None

    def hub(self, host: str) -> BuiltinHub | None:
        return self.hubs.get(host.lower())


CONTEXT = web.AppKey("opendps_context", ApiContext)
