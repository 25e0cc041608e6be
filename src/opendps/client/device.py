"""Our own asyncio device: provision through DPS, then talk to the assigned hub.

The pieces live in ``dps_device`` (registration), ``hub_device`` (telemetry and twin) and
``mqtt_session`` (MQTT over TLS); this module puts them together for the simulator and the
load generator, which need the whole life of a symmetric-key device in one call each.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..protocol.sas import derive_device_key
from .dps_device import DpsDeviceClient, ProvisioningError, RegistrationResult
from .hub_device import HubDeviceClient, HubRequestError
from .mqtt_session import ConnectionLost, ConnectRefused, MqttError, MqttSession
from .tls import client_ssl_context

__all__ = [
    "ConnectRefused",
    "ConnectionLost",
    "DeviceSettings",
    "DpsDeviceClient",
    "HubDeviceClient",
    "HubRequestError",
    "MqttError",
    "MqttSession",
    "ProvisioningError",
    "RegistrationResult",
    "device_key",
    "hub_client_for",
    "provision",
]


def device_key(registration_id: str, *, key: str | None = None,
               group_key: str | None = None) -> str:
    """The device's own key: given directly, or derived from its enrollment group's key."""
    if key:
        return key
    if group_key:
        return derive_device_key(group_key, registration_id)
    raise ValueError("a device key or an enrollment group key is needed")


@dataclass(frozen=True)
class DeviceSettings:
    """Where a device goes and what it trusts; ``connect_host`` overrides DNS for every host."""

    dps_host: str
    id_scope: str
    ca_file: str | Path | None = None
    dps_port: int = 8883
    hub_port: int = 8883
    timeout: float = 30.0
    poll_immediately: bool = False
    connect_host: str | None = None


async def provision(settings: DeviceSettings, registration_id: str, key: str,
                    payload: Any = None) -> RegistrationResult:
    """Register with DPS until assigned; raises ProvisioningError when it fails."""
    client = DpsDeviceClient(
        settings.dps_host, settings.id_scope, registration_id, key,
        ssl_context=client_ssl_context(settings.ca_file), port=settings.dps_port,
        timeout=settings.timeout, poll_immediately=settings.poll_immediately,
        connect_host=settings.connect_host)
    return await client.register(payload)


def hub_client_for(settings: DeviceSettings, result: RegistrationResult,
                   key: str) -> HubDeviceClient:
    """A (not yet connected) hub client for the hub and device id DPS assigned."""
    if not result.assigned_hub or not result.device_id:
        raise ProvisioningError("DPS assigned no hub or no device id", result=result)
    return HubDeviceClient(
        result.assigned_hub, result.device_id, key,
        ssl_context=client_ssl_context(settings.ca_file), port=settings.hub_port,
        timeout=settings.timeout, connect_host=settings.connect_host)
