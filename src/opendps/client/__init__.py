"""Our own asyncio clients: DPS and hub service REST, and a device over MQTT."""

from ._http import ServiceError
from .device import (
    DeviceSettings,
    DpsDeviceClient,
    HubDeviceClient,
    ProvisioningError,
    RegistrationResult,
)
from .hub_service import HubServiceClient
from .service import DpsServiceClient
from .tls import ClientCertificate, ClientCertificateError

__all__ = [
    "ClientCertificate",
    "ClientCertificateError",
    "DeviceSettings",
    "DpsDeviceClient",
    "DpsServiceClient",
    "HubDeviceClient",
    "HubServiceClient",
    "ProvisioningError",
    "RegistrationResult",
    "ServiceError",
]
