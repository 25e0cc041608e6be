"""Service-side SAS: ``sr`` = the service host, ``skn`` = the access policy, and the policy
must hold the right the operation needs (401 otherwise)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable

from ..protocol import sas
from ..protocol.errors import DpsError, ErrorCode
from ..store.interface import AccessPolicy

PolicyLookup = Callable[[str], Awaitable[AccessPolicy | None]]


def _deny(reason: str) -> DpsError:
    return DpsError(ErrorCode.UNAUTHORIZED, f"Unauthorized: {reason}")


async def authorize(header: str | None, *, audiences: Iterable[str], lookup: PolicyLookup,
                    right: str, now: float | None = None) -> AccessPolicy:
    if not header:
        raise _deny("the Authorization header is missing")
    try:
        token = sas.parse(header)
    except sas.SasError as exc:
        raise _deny(str(exc)) from None
    if token.expiry <= int(time.time() if now is None else now):
        raise _deny("the SAS token has expired")
    wanted = {a.lower().rstrip("/") for a in audiences}
    if token.resource.lower().rstrip("/") not in wanted:
        raise _deny("the SAS token is for another resource")
    if not token.key_name:
        raise _deny("the SAS token names no access policy (skn)")
    policy = await lookup(token.key_name)
    keys = [policy.primary_key, policy.secondary_key] if policy else []
    if not sas.signature_matches(token, keys) or policy is None:
        raise _deny("the signature does not match an access policy key")
    if right not in policy.rights:
        raise _deny(f"the access policy lacks the {right} right")
    return policy
