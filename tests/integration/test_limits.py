"""Configured limits: the CONNECT deadline and the bounded telemetry log."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import pytest

from opendps.protocol import sas
from opendps.protocol.mqtt import PubAck, Publish

from .raw import RawMqtt
from .sdk_helpers import hub_rest
from .servers import start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):  # type: ignore[no-untyped-def]
    proc = start_server(tmp_path_factory.mktemp("limits"), extra_env={
        "OPENDPS_MQTT_CONNECT_TIMEOUT": "1", "OPENDPS_TELEMETRY_KEEP": "3",
        "OPENDPS_MAX_CA_CERTIFICATES": "2", "OPENDPS_MAX_LINKED_HUBS": "2"})
    yield proc
    proc.stop()


def test_silent_connection_is_dropped(server) -> None:  # type: ignore[no-untyped-def]
    client = RawMqtt(server)
    started = time.monotonic()
    try:
        assert client.closed_by_server(timeout=10)
        assert 0.5 < time.monotonic() - started < 5
    finally:
        client.close()


def test_telemetry_log_keeps_the_newest(server) -> None:  # type: ignore[no-untyped-def]
    device_id = f"keep-{uuid.uuid4().hex[:6]}"
    status, body = hub_rest(server, "PUT", f"/devices/{device_id}", {"deviceId": device_id})
    assert status == 200
    key = body["authentication"]["symmetricKey"]["primaryKey"]
    client = RawMqtt(server)
    try:
        token = sas.generate(f"{server.host}/devices/{device_id}", key)
        assert client.connect(device_id, f"{server.host}/{device_id}/?api-version=2021-04-12",
                              token).return_code == 0
        for i in range(5):
            client.send(Publish(f"devices/{device_id}/messages/events/", f"m{i}".encode(), 1,
                                i + 1))
            assert client.next() == PubAck(i + 1)
    finally:
        client.close()
    out = subprocess.run([sys.executable, "-m", "opendps", "hub", "monitor-events",
                          "--timeout", "1", "--json"],
                         env=server.env, capture_output=True, text=True, timeout=30)
    payloads = [json.loads(line)["event"]["payload"] for line in out.stdout.splitlines()]
    assert payloads == ["m2", "m3", "m4"]


def test_ca_certificate_and_linked_hub_limits(server) -> None:  # type: ignore[no-untyped-def]
    from .ca_rest import admin, call
    from .x509_factory import make

    for i in range(2):
        status, body = call(server, "PUT", f"/ca-{i}", {"certificate": make(f"CA {i}",
                                                                           ca=True).pem})
        assert status == 201, body
    status, body = call(server, "PUT", "/ca-2", {"certificate": make("CA 2", ca=True).pem})
    assert status == 409 and "limit of 2" in body["message"]
    # replacing an existing one is not a new one
    status, _ = call(server, "PUT", "/ca-0", {"certificate": make("CA 0b", ca=True).pem})
    assert status == 200
    status, body = admin(server, "PUT", "/linkedHubs/second.example", {"builtIn": True})
    assert status == 201, body
    status, body = admin(server, "PUT", "/linkedHubs/third.example", {"builtIn": True})
    assert status == 409 and "limit of 2" in body["message"]
    assert admin(server, "DELETE", "/linkedHubs/second.example")[0] == 204
