"""Raw clients for the cases the SDKs never send: HTTPS requests and MQTT bytes over TLS."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from typing import Any

from opendps.protocol import sas
from opendps.protocol.mqtt import (
    NEED_DATA,
    ConnAck,
    Connect,
    ConnectionClosed,
    MqttConnection,
    Packet,
    Role,
)

API = "2019-03-31"


def tls_context(server) -> ssl.SSLContext:  # type: ignore[no-untyped-def]
    return ssl.create_default_context(cafile=server.info["caCertificate"])


def https(server, method: str, path: str, body: bytes | str | None = None,  # type: ignore[no-untyped-def]
          headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    conn = http.client.HTTPSConnection(server.host, 443, context=tls_context(server), timeout=10)
    try:
        if isinstance(body, str):
            body = body.encode()
        conn.request(method, path, body=body, headers={
            "Content-Type": "application/json; charset=utf-8", **(headers or {})})
        resp = conn.getresponse()
        raw = resp.read()
        data = json.loads(raw) if raw else None
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def device_token(server, registration_id: str, key: str, ttl: int = 3600) -> str:  # type: ignore[no-untyped-def]
    return sas.generate(f"{server.id_scope}/registrations/{registration_id}", key, ttl=ttl)


def register(server, registration_id: str, token: str | None, body: Any = None,  # type: ignore[no-untyped-def]
             scope: str | None = None) -> tuple[int, dict[str, str], Any]:
    headers = {"Authorization": token} if token else {}
    payload = json.dumps(body if body is not None else {"registrationId": registration_id})
    return https(server, "PUT",
                 f"/{scope or server.id_scope}/registrations/{registration_id}/register"
                 f"?api-version={API}", payload, headers)


class RawMqtt:
    """An MQTT client on a real TLS socket, able to send anything."""

    def __init__(self, server, port: int = 8883,  # type: ignore[no-untyped-def]
                 client_cert: tuple[str, str] | None = None) -> None:
        raw = socket.create_connection((server.host, port), timeout=10)
        ctx = tls_context(server)
        if client_cert is not None:
            ctx.load_cert_chain(*client_cert)
        self.sock = ctx.wrap_socket(raw, server_hostname=server.host)
        self.conn = MqttConnection(Role.CLIENT)

    def send_bytes(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, packet: Packet) -> None:
        self.sock.sendall(self.conn.send(packet))

    def connect(self, client_id: str, username: str, password: str | None) -> ConnAck:
        self.send(Connect(client_id=client_id, username=username,
                          password=password.encode() if password else None,
                          keep_alive=60, clean_session=True))
        event = self.next()
        assert isinstance(event, ConnAck), event
        return event

    def next(self, timeout: float = 10.0) -> Packet | ConnectionClosed:
        self.sock.settimeout(timeout)
        while True:
            event = self.conn.next_event()
            if event is not NEED_DATA:
                return event  # type: ignore[return-value]
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                data = b""
            self.conn.receive_data(data)

    def closed_by_server(self, timeout: float = 10.0) -> bool:
        """True when the server closes the connection (EOF) without sending more."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(65536) == b""
        except (ConnectionResetError, ssl.SSLError, OSError):
            return True

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
