"""Where a client command finds its server: flags, then environment, then the local instance.

A running server writes ``info.json`` into its data directory with the ports it really
listens on, so that file is read first; without it the store is opened and the instance
bootstrapped (as ``opendps info`` does), which also works before the first ``serve``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from .. import config

DEFAULT_HTTPS_PORT = 443
DEFAULT_MQTT_PORT = 8883


async def bootstrap_info(settings: config.Settings) -> dict[str, Any]:
    """Open the store, create or reuse the instance, return ``Instance.info()``.

    An existing instance keeps its hubs: without this, ``opendps info`` run with default
    settings would link a ``localhost`` hub the running server does not serve. The ports and
    bind address a running server wrote to ``info.json`` win over this process's settings.
    """
    from ..instance import bootstrap
    from ..store import open_store

    settings.data_dir.mkdir(parents=True, exist_ok=True)  # SQLite needs the directory
    store = await open_store(settings.db_url)
    try:
        if await store.get_setting("id_scope") is not None:
            stored = tuple(h.host_name for h in await store.list_hubs())
            if stored:
                settings = dataclasses.replace(settings, hub_host_names=stored)
        info = (await bootstrap(settings, store)).info()
    finally:
        await store.close()
    running = _read_info_file(settings.data_dir)
    for key in ("ports", "bind"):
        if running and key in running:
            info[key] = running[key]
    return info


def _read_info_file(data_dir: Path) -> dict[str, Any] | None:
    """What a running server wrote (``server.write_info``); None if absent or half-written."""
    try:
        data = json.loads((data_dir / "info.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def load_settings(data_dir: str | None, database: str | None = None) -> config.Settings:
    try:
        return config.load({"data_dir": data_dir, "database_url": database})
    except config.ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def instance_info(data_dir: str | None, database: str | None = None, *,
                  bootstrap: bool = True) -> dict[str, Any]:
    """The local instance's info: the server's ``info.json`` if present, else bootstrap
    (or ``{}`` when ``bootstrap`` is False: never create an instance just to find a CA)."""
    settings = load_settings(data_dir, database)
    running = _read_info_file(settings.data_dir)
    if running is not None:
        return running
    if not bootstrap:
        return {}
    return asyncio.run(bootstrap_info(settings))


@dataclass
class Target:
    """Everything a REST client needs."""

    connection_string: str
    ca_file: str | None
    port: int


class LazyInfo:
    """Reads the instance only if a flag or variable left something to fill in. With an
    explicit connection string it only reads ``info.json``: the target may be Azure."""

    def __init__(self, data_dir: str | None, *, bootstrap: bool) -> None:
        self.data_dir = data_dir
        self.bootstrap = bootstrap
        self._info: dict[str, Any] | None = None

    def get(self) -> dict[str, Any]:
        if self._info is None:
            self._info = instance_info(self.data_dir, bootstrap=self.bootstrap)
        return self._info

    def port(self, given: int | None, name: str, default: int) -> int:
        if given:
            return given
        return int((self.get().get("ports") or {}).get(name) or default)

    def ca_file(self, given: str | None) -> str | None:
        if given:
            return given
        ca = self.get().get("caCertificate")
        return ca if ca and Path(ca).is_file() else None


def service_target(connection_string: str | None, data_dir: str | None,
                   ca_file: str | None, port: int | None) -> Target:
    info = LazyInfo(data_dir, bootstrap=not connection_string)
    if not connection_string:
        connection_string = info.get().get("serviceConnectionString")
        if not connection_string:
            raise click.ClickException("no service connection string: pass "
                                       "--connection-string or set OPENDPS_CONNECTION_STRING")
    return Target(connection_string, info.ca_file(ca_file),
                  info.port(port, "https", DEFAULT_HTTPS_PORT))


def hub_target(hub_connection_string: str | None, hub: str | None, data_dir: str | None,
               ca_file: str | None, port: int | None) -> Target:
    """The hub connection string given, or the chosen (default: first) hub's from the instance."""
    info = LazyInfo(data_dir, bootstrap=not hub_connection_string)
    if not hub_connection_string:
        hubs = info.get().get("hubs") or []
        if not hubs:
            raise click.ClickException("the instance has no hubs; pass --hub-connection-string")
        chosen = hubs[0]
        if hub:
            matches = [h for h in hubs if h.get("hostName", "").lower() == hub.lower()]
            if not matches:
                names = ", ".join(h.get("hostName", "?") for h in hubs)
                raise click.ClickException(f"no hub {hub!r} in this instance (hubs: {names})")
            chosen = matches[0]
        hub_connection_string = chosen.get("connectionString")
        if not hub_connection_string:
            raise click.ClickException(f"hub {chosen.get('hostName')!r} has no connection string")
    return Target(hub_connection_string, info.ca_file(ca_file),
                  info.port(port, "https", DEFAULT_HTTPS_PORT))
