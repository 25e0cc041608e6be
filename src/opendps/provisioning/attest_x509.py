"""X.509 attestation. The TLS handshake proved the device holds the leaf's key; here the chain
is judged. Order (seed digests 3 and 4): an individual enrollment for the leaf's CN decides
first (a disabled one blocks the device whatever its attestation type, once the device has
shown a certificate that would otherwise be accepted); then the most specific group along the
chain. Failures are 401002 with a message naming the device's own failing certificate, never
another enrollment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509

from ..protocol.enrollment import EnrollmentView
from ..protocol.errors import DpsError, ErrorCode
from ..protocol.regid import registration_key
from ..protocol.timefmt import format_utc
from ..protocol.trust_anchors import GROUP_PREFIX, ca_anchors, ca_index, group_anchors
from ..protocol.x509.certificates import (
    certificate_info,
    common_name,
    load_certificate,
    sha1_thumbprint,
    sha256_thumbprint,
    subject_name,
)
from ..protocol.x509.chain import ChainError, VerifiedChain, verify_chain
from ..store.interface import Store
from .hub_port import DeviceSpec


def _deny(message: str) -> DpsError:
    return DpsError(ErrorCode.UNAUTHORIZED, message)


@dataclass(frozen=True, slots=True)
class X509Attested:
    enrollment: EnrollmentView
    leaf: x509.Certificate
    signing: x509.Certificate | None  # the anchor for chain-verified devices
    # how the hub will know the device: ("selfSigned", (thumb1, thumb2)) or
    # ("certificateAuthority", ())
    hub_auth: tuple[str, tuple[str, ...]]

    @property
    def group_id(self) -> str | None:
        return self.enrollment.id if self.enrollment.kind == "group" else None

    def attestation_block(self) -> tuple[str, dict[str, Any]]:
        block: dict[str, Any] = {"certificateInfo": certificate_info(self.leaf)}
        if self.group_id:
            block["enrollmentGroupId"] = self.group_id
        if self.signing is not None:
            block["signingCertificateInfo"] = certificate_info(self.signing)
        return "x509", block

    def device_spec(self, device_id: str) -> DeviceSpec:
        kind, thumbprints = self.hub_auth
        return DeviceSpec(device_id, iot_edge=self.enrollment.iot_edge, auth_type=kind,
                          thumbprints=thumbprints)


async def _cas(store: Store) -> dict[str, dict[str, Any]]:
    return ca_index(await store.list_ca_certificates())


def _valid_now(cert: x509.Certificate, now: datetime) -> None:
    subject = subject_name(cert)
    if now < cert.not_valid_before_utc:
        raise _deny(f"certificate '{subject}' is not valid before "
                    f"{format_utc(cert.not_valid_before_utc)}")
    if now > cert.not_valid_after_utc:
        raise _deny(f"certificate '{subject}' expired at {format_utc(cert.not_valid_after_utc)}")


def _thumbprint_match(view: EnrollmentView, leaf: x509.Certificate) -> bool:
    wanted = {sha1_thumbprint(leaf), sha256_thumbprint(leaf)}
    own = view.x509().get("clientCertificates") or {}
    for slot in ("primary", "secondary"):
        info = (own.get(slot) or {}).get("info") or {}
        if wanted & {info.get("sha1Thumbprint"), info.get("sha256Thumbprint")}:
            return True
    return False


async def attest_x509(store: Store, *, registration_id: str, chain: list[x509.Certificate],
                      now: datetime) -> X509Attested:
    if not chain:
        raise _deny("Unauthorized: no SAS token and no client certificate were presented")
    leaf = chain[0]
    cn = common_name(leaf)
    if cn is None or cn.lower() != registration_id.lower():
        # let the chain module word it (no CN, too long, mismatch) without any lookup
        try:
            verify_chain(chain, [], now=now, registration_id=registration_id)
        except ChainError as err:
            raise _deny(str(err)) from None
        raise _deny("the certificate's common name does not match the registration ID")

    stored = await store.get_enrollment("individual", registration_key(registration_id))
    individual = EnrollmentView("individual", stored.key, stored.doc, stored.etag) if stored \
        else None
    if individual is not None and individual.attestation_type == "x509":
        if _thumbprint_match(individual, leaf):
            _valid_now(leaf, now)
            if not individual.enabled:
                raise _deny(f"certificate '{subject_name(leaf)}' is revoked by a "
                            "disabled enrollment")
            thumbs = tuple(sha1_thumbprint(load_certificate(p))
                           for p in individual.x509_certificates())
            return X509Attested(individual, leaf, None, ("selfSigned", thumbs))
        refs = individual.ca_references()
        if refs:
            verified = _verify(chain, ca_anchors(await _cas(store), refs), now,
                               registration_id)
            if not individual.enabled:
                raise _deny(f"certificate '{subject_name(leaf)}' is revoked by a "
                            "disabled enrollment")
            return X509Attested(individual, leaf, verified.anchor.certificate,
                                ("certificateAuthority", ()))

    groups = [(g.key, g.doc) for g in await store.groups_by_attestation("x509")]
    verified = _verify(chain, group_anchors(groups, await _cas(store)), now, registration_id)
    group_id = verified.anchor.key[len(GROUP_PREFIX):]
    if individual is not None:
        # the device is genuine (its chain verifies), so it may learn why it is refused
        reason = "disabled" if not individual.enabled else "different"
        raise _deny(f"certificate '{subject_name(leaf)}' is revoked by a {reason} "
                    "individual enrollment for this registration ID")
    group = await store.get_enrollment("group", registration_key(group_id))
    if group is None:
        raise _deny("Unauthorized")  # deleted between the two reads
    view = EnrollmentView("group", group.key, group.doc, group.etag)
    if not view.enabled:
        raise _deny(f"certificate '{subject_name(verified.anchor.certificate)}' "
                    "is revoked by a disabled enrollment group")
    return X509Attested(view, leaf, verified.anchor.certificate, ("certificateAuthority", ()))


def _verify(chain: list[x509.Certificate], anchors: list, now: datetime,
            registration_id: str) -> VerifiedChain:
    try:
        return verify_chain(chain, anchors, now=now, registration_id=registration_id)
    except ChainError as err:
        raise _deny(str(err)) from None
