"""X.509 device authentication on the hub: a thumbprint for ``selfSigned`` identities, a chain
to a trusted CA for ``certificateAuthority`` ones. The built-in hub trusts the DPS's verified
CA certificates and its enabled enrollment groups' signing certificates."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cryptography import x509

from ..protocol.trust_anchors import ca_anchors, ca_index, group_anchors
from ..protocol.x509.certificates import sha1_thumbprint, sha256_thumbprint
from ..protocol.x509.chain import ChainError, verify_chain
from ..store.interface import Store


class DeviceAuthError(Exception):
    """Maps to CONNACK 5 (not authorized) or 4 (bad credentials)."""

    def __init__(self, message: str, connack: int = 5) -> None:
        super().__init__(message)
        self.connack = connack


async def authenticate_x509(store: Store, device: dict[str, Any], device_id: str,
                            chain: list[x509.Certificate]) -> None:
    auth = device.get("authentication") or {}
    kind = auth.get("type")
    leaf = chain[0]
    now = datetime.now(UTC)
    if kind == "selfSigned":
        thumbs = auth.get("x509Thumbprint") or {}
        wanted = {t.upper() for t in thumbs.values() if t}
        if not wanted & {sha1_thumbprint(leaf), sha256_thumbprint(leaf)}:
            raise DeviceAuthError("the certificate thumbprint does not match the device")
        if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
            raise DeviceAuthError("the device certificate is not valid now")
    elif kind == "certificateAuthority":
        cas = ca_index(await store.list_ca_certificates())
        groups = [(g.key, g.doc) for g in await store.groups_by_attestation("x509")
                  if g.doc.get("provisioningStatus", "enabled") == "enabled"]
        anchors = ca_anchors(cas) + group_anchors(groups, cas)
        try:
            verify_chain(chain, anchors, now=now, registration_id=device_id)
        except ChainError as err:
            raise DeviceAuthError(str(err)) from None
    else:
        raise DeviceAuthError("the device does not use X.509 authentication")
    if device.get("status") == "disabled":
        raise DeviceAuthError("device is disabled")
