"""IoT Hub device MQTT grammar: username, telemetry property bags, twin topics (§7)."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

SYSTEM_PROPERTY_NAMES = {
    "$.mid": "message-id",
    "$.cid": "correlation-id",
    "$.uid": "user-id",
    "$.ct": "content-type",
    "$.ce": "content-encoding",
    "$.exp": "absolute-expiry-time",
    "$.on": "output-name",
    "$.ifid": "interface-id",
    "$.sub": "component-name",
    "$.to": "to",
    "iothub-ack": "ack",
}

TWIN_RESPONSE_FILTER = "$iothub/twin/res/#"
DESIRED_FILTER = "$iothub/twin/PATCH/properties/desired/#"


@dataclass(frozen=True, slots=True)
class HubUsername:
    host: str
    device_id: str
    module_id: str | None
    params: dict[str, str]


def parse_username(username: str) -> HubUsername | None:
    """``{host}/{deviceId}[/{moduleId}]/?api-version=…``; tolerate a missing ``/?`` tail."""
    head, sep, query = username.partition("?")
    parts = head.rstrip("/").split("/")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        return None
    if parts[1] == "registrations":
        return None
    params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True)) if sep else {}
    return HubUsername(parts[0], parts[1], parts[2] if len(parts) == 3 else None, params)


def parse_property_bag(bag: str) -> tuple[dict[str, str], dict[str, str | None]]:
    """Split a property bag into (system, application) properties; keys are URL-decoded
    (C sends ``%24.mid``), a leading ``?`` is tolerated, ``key`` alone means null."""
    system: dict[str, str] = {}
    app: dict[str, str | None] = {}
    bag = bag.lstrip("?")
    for pair in bag.split("&"):
        if not pair:
            continue
        raw_key, sep, raw_value = pair.partition("=")
        key = urllib.parse.unquote(raw_key)
        value = urllib.parse.unquote(raw_value) if sep else None
        if key in SYSTEM_PROPERTY_NAMES:
            system[SYSTEM_PROPERTY_NAMES[key]] = value or ""
        else:
            app[key] = value
    return system, app


def telemetry_bag(topic: str, device_id: str) -> str | None:
    """The property bag of a telemetry topic for this device, or None if not telemetry."""
    prefix = f"devices/{device_id}/messages/events"
    if topic == prefix:
        return ""
    if topic.startswith(prefix + "/"):
        return topic[len(prefix) + 1:]
    return None


@dataclass(frozen=True, slots=True)
class TwinRequest:
    kind: str  # "get" | "patch-reported"
    rid: str


def _query(rest: str) -> dict[str, str]:
    rest = rest.lstrip("/")
    if not rest.startswith("?"):
        return {}
    return dict(urllib.parse.parse_qsl(rest[1:], keep_blank_values=True))


def parse_twin_topic(topic: str) -> TwinRequest | None:
    if topic.startswith("$iothub/twin/GET/"):
        q = _query(topic[len("$iothub/twin/GET"):])
        return TwinRequest("get", q["$rid"]) if "$rid" in q else None
    if topic.startswith("$iothub/twin/PATCH/properties/reported/"):
        q = _query(topic[len("$iothub/twin/PATCH/properties/reported"):])
        return TwinRequest("patch-reported", q["$rid"]) if "$rid" in q else None
    return None


def twin_response_topic(status: int, rid: str, version: int | None = None) -> str:
    topic = f"$iothub/twin/res/{status}/?$rid={rid}"
    if version is not None:
        topic += f"&$version={version}"
    return topic


def desired_patch_topic(version: int) -> str:
    return f"$iothub/twin/PATCH/properties/desired/?$version={version}"


def allowed_subscription(filter_: str, device_id: str) -> bool:
    """Topic filters a device may subscribe to on the hub."""
    return filter_ in (
        TWIN_RESPONSE_FILTER,
        DESIRED_FILTER,
        "$iothub/methods/POST/#",
        f"devices/{device_id}/messages/devicebound/#",
    ) or filter_.startswith(f"devices/{device_id}/modules/")
