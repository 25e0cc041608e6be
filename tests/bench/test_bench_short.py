"""The benchmark in CI's short mode: a few hundred devices, seconds, loopback only.

It fails on errors, never on speed: a slow CI machine must not fail the build, but a
registration that errors under concurrency, or a device registered twice, must.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.servers import ServerProcess, start_server
from opendps.cli.serve import run_forever
from opendps.client.service import DpsServiceClient

DEVICES = 200


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_server(tmp_path_factory.mktemp("bench"))
    yield server
    server.stop()


def bench(server: ServerProcess, *args: str) -> dict[str, Any]:
    """Run ``opendps bench …`` as a user would; its JSON result."""
    proc = subprocess.run(
        [sys.executable, "-m", "opendps", "bench", *args, "--data-dir", str(server.data_dir),
         "--server-pid", str(server.proc.pid), "--json"],
        capture_output=True, text=True, timeout=60, check=False)
    assert proc.stdout, proc.stderr
    result = json.loads(proc.stdout)
    assert proc.returncode == 0, (result, proc.stderr)
    return result


def registrations(server: ServerProcess, group_id: str) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        async with DpsServiceClient.from_connection_string(
                server.info["serviceConnectionString"],
                ca_file=server.info["caCertificate"]) as client:
            return await client.query_registrations(group_id)
    return asyncio.run(go())


@pytest.mark.parametrize("transport", ["https", "mqtt"])
def test_register_short(server: ServerProcess, transport: str) -> None:
    result = bench(server, "register", "--transport", transport, "--devices", str(DEVICES),
                   "--concurrency", "32", "--poll-immediately")
    assert result["error_count"] == 0, result["errors"]
    assert result["completed"] == DEVICES
    assert result["server_cpu_ms_per_registration"] > 0  # /proc was read
    records = registrations(server, result["group_id"])
    ids = [r["registrationId"] for r in records]
    assert len(ids) == len(set(ids)) == DEVICES
    assert all(r["status"] == "assigned" for r in records)
    expected = {f"{result['group_id']}-dev-{i:06d}" for i in range(DEVICES)}
    assert set(ids) == expected


def test_register_x509_short(server: ServerProcess) -> None:
    result = bench(server, "register", "--attestation", "x509", "--devices", "50",
                   "--poll-immediately")
    assert result["error_count"] == 0, result["errors"]
    assert len(registrations(server, result["group_id"])) == 50


def test_telemetry_short(server: ServerProcess) -> None:
    result = bench(server, "telemetry", "--devices", "20", "--rate", "5", "--duration", "2")
    assert result["error_count"] == 0, result["errors"]
    assert result["connected"] == 20
    assert result["completed"] > 0


def test_idle_short(server: ServerProcess) -> None:
    result = bench(server, "idle", "--connections", "50", "--hold", "0.5")
    assert result["error_count"] == 0, result["errors"]
    assert result["open_after_hold"] == 50


@pytest.fixture
def floor(tmp_path: Path, server: ServerProcess) -> Iterator[tuple[Any, Path]]:
    """The floor reference on the server's certificate, and the log it writes."""
    sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))
    import references

    ref = tmp_path / "ref"
    cert, key = references.tls_files(server.data_dir, ref)
    started = references.start_floor(cert, key, ref)
    try:
        yield started, ref / "floor.log"
    finally:
        started.stop()


def test_floor_server_answers(server: ServerProcess, floor: tuple[Any, Path]) -> None:
    """The floor reference must complete registrations too, or its ratio means nothing."""
    reference, _ = floor
    for transport in ("https", "mqtt"):
        proc = subprocess.run(
            [sys.executable, "-m", "opendps", "bench", "register", "--transport", transport,
             "--devices", "20", "--poll-immediately", "--data-dir", str(server.data_dir),
             "--connect-host", reference.host, "--json"],
            capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def _serve_loop() -> str:
    """The event loop class ``opendps serve`` runs on here."""
    seen: list[str] = []

    async def probe() -> None:
        loop = asyncio.get_running_loop()
        seen.append(f"{type(loop).__module__}.{type(loop).__qualname__}")

    run_forever(probe())
    return seen[0]


def test_floor_server_runs_on_opendps_loop(floor: tuple[Any, Path]) -> None:
    """A floor on a slower event loop than opendps's would flatter every ratio to it."""
    _, log = floor
    text = log.read_text()
    assert f"(loop {_serve_loop()})" in text, text
