"""Device-side wire shapes: the register request body and the registration results."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import jsontext
from .errors import DpsError, ErrorCode
from .timefmt import format_utc

MAX_REQUEST_BYTES = 96 * 1024  # DPS's documented maximum message size

ASSIGNING = "assigning"
ASSIGNED = "assigned"
FAILED = "failed"
DISABLED = "disabled"

INITIAL_ASSIGNMENT = "initialAssignment"
DEVICE_DATA_MIGRATED = "deviceDataMigrated"
DEVICE_DATA_RESET = "deviceDataReset"
REPROVISIONED_TO_INITIAL = "reprovisionedToInitialAssignment"


def public_state(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored registration record without the service's own bookkeeping (``_`` keys)."""
    return {k: v for k, v in doc.items() if not k.startswith("_")}


def device_state(doc: dict[str, Any]) -> dict[str, Any]:
    """``public_state`` as a device sees it: ``failed`` for a disabled enrollment, never
    ``disabled`` (§8.4)."""
    state = public_state(doc)
    if state.get("status") == DISABLED:
        state["status"] = FAILED
    return state


@dataclass(frozen=True, slots=True)
class DeviceRegistration:
    registration_id: str | None
    payload: Any
    tpm: dict[str, Any] | None


def parse_device_registration(body: bytes) -> DeviceRegistration:
    """Python sends ``"payload": null``; MQTT polls send a single space: both are fine."""
    if len(body) > MAX_REQUEST_BYTES:
        raise DpsError(ErrorCode.PAYLOAD_TOO_LARGE,
                       f"the request body is larger than {MAX_REQUEST_BYTES} bytes")
    if not body.strip():
        return DeviceRegistration(None, None, None)
    try:
        data = jsontext.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise DpsError(ErrorCode.INVALID_JSON, "the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise DpsError(ErrorCode.INVALID_JSON, "the request body must be a JSON object")
    reg_id = data.get("registrationId")
    if reg_id is not None and not isinstance(reg_id, str):
        raise DpsError(ErrorCode.INVALID_REGISTRATION_ID, "registrationId must be a string")
    tpm = data.get("tpm")
    if tpm is not None and not isinstance(tpm, dict):
        raise DpsError(ErrorCode.ARGUMENT_INVALID, "tpm must be an object")
    return DeviceRegistration(reg_id, data.get("payload"), tpm)


def new_etag_value(seed: str) -> str:
    """The service's etag look: base64 of a quoted GUID-like string."""
    return base64.b64encode(f'"{seed}"'.encode()).decode()


def registration_state(
    *,
    registration_id: str,
    status: str,
    created: datetime,
    updated: datetime,
    etag: str,
    assigned_hub: str | None = None,
    device_id: str | None = None,
    substatus: str | None = None,
    error_code: int | None = None,
    error_message: str | None = None,
    payload: Any = None,
    attestation: tuple[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """``DeviceRegistrationResult``; field order as the service sends it. ``attestation`` is
    ("symmetricKey" | "x509", its block), e.g. ("x509", {"certificateInfo": …})."""
    state: dict[str, Any] = {}
    if attestation is not None:
        state[attestation[0]] = attestation[1]
    state["registrationId"] = registration_id
    state["createdDateTimeUtc"] = format_utc(created)
    if assigned_hub is not None:
        state["assignedHub"] = assigned_hub
    if device_id is not None:
        state["deviceId"] = device_id
    state["status"] = status
    if substatus is not None:
        state["substatus"] = substatus
    if error_code is not None:
        state["errorCode"] = error_code
        state["errorMessage"] = error_message or ""
    state["lastUpdatedDateTimeUtc"] = format_utc(updated)
    state["etag"] = etag
    if payload is not None:
        state["payload"] = payload
    return state


def operation_status(operation_id: str, status: str, state: dict[str, Any] | None) -> dict:
    """``RegistrationOperationStatus``. Devices never see ``unassigned``/``disabled`` (§8.4)."""
    body: dict[str, Any] = {"operationId": operation_id, "status": status}
    if state is not None:
        body["registrationState"] = state
    return body
