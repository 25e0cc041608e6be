"""What was acknowledged survives ``kill -9``; port problems are explained; the WebSocket
bridge accepts any path; secrets stay out of logs."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import aiohttp
import pytest

from opendps.protocol import sas
from opendps.protocol.mqtt import (
    NEED_DATA,
    ConnAck,
    Connect,
    MqttConnection,
    PubAck,
    Publish,
    Role,
)

from .raw import API, RawMqtt, device_token, https, register
from .sdk_helpers import hub_rest, service_client
from .servers import backend_params, start_server


@pytest.mark.parametrize("backend", backend_params())
def test_acknowledged_writes_survive_sigkill(tmp_path, backend: str) -> None:  # type: ignore[no-untyped-def]
    server = start_server(tmp_path, backend=backend)
    try:
        reg_id = f"crash-{uuid.uuid4().hex[:8]}"
        created = service_client(server).enrollment.create_or_update(reg_id, {
            "registrationId": reg_id, "attestation": {"type": "symmetricKey"}})
        key = created["attestation"]["symmetricKey"]["primaryKey"]
        token = device_token(server, reg_id, key)
        status, _, body = register(server, reg_id, token)
        assert status == 202
        operation_id = body["operationId"]
        client = RawMqtt(server)
        hub_token = sas.generate(f"{server.host}/devices/{reg_id}", key)
        assert client.connect(reg_id, f"{server.host}/{reg_id}/?api-version=2021-04-12",
                              hub_token).return_code == 0
        client.send(Publish(f"devices/{reg_id}/messages/events/", b"last words", 1, 9))
        assert client.next() == PubAck(9)
        server.proc.send_signal(signal.SIGKILL)  # right after the acknowledgements
        server.proc.wait(10)
        client.close()
    except BaseException:
        server.stop(signal.SIGKILL)
        raise

    env_db = {"OPENDPS_DATABASE_URL": server.env["OPENDPS_DATABASE_URL"]} if (
        "OPENDPS_DATABASE_URL" in server.env) else {}
    again = start_server(tmp_path, backend=backend, host=server.host, extra_env=env_db)
    try:
        assert again.id_scope == server.id_scope
        assert service_client(again).enrollment.get(reg_id)["registrationId"] == reg_id
        status, _, polled = https(again, "GET", f"/{again.id_scope}/registrations/{reg_id}"
                                  f"/operations/{operation_id}?api-version={API}",
                                  headers={"Authorization": token})
        assert status == 200 and polled["status"] == "assigned"
        out = subprocess.run([sys.executable, "-m", "opendps", "hub", "monitor-events",
                              "--device-id", reg_id, "--timeout", "1", "--json"],
                             env=again.env, capture_output=True, text=True, timeout=30)
        payloads = [json.loads(line)["event"]["payload"] for line in out.stdout.splitlines()]
        assert payloads == ["last words"]
        status, _ = hub_rest(again, "GET", f"/devices/{reg_id}")
        assert status == 200
    finally:
        again.stop()


def test_busy_port_is_explained(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from .servers import _free_loopback

    host = _free_loopback()
    blocker = socket.socket()
    blocker.bind((host, 443))
    blocker.listen()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "opendps", "serve", "--data-dir", str(tmp_path / "d"),
             "--bind", host, "--dps-host", host, "--hub-host", host],
            capture_output=True, text=True, timeout=60)
    finally:
        blocker.close()
    assert proc.returncode != 0
    assert f"cannot listen for HTTPS on {host}:443" in proc.stderr
    assert "another program already listens" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_privileged_port_without_root_is_explained(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os
    import shutil

    from .servers import _free_loopback

    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.fail("this test drops root with setpriv; run the suite as root (as CI does)")
    import tempfile

    host = _free_loopback()
    data = Path(tempfile.mkdtemp(prefix="opendps-nobody-", dir="/tmp"))
    os.chmod(data, 0o777)  # pytest's own tmp_path is private to root
    proc = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
         sys.executable, "-m", "opendps", "serve", "--data-dir", str(data), "--bind", host,
         "--dps-host", host, "--hub-host", host],
        capture_output=True, text=True, timeout=60, env={**os.environ, "HOME": str(data)})
    shutil.rmtree(data, ignore_errors=True)
    assert proc.returncode != 0, proc.stdout
    assert f"cannot listen for HTTPS on {host}:443" in proc.stderr, proc.stderr
    assert "cap_net_bind_service" in proc.stderr and "run as root" in proc.stderr


@pytest.fixture(scope="module")
def server(opendps_server):  # type: ignore[no-untyped-def]
    return opendps_server


@pytest.mark.parametrize("path", ["/", "/mqtt", "/$iothub/websocket", "/any/thing"])
async def test_websocket_any_path(server, path: str) -> None:  # type: ignore[no-untyped-def]
    import ssl

    reg_id = f"ws-{uuid.uuid4().hex[:8]}"
    created = service_client(server).enrollment.create_or_update(reg_id, {
        "registrationId": reg_id, "attestation": {"type": "symmetricKey"}})
    key = created["attestation"]["symmetricKey"]["primaryKey"]
    ctx = ssl.create_default_context(cafile=server.info["caCertificate"])
    conn = MqttConnection(Role.CLIENT)
    async with aiohttp.ClientSession() as session, session.ws_connect(
            f"wss://{server.host}{path}", protocols=("mqtt",), ssl=ctx) as ws:
        assert ws.protocol == "mqtt"
        await ws.send_bytes(conn.send(Connect(
            reg_id, f"{server.id_scope}/registrations/{reg_id}/api-version={API}",
            device_token(server, reg_id, key).encode(), 60)))
        event = NEED_DATA
        while event is NEED_DATA:
            msg = await ws.receive(timeout=10)
            conn.receive_data(msg.data)
            event = conn.next_event()
        assert isinstance(event, ConnAck) and event.return_code == 0


def test_secrets_never_reach_the_log(server) -> None:  # type: ignore[no-untyped-def]
    reg_id = f"secret-{uuid.uuid4().hex[:8]}"
    created = service_client(server).enrollment.create_or_update(reg_id, {
        "registrationId": reg_id, "attestation": {"type": "symmetricKey"}})
    key = created["attestation"]["symmetricKey"]["primaryKey"]
    bad = device_token(server, reg_id, "C" * 43 + "=")
    register(server, reg_id, bad)
    register(server, reg_id, device_token(server, reg_id, key, ttl=-1))
    client = RawMqtt(server)
    client.connect(reg_id, f"{server.id_scope}/registrations/{reg_id}/api-version={API}", bad)
    client.close()
    log = server.log()
    owner_key = server.info["serviceConnectionString"].split("SharedAccessKey=")[1]
    for secret in (key, owner_key, bad.split("sig=")[1].split("&")[0]):
        assert secret not in log
