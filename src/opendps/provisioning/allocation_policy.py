"""Which hub: the allocation policies of DPS (hashed, geoLatency, static, custom) behind one
call, restricted to the enrollment's ``iotHubs`` when it names any."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..protocol.enrollment import EnrollmentView, strip_secrets
from ..protocol.errors import DpsError, ErrorCode
from .allocate import Candidate, choose_hub
from .geo import DEFAULT_LATENCY_TABLE, LatencyTable, LocatedHub, choose_lowest_latency
from .webhook import AllocationRequest, AllocationResult, WebhookAllocator


@dataclass(frozen=True, slots=True)
class Choice:
    hub: str
    initial_twin: dict[str, Any] | None = None  # from a custom allocation webhook
    payload: Any = None  # from a custom allocation webhook, returned to the device


@dataclass
class AllocationSettings:
    default_policy: str = "hashed"
    location: str = ""  # this instance's location, for geoLatency
    latency_table: LatencyTable = DEFAULT_LATENCY_TABLE


class Allocator:
    def __init__(self, settings: AllocationSettings, webhook: WebhookAllocator | None) -> None:
        self.settings = settings
        self.webhook = webhook

    def policy(self, enrollment: EnrollmentView) -> str:
        return enrollment.allocation_policy or self.settings.default_policy

    async def choose(self, *, enrollment: EnrollmentView, linked: list[Any],
                     registration_id: str, attestation: tuple[str, dict[str, Any]],
                     payload: Any, current_hub: str | None,
                     current_device_id: str | None) -> Choice:
        allowed = enrollment.iot_hubs
        by_name = {h.host_name.lower(): h for h in linked}
        if allowed:
            missing = [h for h in allowed if h.lower() not in by_name]
            pool = [by_name[h.lower()] for h in allowed if h.lower() in by_name]
            if not pool:
                raise DpsError(ErrorCode.HUB_NOT_LINKED,
                               f"IoT hub {missing[0]} named by the enrollment is not linked")
        else:
            pool = list(linked)
        if not pool:
            raise DpsError(ErrorCode.HUB_NOT_LINKED, "no IoT hub is linked to this service")
        policy = self.policy(enrollment)
        if policy == "custom":
            return await self._custom(enrollment, pool, registration_id, attestation, payload,
                                      current_hub, current_device_id)
        if policy == "static" or (allowed and len(pool) == 1):
            return Choice(pool[0].host_name)
        if policy == "geoLatency":
            located = [LocatedHub.of(h) for h in pool]
            if allowed:  # hubs an enrollment names explicitly all take part
                located = [LocatedHub(h.host_name, h.location, h.weight, True) for h in located]
            return Choice(choose_lowest_latency(self.settings.location, located,
                                                registration_id, self.settings.latency_table))
        candidates = [Candidate(h.host_name, h.allocation_weight,
                                True if allowed else h.apply_allocation_policy) for h in pool]
        return Choice(choose_hub(registration_id, candidates))

    async def _custom(self, enrollment: EnrollmentView, pool: list[Any], registration_id: str,
                      attestation: tuple[str, dict[str, Any]], payload: Any,
                      current_hub: str | None, current_device_id: str | None) -> Choice:
        definition = enrollment.doc.get("customAllocationDefinition") or {}
        if self.webhook is None or not definition.get("webhookUrl"):
            raise DpsError(ErrorCode.CUSTOM_ALLOCATION_FAILED,
                           "custom allocation needs customAllocationDefinition.webhookUrl")
        shown = strip_secrets(enrollment.doc)
        shown["etag"] = f'"{enrollment.etag}"'
        result: AllocationResult = await self.webhook.allocate(AllocationRequest(
            webhook_url=definition["webhookUrl"], enrollment_kind=enrollment.kind,
            enrollment=shown, registration_id=registration_id,
            attestation=(attestation[0], {}) if attestation[0] == "symmetricKey"
            else attestation,
            linked_hubs=[h.host_name for h in pool], payload=payload,
            current_hub=current_hub, current_device_id=current_device_id))
        return Choice(result.hub, result.initial_twin, result.payload)
