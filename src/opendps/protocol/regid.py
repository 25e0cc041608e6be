"""Registration ID and device ID rules."""

from __future__ import annotations

import re

MAX_REGISTRATION_ID = 128
# alphanumerics plus ": . _ -", no special character first or last (DeviceRegistration swagger)
_REGISTRATION_ID = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9:._-]{0,126}[A-Za-z0-9])?$")
# IoT Hub device IDs: up to 128 chars of ASCII alphanumerics and - . + % _ # * ? ! ( ) , : = @ $ '
_DEVICE_ID = re.compile(r"^[A-Za-z0-9\-.+%_#*?!(),:=@$']{1,128}$")


def is_valid_registration_id(value: str) -> bool:
    return bool(_REGISTRATION_ID.match(value))


def is_valid_device_id(value: str) -> bool:
    return bool(_DEVICE_ID.match(value))


def registration_key(value: str) -> str:
    """Registration IDs are case-insensitive: one key for every spelling."""
    return value.lower()
