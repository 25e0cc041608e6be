"""IoT Hub registry JSON (``Device``, ``Twin``) built from the hub's stored documents."""

from __future__ import annotations

from typing import Any

from .etag import quote

EPOCH = "0001-01-01T00:00:00Z"


def device_json(doc: dict[str, Any], etag: str, connected: bool) -> dict[str, Any]:
    auth = doc.get("authentication") or {"type": "sas"}
    return {
        "deviceId": doc["deviceId"],
        "generationId": doc.get("generationId", ""),
        "etag": etag,
        "connectionState": "Connected" if connected else "Disconnected",
        "status": doc.get("status", "enabled"),
        "statusReason": doc.get("statusReason"),
        "connectionStateUpdatedTime": doc.get("connectionStateUpdatedTime", EPOCH),
        "statusUpdatedTime": doc.get("statusUpdatedTime", EPOCH),
        "lastActivityTime": doc.get("lastActivityTime", EPOCH),
        "cloudToDeviceMessageCount": 0,
        "authentication": {
            "type": auth.get("type", "sas"),
            "symmetricKey": auth.get("symmetricKey") or {"primaryKey": None, "secondaryKey": None},
            "x509Thumbprint": auth.get("x509Thumbprint")
            or {"primaryThumbprint": None, "secondaryThumbprint": None},
        },
        "capabilities": {"iotEdge": bool((doc.get("capabilities") or {}).get("iotEdge"))},
    }


def twin_json(device: dict[str, Any], twin: dict[str, Any], etag: str,
              connected: bool) -> dict[str, Any]:
    return {
        "deviceId": device["deviceId"],
        "etag": quote(etag) if not etag.startswith('"') else etag,
        "deviceEtag": device.get("etag", ""),
        "status": device.get("status", "enabled"),
        "statusUpdateTime": device.get("statusUpdatedTime", EPOCH),
        "connectionState": "Connected" if connected else "Disconnected",
        "lastActivityTime": device.get("lastActivityTime", EPOCH),
        "cloudToDeviceMessageCount": 0,
        "authenticationType": (device.get("authentication") or {}).get("type", "sas"),
        "x509Thumbprint": {"primaryThumbprint": None, "secondaryThumbprint": None},
        "version": twin.get("version", 1),
        "tags": twin.get("tags", {}),
        "properties": {
            "desired": dict(twin.get("desired", {}), **{"$version": twin.get("desiredVersion", 1)}),
            "reported": dict(twin.get("reported", {}),
                             **{"$version": twin.get("reportedVersion", 1)}),
        },
        "capabilities": {"iotEdge": bool((device.get("capabilities") or {}).get("iotEdge"))},
    }


def device_twin_document(twin: dict[str, Any]) -> dict[str, Any]:
    """What a device reads over MQTT ``$iothub/twin/GET``: ``$version`` is required (§8.9)."""
    return {
        "desired": dict(twin.get("desired", {}), **{"$version": twin.get("desiredVersion", 1)}),
        "reported": dict(twin.get("reported", {}), **{"$version": twin.get("reportedVersion", 1)}),
    }


def empty_twin() -> dict[str, Any]:
    return {"tags": {}, "desired": {}, "reported": {}, "desiredVersion": 1,
            "reportedVersion": 1, "version": 1}
