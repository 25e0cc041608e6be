"""What the DPS engine needs from a hub, built-in or external (ARCHITECTURE: one interface)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """The identity DPS asks a hub to hold for a device."""

    device_id: str
    primary_key: str | None = None
    secondary_key: str | None = None
    iot_edge: bool = False
    # "sas" | "selfSigned" (thumbprints) | "certificateAuthority"
    auth_type: str = "sas"
    thumbprints: tuple[str, ...] = ()
    # no registration record puts the device in this hub: a hub may try creating the
    # identity before reading it (a new device then costs one statement, not two)
    fresh: bool = False


class HubPort(Protocol):
    host_name: str

    async def device_exists(self, device_id: str) -> bool: ...

    async def create_or_update_device(self, spec: DeviceSpec) -> bool:
        """Returns whether the identity existed before (one round trip, not two)."""
        ...

    async def delete_device(self, device_id: str) -> None: ...

    async def get_twin(self, device_id: str) -> dict[str, Any] | None: ...

    async def apply_initial_twin(
        self, device_id: str, tags: dict[str, Any], desired: dict[str, Any]
    ) -> None: ...


class HubDirectory(Protocol):
    """Resolves a linked hub's host name to its port (built-in in process, external by REST)."""

    async def linked(self) -> list[Any]: ...

    def port(self, host_name: str) -> HubPort | None: ...
