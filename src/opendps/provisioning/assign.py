"""Decide and register: the hub a device goes to, and what happens to its data when it moves.

Reprovisioning (concepts-device-reprovision): a device that registers again keeps its hub unless
its enrollment's allocation changed, its hub is no longer linked or allowed, or it asked
(forceRegistration). Then ``reprovisionPolicy`` decides: ``updateHubAssignment: false`` keeps
the hub; otherwise the device is allocated again and its twin either migrates
(``migrateDeviceData``) or is reset to the enrollment's initial twin, and the old identity is
removed from the old hub."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ..protocol import registration as wire
from ..protocol.enrollment import EnrollmentView
from ..protocol.errors import DpsError, ErrorCode
from ..protocol.twin_patch import merge
from .allocation_policy import Allocator, Choice
from .hub_port import HubDirectory, HubPort

INTERNAL = "_opendps"  # bookkeeping inside the stored record, never shown


def allocation_fingerprint(enrollment: EnrollmentView, policy: str) -> str:
    """What, when it changes, makes a registered device move on its next registration."""
    custom = enrollment.doc.get("customAllocationDefinition")
    hubs = tuple(enrollment.iot_hubs)
    if custom is None:  # the usual case: a pure function of two hashables, remembered
        return _plain_fingerprint(policy, hubs)
    return _fingerprint(policy, hubs, custom)


def _fingerprint(policy: str, hubs: tuple[str, ...], custom: Any) -> str:
    relevant = {"policy": policy, "hubs": sorted(h.lower() for h in hubs), "custom": custom}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=1024)
def _plain_fingerprint(policy: str, hubs: tuple[str, ...]) -> str:
    return _fingerprint(policy, hubs, None)


@dataclass(frozen=True, slots=True)
class Outcome:
    hub: str
    device_id: str
    substatus: str
    payload: Any
    internal: dict[str, Any]


def _initial_twin(enrollment: EnrollmentView, choice: Choice) -> tuple[dict, dict] | None:
    twin = choice.initial_twin or enrollment.initial_twin
    if not twin:
        return None
    return twin.get("tags") or {}, (twin.get("properties") or {}).get("desired") or {}


class Assignment:
    def __init__(self, hubs: HubDirectory, allocator: Allocator) -> None:
        self.hubs = hubs
        self.allocator = allocator

    def _port(self, host: str) -> HubPort:
        port = self.hubs.port(host)
        if port is None:
            raise DpsError(ErrorCode.HUB_NOT_LINKED, f"IoT hub {host} is not linked")
        return port

    async def run(self, *, registration_id: str, attested: Any, payload: Any,
                  previous: dict[str, Any] | None, force: bool) -> Outcome:
        enrollment: EnrollmentView = attested.enrollment
        device_id = enrollment.device_id or registration_id
        linked = await self.hubs.linked()
        linked_names = {h.host_name.lower() for h in linked}
        policy = self.allocator.policy(enrollment)
        fingerprint = allocation_fingerprint(enrollment, policy)
        internal_prev = (previous or {}).get(INTERNAL) or {}
        current = previous.get("assignedHub") if previous and previous.get(
            "status") == wire.ASSIGNED else None
        current_device = previous.get("deviceId") if current else None
        history = list(internal_prev.get("hubHistory") or [])

        if current is not None:
            allowed = {h.lower() for h in enrollment.iot_hubs}
            still_fits = current.lower() in linked_names and (
                not allowed or current.lower() in allowed)
            unchanged = internal_prev.get("fingerprint") == fingerprint and still_fits
            # "never re-provision" keeps the device where it is while that hub is linked,
            # even when the enrollment now names other hubs
            keep = (unchanged and not force) or (
                not enrollment.reprovision["updateHubAssignment"]
                and current.lower() in linked_names)
            if keep:
                # idempotent re-registration, or "never re-provision"
                await self._register(current, device_id, attested, None, reset=False)
                substatus = previous.get("substatus") or wire.INITIAL_ASSIGNMENT
                if not unchanged or force:
                    substatus = wire.INITIAL_ASSIGNMENT
                return Outcome(current, device_id, substatus, previous.get("payload"),
                               {"fingerprint": fingerprint, "hubHistory": history})

        choice = await self.allocator.choose(
            enrollment=enrollment, linked=linked, registration_id=registration_id,
            attestation=attested.attestation_block(), payload=payload,
            current_hub=current, current_device_id=current_device)
        hub = choice.hub
        if current is None:
            await self._register(hub, device_id, attested, _initial_twin(enrollment, choice),
                                 reset=False, fresh=previous is None)
            substatus = wire.INITIAL_ASSIGNMENT
        else:
            substatus = await self._move(current, current_device or device_id, hub, device_id,
                                         attested, enrollment, choice)
            if hub.lower() != current.lower() and hub.lower() in {h.lower() for h in history}:
                substatus = wire.REPROVISIONED_TO_INITIAL
        if not history or history[-1].lower() != hub.lower():
            history.append(hub)
        return Outcome(hub, device_id, substatus, choice.payload,
                       {"fingerprint": fingerprint, "hubHistory": history[-10:]})

    async def _register(self, hub: str, device_id: str, attested: Any,
                        twin: tuple[dict, dict] | None, *, reset: bool,
                        fresh: bool = False) -> None:
        port = self._port(hub)
        spec = attested.device_spec(device_id)
        if fresh:
            spec = dataclasses.replace(spec, fresh=True)
        existed = await port.create_or_update_device(spec)
        if twin is not None and (reset or not existed):
            await port.apply_initial_twin(device_id, *twin)

    async def _move(self, old_hub: str, old_device: str, new_hub: str, device_id: str,
                    attested: Any, enrollment: EnrollmentView, choice: Choice) -> str:
        migrate = enrollment.reprovision["migrateDeviceData"]
        initial = _initial_twin(enrollment, choice)
        same = old_hub.lower() == new_hub.lower() and old_device == device_id
        old_port = self.hubs.port(old_hub)
        if migrate:
            data = await old_port.get_twin(old_device) if old_port is not None else None
            twin = None
            if data is not None:
                tags, desired = data.get("tags") or {}, data.get("desired") or {}
                if choice.initial_twin:  # a webhook's twin overrides what migrates
                    tags = merge(tags, choice.initial_twin.get("tags") or {})
                    desired = merge(desired, (choice.initial_twin.get("properties") or {})
                                    .get("desired") or {})
                twin = (tags, desired)
            elif initial is not None:
                twin = initial
            if same:
                await self._register(new_hub, device_id, attested, None, reset=False)
                return wire.INITIAL_ASSIGNMENT
            await self._register(new_hub, device_id, attested, twin, reset=True)
            substatus = wire.DEVICE_DATA_MIGRATED
        else:
            await self._register(new_hub, device_id, attested, initial or ({}, {}), reset=True)
            substatus = wire.DEVICE_DATA_RESET
        if not same and old_port is not None:
            await old_port.delete_device(old_device)
        return substatus
