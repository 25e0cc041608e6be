"""CLI commands without opendps's server: offline key derivation, and service commands against
a scripted HTTPS server found through a data directory's info.json."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from click.testing import CliRunner, Result

from opendps import pki
from opendps.cli.hub import az_event
from opendps.cli.main import cli
from opendps.protocol import sas

from .conftest import DPS_KEY, HUB_KEY
from .fake_https import FakeHttps, Seen, reply

DOC_KEY = "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw=="
DOC_REG = "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6"
DOC_DERIVED = "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="
CLEAN_ENV: dict[str, str | None] = {
    name: None for name in ("OPENDPS_CONNECTION_STRING", "OPENDPS_HUB_CONNECTION_STRING",
                            "OPENDPS_CA_FILE", "OPENDPS_DATA_DIR", "OPENDPS_HUB_HOST_NAMES",
                            "OPENDPS_DPS_HOST_NAME", "OPENDPS_DATABASE_URL", "OPENDPS_BIND")}


def invoke(*args: str, data_dir: Path | None = None,
           extra_env: dict[str, str] | None = None) -> Result:
    env = dict(CLEAN_ENV)
    env.update(extra_env or {})
    if data_dir is not None:
        env["OPENDPS_DATA_DIR"] = str(data_dir)
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_compute_device_key_matches_the_documented_vector() -> None:
    result = invoke("compute-device-key", "--key", DOC_KEY, "--registration-id", DOC_REG)
    assert result.exit_code == 0
    assert result.stdout.strip() == DOC_DERIVED


def test_compute_device_key_rejects_a_bad_key() -> None:
    result = invoke("compute-device-key", "--key", "not base64!", "--registration-id", "x")
    assert result.exit_code == 2
    assert "not valid base64" in result.stderr


@pytest.mark.parametrize("command", [
    [], ["serve"], ["info"], ["enrollment", "create"], ["enrollment-group", "update"],
    ["registration", "list"], ["hub", "device", "list"], ["hub", "twin", "update"],
    ["hub", "monitor-events"], ["device", "simulate"], ["certificate"],
    ["certificate", "upload"], ["certificate", "verify"], ["certificate", "verification-code"],
])
def test_help(command: list[str]) -> None:
    result = invoke(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout


def test_group_create_sends_a_symmetric_key_body(server: FakeHttps, data_dir: Path) -> None:
    server.routes[("GET", "/enrollmentGroups/grp-1")] = reply(
        {"errorCode": 404204, "trackingId": "t", "message": "not found"}, status=404)
    created = {"enrollmentGroupId": "grp-1", "etag": '"e1"',
               "attestation": {"type": "symmetricKey",
                               "symmetricKey": {"primaryKey": "pk", "secondaryKey": "sk"}}}
    server.routes[("PUT", "/enrollmentGroups/grp-1")] = reply(created)
    result = invoke("enrollment-group", "create", "--group-id", "grp-1", "--edge",
                    "--initial-twin-tags", '{"site": "lab"}',
                    "--initial-twin-desired", '{"fw": "1.0"}', "--iot-hub", "127.0.0.1",
                    "--json", data_dir=data_dir)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == created
    put = server.seen[-1]
    assert put.body == {
        "enrollmentGroupId": "grp-1",
        "attestation": {"type": "symmetricKey", "symmetricKey": {}},
        "capabilities": {"iotEdge": True},
        "initialTwin": {"tags": {"site": "lab"}, "properties": {"desired": {"fw": "1.0"}}},
        "iotHubs": ["127.0.0.1"], "allocationPolicy": "static",
    }
    assert "If-Match" not in put.headers
    token = sas.parse(put.headers["Authorization"])
    assert (token.resource, token.key_name) == ("127.0.0.1", "provisioningserviceowner")
    assert sas.signature_matches(token, [DPS_KEY])


def test_create_refuses_to_overwrite(server: FakeHttps, data_dir: Path) -> None:
    server.routes[("GET", "/enrollments/dev-1")] = reply({"registrationId": "dev-1"})
    result = invoke("enrollment", "create", "--registration-id", "dev-1", data_dir=data_dir)
    assert result.exit_code == 1
    assert "already exists" in result.stderr
    assert [s.method for s in server.seen] == ["GET"]


def test_update_keeps_keys_and_sends_the_etag(server: FakeHttps, data_dir: Path) -> None:
    stored = {"registrationId": "dev-1", "deviceId": "dev-1", "etag": '"e7"',
              "attestation": {"type": "symmetricKey", "symmetricKey": {}},
              "provisioningStatus": "enabled", "createdDateTimeUtc": "x"}
    keys = {"type": "symmetricKey", "symmetricKey": {"primaryKey": "p", "secondaryKey": "s"}}
    server.routes[("GET", "/enrollments/dev-1")] = reply(stored)
    server.routes[("POST", "/enrollments/dev-1/attestationmechanism")] = reply(keys)
    server.routes[("PUT", "/enrollments/dev-1")] = lambda seen: web.json_response(seen.body)
    result = invoke("enrollment", "update", "--registration-id", "dev-1", "--disabled",
                    "--json", data_dir=data_dir)
    assert result.exit_code == 0, result.output
    put = server.seen[-1]
    assert put.headers["If-Match"] == '"e7"'
    assert put.body == {"registrationId": "dev-1", "deviceId": "dev-1", "attestation": keys,
                        "provisioningStatus": "disabled"}


def test_show_keys_uses_the_attestation_call(server: FakeHttps, data_dir: Path) -> None:
    server.routes[("GET", "/enrollments/dev-1")] = reply(
        {"registrationId": "dev-1", "attestation": {"type": "symmetricKey"}})
    server.routes[("POST", "/enrollments/dev-1/attestationmechanism")] = reply(
        {"type": "symmetricKey", "symmetricKey": {"primaryKey": "p", "secondaryKey": "s"}})
    plain = invoke("enrollment", "show", "--registration-id", "dev-1", "--json",
                   data_dir=data_dir)
    with_keys = invoke("enrollment", "show", "--registration-id", "dev-1", "--show-keys",
                       "--json", data_dir=data_dir)
    assert "primaryKey" not in plain.stdout
    assert json.loads(with_keys.stdout)["attestation"]["symmetricKey"]["primaryKey"] == "p"


def test_list_renders_a_table_and_json(server: FakeHttps, data_dir: Path) -> None:
    items = [{"registrationId": f"dev-{n}", "provisioningStatus": "enabled",
              "attestation": {"type": "symmetricKey"}} for n in range(3)]
    server.routes[("POST", "/enrollments/query")] = reply(items)
    table = invoke("enrollment", "list", data_dir=data_dir)
    as_json = invoke("enrollment", "list", "--json", data_dir=data_dir)
    assert table.exit_code == 0 and "dev-2" in table.stdout and "symmetricKey" in table.stdout
    assert json.loads(as_json.stdout) == items


def test_server_errors_are_one_line_without_keys(server: FakeHttps, data_dir: Path) -> None:
    server.routes[("GET", "/registrations/ghost")] = reply(
        {"errorCode": 404201, "trackingId": "t", "message": "Registration not found"},
        status=404)
    result = invoke("registration", "show", "--registration-id", "ghost", data_dir=data_dir)
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: 404201: Registration not found"
    assert result.stdout == ""
    assert DPS_KEY not in result.stderr


def test_explicit_connection_string_and_ca(server: FakeHttps, tmp_path: Path) -> None:
    server.routes[("POST", "/registrations/grp/query")] = reply([{"registrationId": "d1"}])
    cs = f"HostName=localhost;SharedAccessKeyName=reader;SharedAccessKey={DPS_KEY}"
    result = invoke("registration", "list", "--group-id", "grp", "--connection-string", cs,
                    "--ca-file", str(server.tls.ca), "--port", str(server.port), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [{"registrationId": "d1"}]
    assert sas.parse(server.seen[0].headers["Authorization"]).key_name == "reader"


def test_untrusted_certificate_is_a_clear_error(server: FakeHttps, data_dir: Path,
                                                tmp_path: Path) -> None:
    other_ca = tmp_path / "other.pem"
    other_ca.write_text(pki.create_ca("someone else")[0])
    result = invoke("enrollment", "list", "--ca-file", str(other_ca), data_dir=data_dir)
    assert result.exit_code == 1
    assert "TLS certificate check failed" in result.stderr


def test_unreachable_server(data_dir: Path) -> None:
    result = invoke("enrollment", "list", "--port", "1", data_dir=data_dir)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: cannot connect to 127.0.0.1:1")


def test_hub_twin_update_patches_with_the_hub_policy(server: FakeHttps,
                                                     data_dir: Path) -> None:
    server.routes[("PATCH", "/twins/dev-1")] = lambda seen: web.json_response(
        {"deviceId": "dev-1", "tags": seen.body.get("tags")})
    result = invoke("hub", "twin", "update", "--device-id", "dev-1", "--tags", '{"a": 1}',
                    "--desired", '{"b": null}', "--json", data_dir=data_dir)
    assert result.exit_code == 0, result.output
    patch = server.seen[-1]
    assert patch.body == {"tags": {"a": 1}, "properties": {"desired": {"b": None}}}
    assert patch.query == {"api-version": "2021-04-12"}
    token = sas.parse(patch.headers["Authorization"])
    assert (token.key_name, sas.signature_matches(token, [HUB_KEY])) == ("iothubowner", True)


def test_bad_json_option_is_a_usage_error() -> None:
    result = invoke("hub", "twin", "update", "--device-id", "d", "--tags", "{oops")
    assert result.exit_code == 2
    assert "not valid JSON" in result.stderr


def test_monitor_events_prints_az_shaped_events(server: FakeHttps, data_dir: Path) -> None:
    lines = [{"seq": n, "hub": "127.0.0.1", "origin": "dev-1", "payload": f'{{"n": {n}}}',
              "enqueuedTimeUtc": "t", "properties": {"system": {"content-type": "json"},
                                                     "application": {"k": "v"}}}
             for n in (1, 2)]
    body = "".join(json.dumps(line) + "\n" for line in lines)
    server.routes[("GET", "/opendps/events")] = lambda seen: web.Response(
        text=body, content_type="application/x-ndjson")
    result = invoke("hub", "monitor-events", "--device-id", "dev-1", "--properties",
                    "--timeout", "5", "--json", data_dir=data_dir)
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[0] == {"event": {"origin": "dev-1", "module": "", "interface": "",
                                   "component": "", "payload": {"n": 1},
                                   "properties": {"system": {"content-type": "json"},
                                                  "application": {"k": "v"}}}}
    assert len(events) == 2
    assert server.seen[0].query["deviceId"] == "dev-1"
    assert server.seen[0].query["follow"] == "true"


def test_monitor_events_timeout_exits_zero(server: FakeHttps, data_dir: Path) -> None:
    async def slow(seen: Seen) -> Any:
        await asyncio.sleep(3)
        return web.json_response([])

    server.routes[("GET", "/opendps/events")] = slow  # type: ignore[assignment]
    result = invoke("hub", "monitor-events", "--timeout", "0.5", data_dir=data_dir)
    assert result.exit_code == 0, result.output


def test_az_event_keeps_non_json_payloads() -> None:
    shaped = az_event({"origin": "d", "payload": "plain text"}, with_properties=False)
    assert shaped == {"event": {"origin": "d", "module": "", "interface": "",
                                "component": "", "payload": "plain text"}}


def test_info_bootstraps_once_and_keeps_the_hubs(tmp_path: Path) -> None:
    data = tmp_path / "fresh"
    first = invoke("info", "--json", "--data-dir", str(data),
                   extra_env={"OPENDPS_HUB_HOST_NAMES": "127.0.0.5"})
    assert first.exit_code == 0, first.output
    # a later run without the server's environment must not link a default 'localhost' hub
    second = invoke("info", "--json", "--data-dir", str(data))
    table = invoke("info", "--data-dir", str(data))
    one, two = json.loads(first.stdout), json.loads(second.stdout)
    assert one["idScope"] == two["idScope"]
    assert [h["hostName"] for h in two["hubs"]] == ["127.0.0.5"]
    assert Path(two["caCertificate"]).is_file()
    assert one["idScope"] in table.stdout
