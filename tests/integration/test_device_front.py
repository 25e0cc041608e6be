"""The device routes' own HTTP layer (api/device_front.py) on a real server: keep-alive and
pipelining, the hand-over of other requests to aiohttp, bodies in chunks, 100-continue,
oversized and malformed requests. Raw TLS sockets, so every byte is the test's."""

from __future__ import annotations

import json
import socket
import ssl
import uuid
from http.client import HTTPSConnection

import pytest

from .ca_rest import owner_headers
from .raw import API, device_token, tls_context
from .sdk_helpers import symmetric_key_enrollment


@pytest.fixture(scope="module")
def server(opendps_server):  # type: ignore[no-untyped-def]
    return opendps_server


@pytest.fixture(scope="module")
def enrollment(server):  # type: ignore[no-untyped-def]
    return symmetric_key_enrollment(server, "front")


def _tls(server) -> ssl.SSLSocket:  # type: ignore[no-untyped-def]
    raw = socket.create_connection((server.host, 443), timeout=10)
    return tls_context(server).wrap_socket(raw, server_hostname=server.host)


def _register_bytes(server, registration_id: str, token: str, *,  # type: ignore[no-untyped-def]
                    extra: str = "", body: bytes | None = None) -> bytes:
    body = body if body is not None else json.dumps({"registrationId": registration_id}).encode()
    return (f"PUT /{server.id_scope}/registrations/{registration_id}/register?api-version={API}"
            f" HTTP/1.1\r\nHost: {server.host}\r\nAuthorization: {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
            ).encode() + body


def _get_bytes(server, path: str, headers: dict[str, str]) -> bytes:  # type: ignore[no-untyped-def]
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return f"GET {path} HTTP/1.1\r\nHost: {server.host}\r\n{lines}\r\n".encode()


def _responses(sock: ssl.SSLSocket, count: int) -> list[tuple[int, dict[str, str], bytes]]:
    """Read ``count`` responses (each with a Content-Length) off one connection, in order."""
    reader = sock.makefile("rb")
    out = []
    for _ in range(count):
        status = int(reader.readline().split()[1])
        headers = {}
        while (line := reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        out.append((status, headers, reader.read(int(headers["content-length"]))))
    return out


def _closed(sock: ssl.SSLSocket) -> bool:
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, ssl.SSLError):
        return True


def test_device_answers_carry_the_services_headers(server, enrollment) -> None:  # type: ignore[no-untyped-def]
    registration_id, key = enrollment
    with _tls(server) as sock:
        sock.sendall(_register_bytes(server, registration_id,
                                     device_token(server, registration_id, key)))
        [(status, headers, body)] = _responses(sock, 1)
    doc = json.loads(body)
    assert status == 202 and doc["status"] == "assigning"
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert headers["retry-after"] == "3"
    assert headers["location"] == (f"/{server.id_scope}/registrations/{registration_id}"
                                   f"/operations/{doc['operationId']}")
    assert headers["x-opendps-instance"] and headers["date"].endswith("GMT")


def test_pipelined_device_requests_are_answered_in_order(server, enrollment) -> None:  # type: ignore[no-untyped-def]
    registration_id, key = enrollment
    token = device_token(server, registration_id, key)
    unknown_op = (f"/{server.id_scope}/registrations/{registration_id}/operations/"
                  f"4.0000000000000000.{uuid.uuid4()}?api-version={API}")
    with _tls(server) as sock:
        sock.sendall(_register_bytes(server, registration_id, token)
                     + _get_bytes(server, unknown_op, {"Authorization": token})
                     + _register_bytes(server, registration_id, token))
        answers = _responses(sock, 3)
        assert [a[0] for a in answers] == [202, 404, 202]
        assert json.loads(answers[1][2])["errorCode"] == 404202  # operation not found
        first, last = (json.loads(answers[i][2])["operationId"] for i in (0, 2))
        assert first != last
        # and the connection is still good for one more
        sock.sendall(_get_bytes(server, f"/{server.id_scope}/registrations/{registration_id}"
                                f"/operations/{last}?api-version={API}",
                                {"Authorization": token}))
        [(status, _, body)] = _responses(sock, 1)
        assert status == 200 and json.loads(body)["status"] == "assigned"


