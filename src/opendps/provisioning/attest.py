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


@dataclass(frozen=True, slots=True)
class _Proof:
    """What one verified token proved, and the enrollment versions it was proved against."""

    attested: Attested
    expiry: int  # the token's ``se``
    individual_etag: str | None  # the individual enrollment consulted (None: there was none)
    group: tuple[str, str] | None  # (group ID, etag) whose derived key signed, if a group's


class AttestationMemo:
    """Tokens that verified recently, so the same device's next request with the very same
    token (the poll after a register; an MQTT register after its CONNECT) skips the HMACs and
    the token parsing. A hit still reads the enrollments (from the read cache) and must find
    the same versions, so a changed or removed enrollment, or a new individual enrollment that
    now decides, is seen as before. Only successes are kept: a wrong token always pays the full
    check, and a token is a bearer credential either way, so remembering one that verified
    grants nothing its holder did not have."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._proofs: dict[tuple[str, str], _Proof] = {}

    def get(self, registration_id: str, token_text: str) -> _Proof | None:
        return self._proofs.get((registration_id.lower(), token_text))

    def put(self, registration_id: str, token_text: str, proof: _Proof) -> None:
        proofs = self._proofs
        if len(proofs) >= self._size:
            del proofs[next(iter(proofs))]  # the oldest
        proofs[(registration_id.lower(), token_text)] = proof


async def attest_symmetric_key(
    store: Store, *, id_scope: str, registration_id: str, token_text: str | None, now: float,
    memo: AttestationMemo | None = None,
) -> Attested:
    if not token_text:
        raise UNAUTHORIZED
    if memo is not None:
        proof = memo.get(registration_id, token_text)
        if proof is not None and proof.expiry > int(now) and await _still_holds(
                store, registration_id, proof):
            return proof.attested
    try:
        token = sas.parse(token_text)
        sas.check_claims(token, sas_resource(id_scope, registration_id), now)
    except sas.SasError as exc:
        raise DpsError(ErrorCode.UNAUTHORIZED, f"Unauthorized: {exc}") from None

    # An individual enrollment for this ID decides alone, whatever a group would say.
    stored = await store.get_enrollment("individual", registration_key(registration_id))
    individual = (EnrollmentView("individual", stored.key, stored.doc, stored.etag)
                  if stored is not None else None)
    ind_etag = stored.etag if stored is not None else None
    if individual is not None and individual.attestation_type == "symmetricKey":
        keys = individual.symmetric_keys()
        if sas.signature_matches(token, keys):
            attested = Attested(individual, (keys[0], keys[1]))
            _remember(memo, registration_id, token_text, token, attested, ind_etag, None)
            return attested
        if individual.enabled:
            raise UNAUTHORIZED

    found = await _group_for(store, token, registration_id)
    if found is None:
        raise UNAUTHORIZED
    group, group_etag = found
    if individual is not None:
        # a genuine group device that an individual enrollment blocklists (any attestation
        # type): the disabled individual entry decides, so the device learns it is disabled
        if individual.enabled:
            raise UNAUTHORIZED
        attested = Attested(individual, group.device_keys)
    else:
        attested = group
    _remember(memo, registration_id, token_text, token, attested, ind_etag,
              (group.enrollment.id, group_etag))
    return attested


def _remember(memo: AttestationMemo | None, registration_id: str, token_text: str,
              token: sas.SasToken, attested: Attested, individual_etag: str | None,
              group: tuple[str, str] | None) -> None:
    if memo is not None:
        memo.put(registration_id, token_text,
                 _Proof(attested, token.expiry, individual_etag, group))


async def _still_holds(store: Store, registration_id: str, proof: _Proof) -> bool:
    """The enrollments the proof rests on are unchanged (etags), and none was added."""
    stored = await store.get_enrollment("individual", registration_key(registration_id))
    if (stored.etag if stored is not None else None) != proof.individual_etag:
        return False
    if proof.group is None:
        return True
    group_id, etag = proof.group
    return any(g.key == group_id and g.etag == etag
               for g in await store.groups_by_attestation("symmetricKey"))


async def _group_for(store: Store, token: sas.SasToken, registration_id: str
                     ) -> tuple[Attested, str] | None:
    for group in await store.groups_by_attestation("symmetricKey"):
        view = EnrollmentView("group", group.key, group.doc, group.etag)
        derived = [sas.derive_device_key(k, registration_id) for k in view.symmetric_keys()]
        if sas.signature_matches(token, derived):
            return Attested(view, (derived[0], derived[1])), group.etag
    return None
