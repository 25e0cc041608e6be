"""Enrollment documents: validation of the service API's JSON and typed views for the engine.

The stored document is the normalised wire JSON without read-only fields (etag, timestamps,
registrationState); those are added on the way out by ``render``.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from typing import Any

from .enrollment_x509 import validate_x509
from .errors import DpsError, ErrorCode
from .regid import is_valid_device_id, is_valid_registration_id

ATTESTATION_TYPES = ("symmetricKey", "x509", "tpm", "none")
ALLOCATION_POLICIES = ("hashed", "geoLatency", "static", "custom")
READ_ONLY = ("etag", "createdDateTimeUtc", "lastUpdatedDateTimeUtc", "registrationState")
MAX_ID = 128


def _bad(message: str) -> DpsError:
    return DpsError(ErrorCode.ARGUMENT_INVALID, message)


def new_key() -> str:
    """A 64-byte random key, base64, as DPS generates."""
    return base64.b64encode(os.urandom(64)).decode()


def _check_key(name: str, key: Any) -> str:
    if not isinstance(key, str):
        raise _bad(f"symmetricKey.{name} must be a base64 string")
    try:
        raw = base64.b64decode(key, validate=True)
    except ValueError:
        raise _bad(f"symmetricKey.{name} is not valid base64") from None
    if not 16 <= len(raw) <= 64:
        raise _bad(f"symmetricKey.{name} must decode to between 16 and 64 bytes")
    return key


def _attestation(value: Any, enrollment_kind: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad("attestation is required and must be an object")
    kind = value.get("type")
    if kind not in ATTESTATION_TYPES:
        raise _bad(f"attestation.type must be one of {', '.join(ATTESTATION_TYPES)}")
    out: dict[str, Any] = {"type": kind}
    if kind == "symmetricKey":
        keys = value.get("symmetricKey") or {}
        if not isinstance(keys, dict):
            raise _bad("attestation.symmetricKey must be an object")
        primary = keys.get("primaryKey") or new_key()
        secondary = keys.get("secondaryKey") or new_key()
        out["symmetricKey"] = {
            "primaryKey": _check_key("primaryKey", primary),
            "secondaryKey": _check_key("secondaryKey", secondary),
        }
    elif kind == "x509":
        out["x509"] = validate_x509(value.get("x509"), enrollment_kind)
    elif kind == "tpm":
        body = value.get(kind)
        if not isinstance(body, dict) or not isinstance(body.get("endorsementKey"), str):
            raise _bad("attestation.tpm.endorsementKey is required")
        out[kind] = body
    return out


def _twin_collection(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _bad(f"{where} must be an object")
    return value


def _initial_twin(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _bad("initialTwin must be an object")
    props = value.get("properties") or {}
    if not isinstance(props, dict):
        raise _bad("initialTwin.properties must be an object")
    return {
        "tags": _twin_collection(value.get("tags"), "initialTwin.tags"),
        "properties": {
            "desired": _twin_collection(props.get("desired"), "initialTwin.properties.desired")
        },
    }


def _common(body: dict[str, Any], out: dict[str, Any], kind: str) -> None:
    out["attestation"] = _attestation(body.get("attestation"), kind)
    caps = body.get("capabilities") or {}
    if not isinstance(caps, dict) or not isinstance(caps.get("iotEdge", False), bool):
        raise _bad("capabilities.iotEdge must be a boolean")
    out["capabilities"] = {"iotEdge": bool(caps.get("iotEdge", False))}
    status = body.get("provisioningStatus") or "enabled"
    if status not in ("enabled", "disabled"):
        raise _bad("provisioningStatus must be 'enabled' or 'disabled'")
    out["provisioningStatus"] = status
    policy = body.get("reprovisionPolicy")
    if policy is not None:
        if not isinstance(policy, dict):
            raise _bad("reprovisionPolicy must be an object")
        for name in ("updateHubAssignment", "migrateDeviceData"):
            if not isinstance(policy.get(name, True), bool):
                raise _bad(f"reprovisionPolicy.{name} must be a boolean")
        out["reprovisionPolicy"] = {
            "updateHubAssignment": policy.get("updateHubAssignment", True),
            "migrateDeviceData": policy.get("migrateDeviceData", True),
        }
    else:
        out["reprovisionPolicy"] = {"updateHubAssignment": True, "migrateDeviceData": True}
    alloc = body.get("allocationPolicy")
    if alloc is not None:
        if alloc not in ALLOCATION_POLICIES:
            raise _bad(f"allocationPolicy must be one of {', '.join(ALLOCATION_POLICIES)}")
        out["allocationPolicy"] = alloc
    hubs = body.get("iotHubs")
    if hubs is not None:
        if not isinstance(hubs, list) or not all(isinstance(h, str) and h for h in hubs):
            raise _bad("iotHubs must be a list of hub host names")
        out["iotHubs"] = hubs
    host = body.get("iotHubHostName")
    if host is not None:
        if not isinstance(host, str):
            raise _bad("iotHubHostName must be a string")
        out["iotHubHostName"] = host
    twin = _initial_twin(body.get("initialTwin"))
    if twin is not None:
        out["initialTwin"] = twin
    custom = body.get("customAllocationDefinition")
    if custom is not None:
        if not isinstance(custom, dict) or not isinstance(custom.get("webhookUrl"), str):
            raise _bad("customAllocationDefinition.webhookUrl is required")
        out["customAllocationDefinition"] = {
            "webhookUrl": custom["webhookUrl"],
            "apiVersion": str(custom.get("apiVersion") or "2021-10-01"),
        }
    if out.get("allocationPolicy") == "custom" and "customAllocationDefinition" not in out:
        raise _bad("allocationPolicy 'custom' needs customAllocationDefinition")


def validate_individual(body: Any, path_id: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _bad("the request body must be a JSON object")
    reg_id = body.get("registrationId", path_id)
    if not isinstance(reg_id, str) or reg_id.lower() != path_id.lower():
        raise _bad("registrationId in the body does not match the one in the path")
    if not is_valid_registration_id(path_id):
        raise DpsError(ErrorCode.INVALID_REGISTRATION_ID,
                       "registrationId must be at most 128 alphanumerics or ': . _ -', "
                       "not starting or ending with a special character")
    out: dict[str, Any] = {"registrationId": reg_id}
    device_id = body.get("deviceId")
    if device_id is not None:
        if not isinstance(device_id, str) or not is_valid_device_id(device_id):
            raise _bad("deviceId is not a valid IoT Hub device ID")
        out["deviceId"] = device_id
    info = body.get("optionalDeviceInformation")
    if info is not None:
        out["optionalDeviceInformation"] = _twin_collection(info, "optionalDeviceInformation")
    _common(body, out, "individual")
    return out


def validate_group(body: Any, path_id: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _bad("the request body must be a JSON object")
    group_id = body.get("enrollmentGroupId", path_id)
    if not isinstance(group_id, str) or group_id.lower() != path_id.lower():
        raise _bad("enrollmentGroupId in the body does not match the one in the path")
    if not is_valid_registration_id(path_id):
        raise _bad("enrollmentGroupId must be at most 128 alphanumerics or ': . _ -', "
                   "not starting or ending with a special character")
    if (body.get("attestation") or {}).get("type") in ("tpm",):
        raise _bad("enrollment groups do not support TPM attestation")
    out: dict[str, Any] = {"enrollmentGroupId": group_id}
    _common(body, out, "group")
    return out


def strip_secrets(doc: dict[str, Any]) -> dict[str, Any]:
    """What GET and query show: keys only through the attestation-mechanism call."""
    out = dict(doc)
    att = dict(out.get("attestation") or {})
    if att.get("type") == "symmetricKey":
        att["symmetricKey"] = {}
    out["attestation"] = att
    return out


@dataclass(frozen=True, slots=True)
class EnrollmentView:
    """What the engine reads from an enrollment document."""

    kind: str  # "individual" | "group"
    id: str
    doc: dict[str, Any]
    etag: str

    @property
    def enabled(self) -> bool:
        return self.doc.get("provisioningStatus", "enabled") == "enabled"

    @property
    def attestation_type(self) -> str:
        return self.doc["attestation"]["type"]

    def symmetric_keys(self) -> list[str]:
        keys = self.doc["attestation"].get("symmetricKey") or {}
        return [k for k in (keys.get("primaryKey"), keys.get("secondaryKey")) if k]

    def x509(self) -> dict[str, Any]:
        return self.doc["attestation"].get("x509") or {}

    def x509_certificates(self) -> list[str]:
        """PEM of the enrollment's own certificates (client or signing), primary first."""
        x = self.x509()
        own = x.get("clientCertificates") or x.get("signingCertificates") or {}
        return [own[s]["certificate"] for s in ("primary", "secondary") if s in own]

    def ca_references(self) -> list[str]:
        refs = self.x509().get("caReferences") or {}
        return [refs[s] for s in ("primary", "secondary") if refs.get(s)]

    @property
    def device_id(self) -> str | None:
        return self.doc.get("deviceId")

    @property
    def iot_edge(self) -> bool:
        return bool((self.doc.get("capabilities") or {}).get("iotEdge", False))

    @property
    def initial_twin(self) -> dict[str, Any] | None:
        return self.doc.get("initialTwin")

    @property
    def allocation_policy(self) -> str | None:
        return self.doc.get("allocationPolicy")

    @property
    def iot_hubs(self) -> list[str]:
        hubs = list(self.doc.get("iotHubs") or [])
        if not hubs and self.doc.get("iotHubHostName"):
            hubs = [self.doc["iotHubHostName"]]
        return hubs

    @property
    def reprovision(self) -> dict[str, bool]:
        return self.doc.get("reprovisionPolicy") or {
            "updateHubAssignment": True, "migrateDeviceData": True}
