"""DPS errors and their wire body (``ProvisioningServiceErrorDetails``).

A six-digit ``errorCode`` whose first three digits are the HTTP status, as the real service and
the embedded C SDK (``errorCode / 1000``) expect.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum

from . import jsontext
from .ids import guid
from .timefmt import format_utc, utc_now


class ErrorCode(IntEnum):
    BAD_REQUEST = 400000
    INVALID_JSON = 400001
    INVALID_REGISTRATION_ID = 400002
    INVALID_API_VERSION = 400003
    ARGUMENT_INVALID = 400004
    REGISTRATION_ID_MISMATCH = 400005
    INVALID_OPERATION_ID = 400006
    CUSTOM_ALLOCATION_FAILED = 400207
    CUSTOM_ALLOCATION_NO_HUB = 400208
    CUSTOM_ALLOCATION_UNAUTHORIZED = 400209
    HUB_NOT_LINKED = 400210
    UNAUTHORIZED = 401002
    DEVICE_DISABLED = 403001
    NOT_FOUND = 404000
    REGISTRATION_NOT_FOUND = 404201
    OPERATION_NOT_FOUND = 404202
    ENROLLMENT_NOT_FOUND = 404203
    ENROLLMENT_GROUP_NOT_FOUND = 404204
    METHOD_NOT_ALLOWED = 405000
    CONFLICT = 409000
    PRECONDITION_FAILED = 412002
    PAYLOAD_TOO_LARGE = 413002
    UNSUPPORTED_MEDIA_TYPE = 415000
    THROTTLED = 429001
    INTERNAL = 500001
    HUB_UNAVAILABLE = 503001

    @property
    def http_status(self) -> int:
        return int(self) // 1000


@dataclass(frozen=True)
class DpsError(Exception):
    """An outcome a client is told about; the message is safe to show (no secrets)."""

    code: ErrorCode
    message: str
    info: dict[str, str] = field(default_factory=dict)

    @property
    def status(self) -> int:
        return self.code.http_status

    def body(self, tracking_id: str | None = None, now: datetime | None = None) -> dict:
        body: dict = {
            "errorCode": int(self.code),
            "trackingId": tracking_id or guid(),
            "message": self.message,
            "timestampUtc": format_utc(now or utc_now()),
        }
        if self.info:
            body["info"] = dict(self.info)
        return body

    def json_bytes(self, tracking_id: str | None = None) -> bytes:
        return jsontext.dumpb(self.body(tracking_id))


def unauthorized(message: str = "Unauthorized") -> DpsError:
    return DpsError(ErrorCode.UNAUTHORIZED, message)
