"""Attestation: prove who the device is and find the enrollment that admits it.

An unknown device, a wrong key and a key for another enrollment all get the same 401 with the
same message, so a caller learns nothing about which enrollments exist.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..protocol import sas
from ..protocol.enrollment import EnrollmentView
from ..protocol.errors import DpsError, ErrorCode
from ..protocol.regid import registration_key
from ..store.interface import Store
from .hub_port import DeviceSpec

UNAUTHORIZED = DpsError(ErrorCode.UNAUTHORIZED, "Unauthorized")


@dataclass(frozen=True, slots=True)
class Attested:
    enrollment: EnrollmentView
    # the keys the hub identity gets: the enrollment's own, or derived from the group's
    device_keys: tuple[str, str]

    @property
    def group_id(self) -> str | None:
        return self.enrollment.id if self.enrollment.kind == "group" else None

    def device_spec(self, device_id: str) -> DeviceSpec:
        return DeviceSpec(device_id, self.device_keys[0], self.device_keys[1],
                          self.enrollment.iot_edge)

    def attestation_block(self) -> tuple[str, dict]:
        group = self.group_id
        return "symmetricKey", ({"enrollmentGroupId": group} if group else {})


def sas_resource(id_scope: str, registration_id: str) -> str:
    return f"{id_scope}/registrations/{registration_id}"


async def attest_symmetric_key(
    store: Store, *, id_scope: str, registration_id: str, token_text: str | None, now: float
) -> Attested:
    if not token_text:
        raise UNAUTHORIZED
    try:
        token = sas.parse(token_text)
        sas.check_claims(token, sas_resource(id_scope, registration_id), now)
    except sas.SasError as exc:
        raise DpsError(ErrorCode.UNAUTHORIZED, f"Unauthorized: {exc}") from None

    # An individual enrollment for this ID decides alone, whatever a group would say.
    stored = await store.get_enrollment("individual", registration_key(registration_id))
    individual = (EnrollmentView("individual", stored.key, stored.doc, stored.etag)
                  if stored is not None else None)
    if individual is not None and individual.attestation_type == "symmetricKey":
        keys = individual.symmetric_keys()
        if sas.signature_matches(token, keys):
            return Attested(individual, (keys[0], keys[1]))
        if individual.enabled:
            raise UNAUTHORIZED

    group = await _group_for(store, token, registration_id)
    if group is None:
        raise UNAUTHORIZED
    if individual is not None:
        # a genuine group device that an individual enrollment blocklists (any attestation
        # type): the disabled individual entry decides, so the device learns it is disabled
        if individual.enabled:
            raise UNAUTHORIZED
        return Attested(individual, group.device_keys)
    return group


async def _group_for(store: Store, token: sas.SasToken, registration_id: str) -> Attested | None:
    for group in await store.groups_by_attestation("symmetricKey"):
        view = EnrollmentView("group", group.key, group.doc, group.etag)
        derived = [sas.derive_device_key(k, registration_id) for k in view.symmetric_keys()]
        if sas.signature_matches(token, derived):
            return Attested(view, (derived[0], derived[1]))
    return None
