"""Shared fixtures: a real ``opendps serve`` process on its own loopback address.

The official SDKs always connect to 443/8883, so every server gets its own 127.x.y.z address
(ARCHITECTURE: tests bind the fixed ports on distinct loopback addresses). The database backend
is chosen by ``backend`` ("sqlite" or "postgresql")."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

PG_ADMIN_URL = os.environ.get("OPENDPS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
START_TIMEOUT = 30.0


def is_free(host: str, ports: tuple[int, ...] = (443, 8883)) -> bool:
    try:
        for port in ports:
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((host, port))
        return True
    except OSError:
        return False


def _free_loopback(ports: tuple[int, ...] = (443, 8883)) -> str:
    for _ in range(200):
        host = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
        if is_free(host, ports):
            return host
    raise RuntimeError("no free loopback address for 443/8883")


def create_pg_database() -> str:
    """A fresh PostgreSQL database for one server; PostgreSQL must be running."""
    import asyncio

    import asyncpg

    name = f"opendps_it_{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{name}"


@dataclass
class ServerProcess:
    host: str
    data_dir: Path
    env: dict[str, str]
    proc: subprocess.Popen
    log_path: Path

    @property
    def info(self) -> dict:
        return json.loads((self.data_dir / "info.json").read_text())

    @property
    def ca_pem(self) -> str:
        return Path(self.info["caCertificate"]).read_text()

    @property
    def id_scope(self) -> str:
        return self.info["idScope"]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_server(tmp: Path, *, backend: str = "sqlite", extra_env: dict | None = None,
                 host: str | None = None) -> ServerProcess:
    host = host or _free_loopback()
    data_dir = tmp / f"data-{host}"
    env = dict(os.environ)
    env.update({
        "OPENDPS_DATA_DIR": str(data_dir),
        "OPENDPS_BIND": host,
        "OPENDPS_DPS_HOST_NAME": host,
        "OPENDPS_HUB_HOST_NAMES": host,
        "OPENDPS_LOG_LEVEL": "INFO",
    })
    if backend == "postgresql" and "OPENDPS_DATABASE_URL" not in (extra_env or {}):
        env["OPENDPS_DATABASE_URL"] = create_pg_database()
    env.update(extra_env or {})
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = tmp / f"server-{host}.log"
    log = log_path.open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "opendps", "serve"], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    server = ServerProcess(host, data_dir, env, proc, log_path)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"opendps serve exited early:\n{server.log()}")
        if (data_dir / "info.json").exists() and _listening(host, 443) and _listening(host, 8883):
            return server
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"opendps serve did not start in time:\n{server.log()}")


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def backend_params() -> list:
    return ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
