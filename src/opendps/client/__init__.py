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

__all__ = [
    "DeviceSettings",
    "DpsDeviceClient",
    "DpsServiceClient",
    "HubDeviceClient",
    "HubServiceClient",
    "ProvisioningError",
    "RegistrationResult",
    "ServiceError",
]
