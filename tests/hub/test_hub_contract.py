"""The ``HubPort`` contract: the same scenario through ``BuiltinHub`` (in process) and
``ExternalHub`` (over REST to a real opendps) gives the same observable results, so the engine
cannot tell them apart (ARCHITECTURE: the built-in hub and an external hub look the same)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from integration.servers import ServerProcess
from opendps.hub.builtin import BuiltinHub
from opendps.hub.bus import EventBus
from opendps.hub.connections import ConnectionTable
from opendps.hub.external import ExternalHub
from opendps.protocol.hub_models import device_json
from opendps.provisioning.hub_port import DeviceSpec, HubPort
from opendps.store import MemoryStore

from .registry_raw import raw_device

K1, K2, K3, K4 = (base64.b64encode(f"contract test key {n}".encode()).decode()
                  for n in range(4))
IDENTITY = ("deviceId", "status", "authentication", "capabilities")

Identity = Callable[[str], Awaitable[dict[str, Any] | None]]


async def scenario(hub: HubPort, identity: Identity, device_id: str) -> list[Any]:
    """What DPS does to a hub over a device's life, and everything it could observe."""
    seen: list[Any] = []

    async def look(step: str) -> dict[str, Any] | None:
        device = await identity(device_id)
        seen.append((step, await hub.device_exists(device_id), await hub.get_twin(device_id),
                     {k: device[k] for k in IDENTITY} if device else None))
        return device

    await look("absent")
    await hub.create_or_update_device(DeviceSpec(device_id, K1, K2, iot_edge=True))
    first = await look("created")
    await hub.apply_initial_twin(device_id, {"site": "n", "x": None},
                                 {"interval": 5, "deep": {"a": [1, 2], "b": None}})
    await look("initial twin")
    await hub.create_or_update_device(DeviceSpec(device_id, K3, K4))
    updated = await look("keys rolled")
    seen.append(("generation kept", bool(first and updated
                                         and first["generationId"] == updated["generationId"])))
    await hub.create_or_update_device(
        DeviceSpec(device_id, auth_type="selfSigned", thumbprints=("AB" * 20,)))
    await look("self-signed")
    await hub.create_or_update_device(DeviceSpec(device_id, auth_type="certificateAuthority"))
    await look("certificate authority")
    await hub.apply_initial_twin(device_id, {}, {"only": True})
    await look("twin replaced")
    await hub.delete_device(device_id)
    await look("deleted")
    await hub.delete_device(device_id)
    await look("deleted again")
    await hub.create_or_update_device(DeviceSpec(device_id))
    generated = await identity(device_id) or {}
    keys = generated.get("authentication", {}).get("symmetricKey", {})
    seen.append(("keys generated", bool(keys.get("primaryKey") and keys.get("secondaryKey")),
                 await hub.get_twin(device_id)))
    return seen


async def test_builtin_and_external_hubs_behave_alike(opendps_server: ServerProcess) -> None:
    store = MemoryStore()
    builtin = BuiltinHub(store, "contract.local", EventBus(), ConnectionTable(),
                         telemetry_keep=10)

    async def builtin_identity(device_id: str) -> dict[str, Any] | None:
        stored = await builtin.registry.get(device_id)
        return device_json(stored.doc, stored.etag, False) if stored else None

    async def external_identity(device_id: str) -> dict[str, Any] | None:
        return await raw_device(opendps_server, device_id)

    device_id = f"contract-{uuid.uuid4().hex[:8]}"
    info = opendps_server.info
    async with ExternalHub(info["hubs"][0]["connectionString"],
                           ca_file=info["caCertificate"]) as external:
        over_rest = await scenario(external, external_identity, device_id)
    in_process = await scenario(builtin, builtin_identity, device_id)

    assert over_rest == in_process
    steps = dict((s[0], s[1:]) for s in in_process)
    assert steps["absent"] == (False, None, None)
    exists, twin, identity = steps["initial twin"]
    assert exists and identity["capabilities"] == {"iotEdge": True}
    assert twin == {"tags": {"site": "n"}, "desired": {"interval": 5, "deep": {"a": [1, 2]}},
                    "reported": {}, "desiredVersion": 2, "reportedVersion": 1, "version": 2}
    assert steps["keys rolled"][2]["authentication"]["symmetricKey"] == {
        "primaryKey": K3, "secondaryKey": K4}
    assert steps["generation kept"] == (True,)
    assert steps["self-signed"][2]["authentication"]["x509Thumbprint"] == {
        "primaryThumbprint": "AB" * 20, "secondaryThumbprint": None}
    assert steps["certificate authority"][2]["authentication"]["type"] == "certificateAuthority"
    assert steps["twin replaced"][1]["tags"] == {} and steps["twin replaced"][1]["desired"] == {
        "only": True}
    assert steps["deleted"] == steps["deleted again"] == (False, None, None)
    assert steps["keys generated"] == (True, {
        "tags": {}, "desired": {}, "reported": {}, "desiredVersion": 1, "reportedVersion": 1,
        "version": 1})