def test_a_service_request_after_device_requests_goes_to_aiohttp(server, enrollment) -> None:  # type: ignore[no-untyped-def]
    """One keep-alive connection (as a pooled client makes): device, service, device."""
    registration_id, key = enrollment
    token = device_token(server, registration_id, key)
    conn = HTTPSConnection(server.host, 443, context=tls_context(server), timeout=10)
    try:
        path = f"/{server.id_scope}/registrations/{registration_id}/register?api-version={API}"
        body = json.dumps({"registrationId": registration_id})
        conn.request("PUT", path, body, {"Authorization": token,
                                         "Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 202, resp.read()
        resp.read()
        sock = conn.sock
        conn.request("GET", f"/enrollments/{registration_id}?api-version=2021-10-01",
                     headers=owner_headers(server))
        resp = conn.getresponse()
        doc = json.loads(resp.read())
        assert resp.status == 200 and doc["registrationId"] == registration_id
        assert resp.getheader("x-opendps-instance")
        conn.request("PUT", path, body, {"Authorization": token,
                                         "Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 202 and json.loads(resp.read())["status"] == "assigning"
        assert conn.sock is sock  # all three on the one connection
    finally:
        conn.close()


def test_a_service_first_connection_serves_device_requests_too(server, enrollment) -> None:  # type: ignore[no-untyped-def]
    registration_id, key = enrollment
    token = device_token(server, registration_id, key)
    with _tls(server) as sock:
        sock.sendall(_get_bytes(server, f"/enrollments/{registration_id}?api-version=2021-10-01",
                                owner_headers(server)))
        [(status, _, body)] = _responses(sock, 1)
        assert status == 200 and json.loads(body)["registrationId"] == registration_id
        sock.sendall(_register_bytes(server, registration_id, token))
        [(status, _, body)] = _responses(sock, 1)
        assert status == 202 and json.loads(body)["status"] == "assigning"


def test_a_service_request_pipelined_behind_a_device_one_is_closed_on(server, enrollment) -> None:  # type: ignore[no-untyped-def]
    """Its bytes cannot be cut out of the parser's input: answered what came before, then
    the connection closes (RFC 9112 9.3.2: the client retries the rest)."""
    registration_id, key = enrollment
    with _tls(server) as sock:
        sock.sendall(_register_bytes(server, registration_id,
                                     device_token(server, registration_id, key))
                     + _get_bytes(server, f"/enrollments/{registration_id}"
                                  "?api-version=2021-10-01", owner_headers(server)))
        [(status, _, _)] = _responses(sock, 1)
        assert status == 202
        assert _closed(sock)


def test_chunked_body_with_expect_continue(server, enrollment) -> None:  # type: ignore[no-untyped-def]
    registration_id, key = enrollment
    body = json.dumps({"registrationId": registration_id, "payload": {"a": 1}}).encode()
    head = (f"PUT /{server.id_scope}/registrations/{registration_id}/register?api-version={API}"
            f" HTTP/1.1\r\nHost: {server.host}\r\n"
            f"Authorization: {device_token(server, registration_id, key)}\r\n"
            "Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n").encode()
    with _tls(server) as sock:
        sock.sendall(head)
        assert sock.recv(64).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        half = len(body) // 2
        for piece in (body[:half], body[half:]):
            sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        sock.sendall(b"0\r\n\r\n")
        [(status, _, answer)] = _responses(sock, 1)
    assert status == 202 and json.loads(answer)["status"] == "assigning"


def test_oversized_body_is_413_at_once_and_the_server_serves_on(server, enrollment) -> None:  # type: ignore[no-untyped-def]
    """Answered as soon as the body passes 96 KiB, without waiting for (or reading) the rest,
    which a hostile client could make endless."""
    registration_id, key = enrollment
    token = device_token(server, registration_id, key)
    head = (f"PUT /{server.id_scope}/registrations/{registration_id}/register?api-version={API}"
            f" HTTP/1.1\r\nHost: {server.host}\r\nAuthorization: {token}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n").encode()
    piece = b"x" * 16_000
    with _tls(server) as sock:
        sock.sendall(head)
        for _ in range(7):  # 112 KB, and no last chunk
            sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        [(status, headers, body)] = _responses(sock, 1)
        doc = json.loads(body)
        assert status == 413 and doc["errorCode"] == 413002
        assert headers["x-ms-error-code"] == "413002" and doc["trackingId"]
        assert headers["connection"] == "close" and _closed(sock)
    with _tls(server) as sock:
        sock.sendall(_register_bytes(server, registration_id, token))
        [(status, _, _)] = _responses(sock, 1)
        assert status == 202


def test_malformed_request_gets_a_dps_400_and_a_close(server, enrollment) -> None:  # type: ignore[no-untyped-def]
    registration_id, key = enrollment
    with _tls(server) as sock:
        sock.sendall(_register_bytes(server, registration_id,
                                     device_token(server, registration_id, key))
                     + b"PUT /x HTTP/1.1\r\nContent-Length: many\r\n\r\n")
        (status, _, _), (bad, headers, body) = _responses(sock, 2)
        assert status == 202
        doc = json.loads(body)
        assert bad == 400 and doc["errorCode"] == 400000 and doc["timestampUtc"]
        assert headers["connection"] == "close" and _closed(sock)


def test_connection_close_is_honoured(server, enrollment) -> None:  # type: ignore[no-untyped-def]
    registration_id, key = enrollment
    with _tls(server) as sock:
        sock.sendall(_register_bytes(server, registration_id,
                                     device_token(server, registration_id, key),
                                     extra="Connection: close\r\n"))
        [(status, headers, _)] = _responses(sock, 1)
        assert status == 202 and headers["connection"] == "close"
        assert _closed(sock)


def test_a_wrong_token_learns_nothing_here_either(server, enrollment) -> None:  # type: ignore[no-untyped-def]
    registration_id, _ = enrollment
    token = device_token(server, registration_id, "AAAA" * 11)
    with _tls(server) as sock:
        sock.sendall(_register_bytes(server, registration_id, token)
                     + _register_bytes(server, "no-such-device", device_token(
                         server, "no-such-device", "AAAA" * 11)))
        answers = _responses(sock, 2)
    assert [a[0] for a in answers] == [401, 401]
    assert {json.loads(a[2])["message"] for a in answers} == {"Unauthorized"}
