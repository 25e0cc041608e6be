"""The custom allocation webhook's wire contract (``reference/protocol.md`` §6), pure: the
``AllocationRequest`` body DPS POSTs, and what it accepts back. No I/O; ``webhook.py`` sends it.

What DPS hides from the webhook: an enrollment's symmetric keys (its attestation becomes
``{"type": "symmetricKey"}``) and the query of ``customAllocationDefinition.webhookUrl``, which
carries the Azure Functions key (``?code=…``). Azure's own request shows that URL as
``…/HttpTrigger1?*****`` (seed digest 2, item 4f), so the whole query is masked, not only
``code=``: any other query parameter may be a secret too.

How a reply maps to DPS errors (seed digest 3, N-6; issue notes for the unlinked hub):

- 2xx with ``iotHubHostName`` among ``linkedHubs``: assigned to that hub;
- 2xx with ``iotHubHostName`` missing, null or empty: 400208 CustomAllocationIoTHubNotSpecified;
- 2xx with a hub that is not among ``linkedHubs``: 400209 (not linked, not allowed);
- 2xx that is not a JSON object, or has ill-typed members: 400207 CustomAllocationFailed;
- 401: 400209 CustomAllocationUnauthorizedAccess;
- 429 or 5xx: retried (``webhook.RetryPolicy``), then 400207;
- any other status: 400207 CustomAllocationFailed.

The device-visible message for a status is Azure's ``Custom allocation failed with status code:
<status>``; the webhook's own body is not passed to the device (seed digest 2, 8a-8b), only kept
in ``DpsError.info`` for the operator.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..protocol.errors import DpsError, ErrorCode

MASK = "*****"
# how much of a webhook's error body is kept for the operator
EXCERPT_CHARS = 200
ENROLLMENT_MEMBER = {"individual": "individualEnrollment", "group": "enrollmentGroup"}
RUNTIME_ATTESTATIONS = ("symmetricKey", "x509", "tpm")

__all__ = [
    "AllocationRequest",
    "AllocationResult",
    "build_request_body",
    "failed",
    "mask_url",
    "read_allocation_response",
    "redact_enrollment",
    "status_error",
]


def mask_url(url: str) -> str:
    """``url`` without anything secret: the query becomes ``*****``, a password too; the
    fragment is dropped. Safe for logs and for echoing to the webhook."""
    try:
        parts = urlsplit(url)
    except ValueError:
        head, sep, _ = url.partition("?")
        return f"{head}?{MASK}" if sep else head
    netloc = parts.netloc
    userinfo, at, host = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:{MASK}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, MASK if parts.query else "", ""))


def redact_enrollment(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The enrollment as the webhook sees it: the service API's shape without secrets."""
    out = copy.deepcopy(dict(doc))
    attestation = out.get("attestation")
    if isinstance(attestation, dict) and attestation.get("type") == "symmetricKey":
        out["attestation"] = {"type": "symmetricKey"}
    custom = out.get("customAllocationDefinition")
    if isinstance(custom, dict) and isinstance(custom.get("webhookUrl"), str):
        out["customAllocationDefinition"] = dict(custom, webhookUrl=mask_url(custom["webhookUrl"]))
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class AllocationRequest:
    """Everything the engine knows when it asks a webhook for a hub."""

    # may carry ``?code=<function key>``: kept out of repr, logged only through mask_url
    webhook_url: str = field(repr=False)
    enrollment_kind: str  # "individual" | "group"
    # the enrollment as the service API shows it; redact_enrollment() is applied again on send
    enrollment: Mapping[str, Any] = field(repr=False)
    registration_id: str
    # ("symmetricKey", {}) | ("x509", {...}) | ("tpm", {...}): deviceRuntimeContext's member
    attestation: tuple[str, Mapping[str, Any]]
    # host names the enrollment may be assigned to; the webhook must pick one of them
    linked_hubs: Sequence[str]
    payload: Any = None  # the device's registration payload, passed through unchanged
    current_hub: str | None = None  # only on re-provisioning
    current_device_id: str | None = None  # only on re-provisioning

    def __post_init__(self) -> None:
        if self.enrollment_kind not in ENROLLMENT_MEMBER:
            raise ValueError(f"enrollment_kind must be one of {', '.join(ENROLLMENT_MEMBER)}")
        if self.attestation[0] not in RUNTIME_ATTESTATIONS:
            raise ValueError(f"attestation kind must be one of {', '.join(RUNTIME_ATTESTATIONS)}")


