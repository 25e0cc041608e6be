"""Settings: defaults < TOML file < environment (``OPENDPS_*``) < flags. Frozen, validated,
and loading opens nothing (hypercorn's config, minus the mutable class defaults)."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

SECONDS = 1


class ConfigError(ValueError):
    pass


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("opendps", appauthor=False))


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=default_data_dir)
    database_url: str | None = None  # default: SQLite in the data directory
    bind: str = "0.0.0.0"
    https_port: int = 443
    mqtt_port: int = 8883
    dps_host_name: str = "localhost"
    hub_host_names: tuple[str, ...] = ("localhost",)
    retry_after: int = 3 * SECONDS
    telemetry_keep: int = 10_000  # newest events kept per hub (trimmed every keep/10 events)
    # NORMAL survives a killed process; FULL also survives power loss, at a cost per write
    sqlite_synchronous: str = "NORMAL"
    mqtt_connect_timeout: int = 30 * SECONDS
    max_ca_certificates: int = 25  # the DPS limit (seed digest 1, service limits)
    max_linked_hubs: int = 50  # the DPS limit
    allocation_policy: str = "hashed"  # service-wide default: hashed | geoLatency | static
    location: str = ""  # this instance's location, for geoLatency allocation
    webhook_ca_file: str | None = None  # trust root for HTTPS custom allocation webhooks
    webhook_timeout: int = 10 * SECONDS
    external_hub_ca_file: str | None = None  # trust root for external hubs (None: system)
    log_level: str = "INFO"
    roles: str = "all"  # comma-separated: dps, hub, api (or all); see cluster/roles.py
    instance_name: str = ""  # names this instance in x-opendps-instance (default host@bind)
    # worker processes sharing the listening ports (SO_REUSEPORT); one asyncio loop uses one
    # core, so set it to the number of cores for throughput (cluster/supervisor.py)
    workers: int = 1

    @property
    def bind_addresses(self) -> list[str]:
        """``bind`` may name several addresses, comma-separated."""
        return [b.strip() for b in self.bind.split(",") if b.strip()]

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'opendps.db'}?synchronous={self.sqlite_synchronous}"

    def validate(self) -> Settings:
        for name in ("https_port", "mqtt_port"):
            port = getattr(self, name)
            if not 0 <= port <= 65535:
                raise ConfigError(f"{name} must be a TCP port number, not {port}")
        if not self.hub_host_names:
            raise ConfigError("at least one hub host name is needed")
        if self.retry_after < 1:
            raise ConfigError("retry_after must be at least 1 second")
        if self.mqtt_connect_timeout < 1:
            raise ConfigError("mqtt_connect_timeout must be at least 1 second")
        if self.allocation_policy not in ("hashed", "geoLatency", "static"):
            raise ConfigError("allocation_policy must be hashed, geoLatency or static")
        if self.telemetry_keep < 1:
            raise ConfigError("telemetry_keep must be at least 1")
        if not 1 <= self.workers <= 256:
            raise ConfigError("workers must be between 1 and 256")
        if self.workers > 1 and 0 in (self.https_port, self.mqtt_port):
            raise ConfigError("workers > 1 needs fixed ports: port 0 would give every worker "
                              "a different one")
        roles = {r.strip().lower() for r in self.roles.split(",") if r.strip()}
        if not roles or not roles <= {"all", "dps", "hub", "api"}:
            raise ConfigError("roles must be a comma-separated list of dps, hub, api (or all)")
        return self


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def _coerce(name: str, value: Any) -> Any:
    if name not in _FIELDS:
        raise ConfigError(f"unknown setting {name!r}")
    if name == "data_dir":
        return Path(value).expanduser()
    if name == "hub_host_names":
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        return tuple(value)
    if name in ("https_port", "mqtt_port", "retry_after", "telemetry_keep",
                "mqtt_connect_timeout", "max_ca_certificates", "max_linked_hubs",
                "webhook_timeout", "workers"):
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be an integer, not {value!r}") from None
    return value


def from_mapping(values: dict[str, Any]) -> Settings:
    """Settings from plain values (``to_mapping``'s output): how a worker process receives
    exactly its parent's settings, whatever mix of file, environment and flags made them."""
    return Settings(**{k: _coerce(k, v) for k, v in values.items()}).validate()


def to_mapping(settings: Settings) -> dict[str, Any]:
    """JSON-ready values that ``from_mapping`` turns back into the same settings."""
    return {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
            for k, v in dataclasses.asdict(settings).items()}


def load(flags: dict[str, Any] | None = None, env: dict[str, str] | None = None,
         config_file: Path | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    values: dict[str, Any] = {}
    data_dir = flags.get("data_dir") or env.get("OPENDPS_DATA_DIR")
    path = config_file or (Path(data_dir) / "opendps.toml" if data_dir else None)
    if path is not None and path.exists():
        with path.open("rb") as fh:
            for key, value in tomllib.load(fh).items():
                values[key.replace("-", "_")] = _coerce(key.replace("-", "_"), value)
    for key, value in env.items():
        if key.startswith("OPENDPS_"):
            name = key[len("OPENDPS_"):].lower()
            if name in _FIELDS:
                values[name] = _coerce(name, value)
    for key, value in flags.items():
        values[key] = _coerce(key, value)
    return Settings(**values).validate()
