"""CPU per registration of the provisioning logic alone, in process: no TLS, no HTTP, no
load generator. It is the part of ``server_cpu_ms_per_registration`` that opendps adds on top
of its floor, measured without the noise of a second process sharing the two cores.

    python bench/engine_cpu.py --devices 3000 [--profile out.prof]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import json
import os
import tempfile
import time
from pathlib import Path

from opendps.config import Settings
from opendps.hub.builtin import BuiltinHub
from opendps.hub.bus import EventBus
from opendps.hub.connections import ConnectionTable
from opendps.instance import bootstrap
from opendps.linked_hubs import LinkedHubs
from opendps.protocol import sas
from opendps.protocol.enrollment import validate_group
from opendps.provisioning.engine import ProvisioningEngine, RegistrationRequest
from opendps.store import open_store
from opendps.store.cache import CachedStore


async def measure(data_dir: Path, devices: int, profile: str | None) -> dict[str, float]:
    settings = Settings(data_dir=data_dir, bind="127.0.0.1", dps_host_name="dps.local",
                        hub_host_names=("hub.local",)).validate()
    store = CachedStore(await open_store(settings.db_url))
    try:
        instance = await bootstrap(settings, store)
        bus, connections = EventBus(), ConnectionTable()
        hubs = {h.host_name.lower(): BuiltinHub(store, h.host_name, bus, connections,
                                                telemetry_keep=100)
                for h in instance.hubs if h.built_in}
        engine = ProvisioningEngine(store, LinkedHubs(store, hubs), id_scope=instance.id_scope)
        key = base64.b64encode(os.urandom(32)).decode()
        doc = validate_group({"enrollmentGroupId": "cpu", "attestation": {
            "type": "symmetricKey", "symmetricKey": {"primaryKey": key, "secondaryKey": key}}},
            "cpu")
        await store.put_enrollment("group", "cpu", doc, if_match=None,
                                   attestation_type="symmetricKey", enabled=True)
        scope = instance.id_scope

        def request(i: int, body: bytes = b"") -> RegistrationRequest:
            reg = f"cpu-dev-{i:07d}"
            token = sas.generate(f"{scope}/registrations/{reg}",
                                 sas.derive_device_key(key, reg), key_name="registration")
            return RegistrationRequest(scope, reg, token, body)

        requests = [request(i, json.dumps({"registrationId": f"cpu-dev-{i:07d}"}).encode())
                    for i in range(devices)]
        prof = cProfile.Profile() if profile else None
        if prof:
            prof.enable()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for req in requests:
            reply = await engine.register(req)
            op = reply.body["operationId"]
            done = await engine.operation_status(req, op)
            if done.body["status"] != "assigned":
                raise SystemExit(f"not assigned: {done.body}")
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        if prof:
            prof.disable()
            prof.dump_stats(profile)
        return {"devices": devices, "cpu_ms_per_registration": cpu / devices * 1000,
                "wall_ms_per_registration": wall / devices * 1000}
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=3000)
    parser.add_argument("--profile", help="write cProfile stats here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(asyncio.run(measure(Path(tmp), args.devices, args.profile))))


if __name__ == "__main__":
    main()
