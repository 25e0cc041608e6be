"""Helpers around the official SDKs, used as black-box clients."""

from __future__ import annotations

import gc
import json
import os
import urllib.request
import uuid
from typing import Any

from azure.iot.device import IoTHubDeviceClient, Message, ProvisioningDeviceClient
from azure.iot.deviceprovisioning import DeviceProvisioningClient

from opendps.protocol import sas


def service_client(server) -> DeviceProvisioningClient:  # type: ignore[no-untyped-def]
    return DeviceProvisioningClient.from_connection_string(
        server.info["serviceConnectionString"], connection_verify=server.info["caCertificate"])


def symmetric_key_enrollment(server, prefix: str) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """A new individual enrollment made with the service SDK: (registration ID, its key)."""
    registration_id = f"{prefix}-{uuid.uuid4().hex[:8]}"
    created = service_client(server).enrollment.create_or_update(registration_id, {
        "registrationId": registration_id, "attestation": {"type": "symmetricKey"}})
    return registration_id, created["attestation"]["symmetricKey"]["primaryKey"]


def _reap_sockets() -> None:
    """The SDK leaves sockets to the garbage collector, and paho-mqtt 1.6 polls with
    select(), which breaks past file descriptor 1023; collect before a busy test gets there."""
    if len(os.listdir("/proc/self/fd")) > 400:
        gc.collect()


def provision(server, registration_id: str, key: str, *, websockets: bool = False,
              payload: Any = None):  # type: ignore[no-untyped-def]
    _reap_sockets()
    client = ProvisioningDeviceClient.create_from_symmetric_key(
        provisioning_host=server.host, registration_id=registration_id,
        id_scope=server.id_scope, symmetric_key=key, websockets=websockets,
        server_verification_cert=server.ca_pem)
    if payload is not None:
        client.provisioning_payload = payload
    return client.register()  # disconnects by itself when done


def hub_client(server, result, key: str, *, websockets: bool = False) -> IoTHubDeviceClient:  # type: ignore[no-untyped-def]
    return IoTHubDeviceClient.create_from_symmetric_key(
        symmetric_key=key, hostname=result.registration_state.assigned_hub,
        device_id=result.registration_state.device_id, websockets=websockets,
        server_verification_cert=server.ca_pem)


def telemetry(text: str, **props: str) -> Message:
    msg = Message(text, content_encoding="utf-8", content_type="application/json")
    for k, v in props.items():
        msg.custom_properties[k] = v
    return msg


def hub_rest(server, method: str, path: str, body: Any = None,
             hub: str | None = None) -> tuple[int, Any]:  # type: ignore[no-untyped-def]
    """The hub registry REST API with the hub's iothubowner connection string."""
    import ssl

    hub_info = server.info["hubs"][0] if hub is None else next(
        h for h in server.info["hubs"] if h["hostName"] == hub)
    fields = dict(p.split("=", 1) for p in hub_info["connectionString"].split(";"))
    token = sas.generate(fields["HostName"], fields["SharedAccessKey"],
                         key_name=fields["SharedAccessKeyName"])
    sep = "&" if "?" in path else "?"
    req = urllib.request.Request(
        f"https://{server.host}{path}{sep}api-version=2021-04-12", method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": token, "Content-Type": "application/json"})
    ctx = ssl.create_default_context(cafile=server.info["caCertificate"])
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        raw = err.read()
        return err.code, json.loads(raw) if raw else None