@dataclass(frozen=True, slots=True)
class AllocationResult:
    hub: str  # as spelled in linked_hubs
    # {"tags": {...}, "properties": {"desired": {...}}}, or None when the webhook sent none
    initial_twin: dict[str, Any] | None = None
    payload: Any = None  # returned to the device as registrationState.payload


def build_request_body(req: AllocationRequest) -> dict[str, Any]:
    """The JSON object POSTed to the webhook, members in Azure's order."""
    context: dict[str, Any] = {"registrationId": req.registration_id}
    if req.current_hub is not None:
        context["currentIotHubHostName"] = req.current_hub
    if req.current_device_id is not None:
        context["currentDeviceId"] = req.current_device_id
    kind, detail = req.attestation
    # a symmetric key is never sent: Azure shows the mechanism as an empty object
    context[kind] = {} if kind == "symmetricKey" else copy.deepcopy(dict(detail))
    context["payload"] = req.payload
    return {
        ENROLLMENT_MEMBER[req.enrollment_kind]: redact_enrollment(req.enrollment),
        "deviceRuntimeContext": context,
        "linkedHubs": list(req.linked_hubs),
    }


def failed(reason: str, **info: str) -> DpsError:
    return DpsError(ErrorCode.CUSTOM_ALLOCATION_FAILED, f"Custom allocation failed: {reason}",
                    info)


def _excerpt(body: bytes) -> str:
    return body[: EXCERPT_CHARS * 4].decode("utf-8", "replace")[:EXCERPT_CHARS]


def status_error(status: int, body: bytes) -> DpsError:
    """A final non-2xx answer: 401 → 400209, anything else → 400207."""
    code = (ErrorCode.CUSTOM_ALLOCATION_UNAUTHORIZED if status == 401
            else ErrorCode.CUSTOM_ALLOCATION_FAILED)
    return DpsError(code, f"Custom allocation failed with status code: {status}",
                    {"webhookStatus": str(status), "webhookResponse": _excerpt(body)})


def _member(obj: Mapping[str, Any], name: str) -> Any:
    """``obj[name]``, matched case-insensitively (the docs spell ``iotHubHostname`` too)."""
    if name in obj:
        return obj[name]
    wanted = name.lower()
    return next((v for k, v in obj.items() if k.lower() == wanted), None)


def _object(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise failed(f"the webhook's {where} is not a JSON object")
    return value


def _initial_twin(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    twin = _object(value, "initialTwin")
    properties = _object(_member(twin, "properties"), "initialTwin.properties")
    return {
        "tags": _object(_member(twin, "tags"), "initialTwin.tags"),
        "properties": {
            "desired": _object(_member(properties, "desired"), "initialTwin.properties.desired")
        },
    }


def read_allocation_response(body: bytes, linked_hubs: Sequence[str]) -> AllocationResult:
    """A 2xx answer's body → the result, or the DpsError the device will see."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise failed("the webhook's response is not valid JSON",
                     webhookResponse=_excerpt(body)) from None
    if not isinstance(doc, dict):
        raise failed("the webhook's response is not a JSON object",
                     webhookResponse=_excerpt(body))
    hub = _member(doc, "iotHubHostName")
    if hub is None or (isinstance(hub, str) and not hub.strip()):
        raise DpsError(ErrorCode.CUSTOM_ALLOCATION_NO_HUB,
                       "Custom allocation failed: the webhook returned no iotHubHostName")
    if not isinstance(hub, str):
        raise failed("the webhook's iotHubHostName is not a string")
    chosen = next((h for h in linked_hubs if h.lower() == hub.lower()), None)
    if chosen is None:
        raise DpsError(ErrorCode.CUSTOM_ALLOCATION_UNAUTHORIZED,
                       f"Custom allocation failed: the webhook chose IoT hub "
                       f"{hub[:EXCERPT_CHARS]!r}, which is not linked or not allowed for this "
                       f"enrollment")
    return AllocationResult(hub=chosen, initial_twin=_initial_twin(_member(doc, "initialTwin")),
                            payload=_member(doc, "payload"))
