"""One MQTT port serves both roles: the CONNECT username says which (ARCHITECTURE)."""

from __future__ import annotations

from ..hub.builtin import BuiltinHub
from ..protocol import dps_topics, hub_topics
from ..protocol.mqtt import Connect
from ..provisioning.engine import ProvisioningEngine
from .dps_session import DpsSession
from .endpoint import MqttEndpoint
from .hub_session import HubSession
from .session import Session


class SessionRouter:
    def __init__(self, engine: ProvisioningEngine, hubs: dict[str, BuiltinHub]) -> None:
        self.engine = engine
        self.hubs = hubs

    def __call__(self, packet: Connect, endpoint: MqttEndpoint) -> Session | None:
        username = packet.username or ""
        dps = dps_topics.parse_username(username)
        if dps is not None:
            return DpsSession(self.engine, dps, endpoint)
        hub_name = hub_topics.parse_username(username)
        if hub_name is not None:
            hub = self.hubs.get(hub_name.host.lower())
            if hub is not None:
                return HubSession(hub, hub_name, endpoint)
        return None
