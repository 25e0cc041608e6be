"""Our own asyncio device: provision through DPS, then talk to the assigned hub.

The pieces live in ``dps_device`` (registration), ``hub_device`` (telemetry and twin) and
``mqtt_session`` (MQTT over TLS); this module puts them together for the simulator and the
load generator, which need the whole life of a device in one call each. A symmetric-key device
passes its key; an X.509 device puts its ``ClientCertificate`` in the settings and passes none.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..protocol.sas import derive_device_key
from .dps_device import DpsDeviceClient, ProvisioningError, RegistrationResult
from .hub_device import HubDeviceClient, HubRequestError
from .mqtt_session import ConnectionLost, ConnectRefused, MqttError, MqttSession
from .tls import ClientCertificate, ClientCertificateError, client_ssl_context

__all__ = [
    "ClientCertificate",
    "ClientCertificateError",
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
    """Where a device goes, what it trusts and (X.509) what it presents; ``connect_host``
    overrides DNS for every host."""

    dps_host: str
    id_scope: str
    ca_file: str | Path | None = None
    dps_port: int = 8883
    hub_port: int = 8883
    timeout: float = 30.0
    poll_immediately: bool = False
    connect_host: str | None = None
    client_cert: ClientCertificate | None = None

    def ssl_context(self) -> ssl.SSLContext:
        """Raises ClientCertificateError when the certificate files cannot be used."""
        return client_ssl_context(self.ca_file, self.client_cert)


def _check_credentials(settings: DeviceSettings, key: str | None) -> None:
    if key is None and settings.client_cert is None:
        raise ValueError("a symmetric key or a client certificate is needed")


async def provision(settings: DeviceSettings, registration_id: str, key: str | None = None,
                    payload: Any = None) -> RegistrationResult:
    """Register with DPS until assigned; raises ProvisioningError when it fails. ``key`` None
    with ``settings.client_cert``: X.509 attestation (the CN must be ``registration_id``)."""
    _check_credentials(settings, key)
    client = DpsDeviceClient(
        settings.dps_host, settings.id_scope, registration_id, key,
        ssl_context=settings.ssl_context(), port=settings.dps_port,
        timeout=settings.timeout, poll_immediately=settings.poll_immediately,
        connect_host=settings.connect_host)
    return await client.register(payload)


def hub_client_for(settings: DeviceSettings, result: RegistrationResult,
                   key: str | None = None) -> HubDeviceClient:
    """A (not yet connected) hub client for the hub and device id DPS assigned, with the same
    credential the device registered with."""
    _check_credentials(settings, key)
    if not result.assigned_hub or not result.device_id:
        raise ProvisioningError("DPS assigned no hub or no device id", result=result)
    return HubDeviceClient(
        result.assigned_hub, result.device_id, key,
        ssl_context=settings.ssl_context(), port=settings.hub_port,
        timeout=settings.timeout, connect_host=settings.connect_host)
