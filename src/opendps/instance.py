"""First start creates the instance (ID scope, owner policy, server PKI, built-in hubs); later
starts reuse it. Everything lives in the store (so every cluster member agrees) and the PEM
files devices need are written into the data directory."""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import pki
from .config import Settings
from .protocol.connstr import ConnectionString
from .store.interface import AccessPolicy, HubRecord, Store

ALL_DPS_RIGHTS = frozenset({
    "ServiceConfig", "EnrollmentRead", "EnrollmentWrite", "DeviceConnect",
    "RegistrationStatusRead", "RegistrationStatusWrite",
})
OWNER_POLICY = "provisioningserviceowner"
HUB_OWNER_POLICY = "iothubowner"
HUB_OWNER_RIGHTS = ("RegistryRead", "RegistryWrite", "ServiceConnect", "DeviceConnect")


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@dataclass(frozen=True)
class Instance:
    id_scope: str
    dps_host_name: str
    owner: AccessPolicy
    hubs: list[HubRecord]
    ca_path: Path
    cert_path: Path
    key_path: Path
    settings: Settings

    def service_connection_string(self) -> str:
        return str(ConnectionString(self.dps_host_name, self.owner.name, self.owner.primary_key))

    def hub_connection_string(self, hub: HubRecord) -> str:
        policy = hub.policies.get(HUB_OWNER_POLICY) or {}
        return str(ConnectionString(hub.host_name, HUB_OWNER_POLICY,
                                    policy.get("primaryKey", "")))

    def info(self) -> dict[str, Any]:
        s = self.settings
        return {
            "idScope": self.id_scope,
            "deviceEndpoint": self.dps_host_name,
            "serviceEndpoint": f"https://{self.dps_host_name}",
            "caCertificate": str(self.ca_path),
            "serviceConnectionString": self.service_connection_string(),
            "ports": {"https": s.https_port, "mqtt": s.mqtt_port},
            "bind": s.bind,
            "dataDir": str(s.data_dir),
            "database": "postgresql" if s.db_url.startswith("postgres") else "sqlite",
            "hubs": [
                {"hostName": h.host_name, "builtIn": h.built_in,
                 "connectionString": self.hub_connection_string(h)}
                for h in self.hubs
            ],
        }


async def bootstrap(settings: Settings, store: Store) -> Instance:
    id_scope = await store.setting_if_absent("id_scope", "0ne" + secrets.token_hex(4).upper())
    dps_host = await store.setting_if_absent("dps_host_name", settings.dps_host_name)
    owner = await store.get_policy(OWNER_POLICY)
    if owner is None:
        await store.put_policy(AccessPolicy(OWNER_POLICY, _key(), _key(), ALL_DPS_RIGHTS))
        owner = await store.get_policy(OWNER_POLICY)
    assert owner is not None
    for host in settings.hub_host_names:
        if await store.get_hub(host) is None:
            policy = {"primaryKey": _key(), "secondaryKey": _key(),
                      "rights": list(HUB_OWNER_RIGHTS)}
            await store.put_hub(HubRecord(host, True, None,
                                          policies={HUB_OWNER_POLICY: policy}))
    hubs = await store.list_hubs()
    paths = await _write_pki(settings, store, dps_host, [h.host_name for h in hubs])
    return Instance(id_scope, dps_host, owner, hubs, *paths, settings=settings)


async def refresh_server_certificate(settings: Settings, store: Store) -> None:
    """Re-issue the server certificate when the hub host names changed (a new SAN)."""
    dps_host = await store.get_setting("dps_host_name") or settings.dps_host_name
    await _write_pki(settings, store, dps_host, [h.host_name for h in await store.list_hubs()
                                                 if h.built_in])


async def _write_pki(settings: Settings, store: Store, dps_host: str,
                     hub_hosts: list[str]) -> tuple[Path, Path, Path]:
    ca_cert = await store.get_setting("ca_cert_pem")
    ca_key = await store.get_setting("ca_key_pem")
    if ca_cert is None or ca_key is None:
        new_cert, new_key = pki.create_ca()
        # both halves in one race-safe step: whoever stored the key first wins the pair
        ca_key = await store.setting_if_absent("ca_key_pem", new_key)
        ca_cert = await store.setting_if_absent(
            "ca_cert_pem", new_cert if ca_key == new_key else await _wait_ca(store))
    names = pki.server_names([dps_host, *hub_hosts])
    # key and certificate travel as one setting: instances starting together never pair one
    # instance's key with another's certificate
    pair = json.loads(await store.get_setting("server_tls_pair") or "{}")
    cert, key = pair.get("cert"), pair.get("key")
    if cert is None or key is None or not pki.server_cert_fits(cert, names, ca_cert):
        cert, key = pki.create_server_cert(ca_cert, ca_key, names)
        await store.put_setting("server_tls_pair", json.dumps({"cert": cert, "key": key}))
    data = settings.data_dir
    data.mkdir(parents=True, exist_ok=True)
    ca_path, cert_path, key_path = data / "ca.pem", data / "server.pem", data / "server.key"
    write_atomic(ca_path, ca_cert, 0o644)
    write_atomic(cert_path, cert + ca_cert, 0o644)
    write_atomic(key_path, key, 0o600)
    return ca_path, cert_path, key_path


async def _wait_ca(store: Store) -> str:
    import asyncio

    for _ in range(100):
        value = await store.get_setting("ca_cert_pem")
        if value is not None:
            return value
        await asyncio.sleep(0.05)
    raise RuntimeError("another instance stored a CA key but never its certificate")


def write_atomic(path: Path, text: str, mode: int) -> None:
    """Written beside and renamed over (``mode`` from the start), so a reader never sees a
    half-written file; an unchanged file is left alone."""
    if path.exists() and path.read_text() == text:
        return
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
