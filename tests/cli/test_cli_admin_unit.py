"""Linked hubs (``hub link|create|update|unlink|list``), ``device deprovision`` and
``enrollment-group registration …`` against the scripted HTTPS server: exact requests, output
and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from click.testing import CliRunner

from opendps.cli.main import cli
from opendps.protocol import sas

from .conftest import DPS_KEY
from .fake_https import FakeHttps, reply
from .test_cli_unit import CLEAN_ENV, invoke

HUBS = "/opendps/linkedHubs"
EXT = "hub-2.example.net"
EXT_KEY = "ZXh0ZXJuYWwgaHViIGtleSBmb3IgdGhlIGNsaSB0ZXN0cw=="
EXT_CS = f"HostName={EXT};SharedAccessKeyName=iothubowner;SharedAccessKey={EXT_KEY}"
BUILT_IN = {"name": "127.0.0.1", "builtIn": True, "connectionString": None,
            "allocationWeight": 1, "applyAllocationPolicy": True, "location": ""}
EXTERNAL = {"name": EXT, "builtIn": False, "allocationWeight": 3,
            "applyAllocationPolicy": True, "location": "westeurope",
            "connectionString": f"HostName={EXT};SharedAccessKeyName=iothubowner;"
                                "SharedAccessKey=****"}


def echo_hub(status: int = 200) -> Any:
    """Answer a PUT as the server would: the stored hub, rendered."""
    def answer(seen: Any) -> web.Response:
        body = {"name": seen.path.rsplit("/", 1)[1], "builtIn": False, "allocationWeight": 1,
                "applyAllocationPolicy": True, "location": "", "connectionString": None}
        body.update({k: v for k, v in seen.body.items() if k != "connectionString"})
        return web.json_response(body, status=status)
    return answer


@pytest.mark.parametrize("command", [
    ["hub"], ["hub", "list"], ["hub", "link"], ["hub", "create"], ["hub", "update"],
    ["hub", "unlink"], ["device", "deprovision"], ["enrollment-group", "registration"],
    ["enrollment-group", "registration", "list"],
])
def test_help(command: list[str]) -> None:
    result = invoke(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout


# -- hub list ---------------------------------------------------------------------------------
def test_hub_list_table_and_json(server: FakeHttps, data_dir: Path) -> None:
    server.routes[("GET", HUBS)] = reply({"value": [BUILT_IN, EXTERNAL]})
    table = invoke("hub", "list", data_dir=data_dir)
    as_json = invoke("hub", "list", "--json", data_dir=data_dir)
    assert table.exit_code == 0, table.output
    header = table.stdout.splitlines()[1]
    assert [h.strip() for h in header.strip("┃ ").split("┃")] == [
        "name", "built-in", "weight", "allocation", "location"]
    row = next(line for line in table.stdout.splitlines() if EXT in line)
    assert [c.strip() for c in row.strip("│ ").split("│")] == [
        EXT, "False", "3", "True", "westeurope"]
    assert json.loads(as_json.stdout) == [BUILT_IN, EXTERNAL]
    seen = server.seen[0]
    assert seen.query == {"api-version": "2021-10-01"}
    token = sas.parse(seen.headers["Authorization"])
    assert (token.resource, token.key_name) == ("127.0.0.1", "provisioningserviceowner")
    assert sas.signature_matches(token, [DPS_KEY])


def test_hub_list_takes_the_dps_connection_string(server: FakeHttps) -> None:
    server.routes[("GET", HUBS)] = reply({"value": []})
    cs = f"HostName=localhost;SharedAccessKeyName=admin;SharedAccessKey={DPS_KEY}"
    result = invoke("hub", "list", "--dps-connection-string", cs, "--ca-file",
                    str(server.tls.ca), "--port", str(server.port))
    assert result.exit_code == 0, result.output
    assert "(none)" in result.stdout
    assert sas.parse(server.seen[0].headers["Authorization"]).key_name == "admin"


# -- hub link -----------------------------------------------------------------------------------
def test_hub_link_sends_the_connection_string(server: FakeHttps, data_dir: Path) -> None:
    server.routes[("GET", HUBS)] = reply({"value": [BUILT_IN]})
    server.routes[("PUT", f"{HUBS}/{EXT}")] = echo_hub(201)
    result = invoke("hub", "link", EXT, "--connection-string", EXT_CS, "--weight", "4",
                    "--no-allocation", "--location", "westeurope", "--json", data_dir=data_dir)
    assert result.exit_code == 0, result.output
    listed, put = server.seen
    assert (listed.method, put.method) == ("GET", "PUT")
    assert put.body == {"connectionString": EXT_CS, "builtIn": False, "allocationWeight": 4,
                        "applyAllocationPolicy": False, "location": "westeurope"}
    assert json.loads(result.stdout)["allocationWeight"] == 4
    assert EXT_KEY not in result.output


def test_hub_link_sends_only_what_is_given(server: FakeHttps, data_dir: Path) -> None:
    server.routes[("GET", HUBS)] = reply({"value": []})
    server.routes[("PUT", f"{HUBS}/{EXT}")] = echo_hub(201)
    result = invoke("hub", "link", EXT, "--connection-string", EXT_CS, data_dir=data_dir)
    assert result.exit_code == 0, result.output
    assert server.seen[-1].body == {"connectionString": EXT_CS, "builtIn": False}
    assert EXT in result.stdout


def test_hub_link_reads_the_connection_string_from_stdin(server: FakeHttps,
                                                         data_dir: Path) -> None:
    server.routes[("GET", HUBS)] = reply({"value": []})
    server.routes[("PUT", f"{HUBS}/{EXT}")] = echo_hub(201)
    env = {**CLEAN_ENV, "OPENDPS_DATA_DIR": str(data_dir)}
    result = CliRunner().invoke(cli, ["hub", "link", EXT, "--connection-string", "-"],
                                input=EXT_CS + "\n", env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert server.seen[-1].body["connectionString"] == EXT_CS


def test_hub_link_refuses_a_linked_name(server: FakeHttps, data_dir: Path) -> None:
    server.routes[("GET", HUBS)] = reply({"value": [BUILT_IN]})
    cs = f"HostName=127.0.0.1;SharedAccessKeyName=iothubowner;SharedAccessKey={EXT_KEY}"
    result = invoke("hub", "link", "127.0.0.1", "--connection-string", cs, data_dir=data_dir)
    assert result.exit_code == 1
    assert result.stderr.strip() == ("Error: hub 127.0.0.1 is already linked; "
                                     "use 'opendps hub update'")
    assert [s.method for s in server.seen] == ["GET"]


@pytest.mark.parametrize(("given", "expected"), [
    (EXT_KEY.rstrip("="), "malformed"),  # a pasted key: never echoed
    (EXT_KEY, "lacks hostname"),
    (f"HostName={EXT};SharedAccessKey={EXT_KEY}", "lacks sharedaccesskeyname"),
    (f"HostName=other.example.net;SharedAccessKeyName=o;SharedAccessKey={EXT_KEY}",
     "'other.example.net' is not 'hub-2.example.net'"),
])
def test_hub_link_checks_the_connection_string_locally(server: FakeHttps, data_dir: Path,
                                                       given: str, expected: str) -> None:
    result = invoke("hub", "link", EXT, "--connection-string", given, data_dir=data_dir)
    assert result.exit_code == 2
    assert expected in result.stderr
    assert EXT_KEY.rstrip("=") not in result.output
    assert server.seen == []


def test_hub_link_probe_failure_is_one_line(server: FakeHttps, data_dir: Path) -> None:
    server.routes[("GET", HUBS)] = reply({"value": []})
    message = f"the hub could not be used: IoT hub {EXT} refused the registry request: 401"
    server.routes[("PUT", f"{HUBS}/{EXT}")] = reply(
        {"errorCode": 400004, "trackingId": "t", "message": message}, status=400)
    result = invoke("hub", "link", EXT, "--connection-string", EXT_CS, data_dir=data_dir)
    assert result.exit_code == 1
    assert result.stderr == f"Error: 400004: {message}\n"
    assert result.stdout == ""


# -- hub create, update, unlink ---------------------------------------------------------------
def test_hub_create_is_built_in_and_explains(server: FakeHttps, data_dir: Path) -> None:
    server.routes[("GET", HUBS)] = reply({"value": [BUILT_IN]})
    server.routes[("PUT", f"{HUBS}/hub-3.lab")] = echo_hub(201)
    result = invoke("hub", "create", "hub-3.lab", "--weight", "2", "--location", "lab",
                    data_dir=data_dir)
    assert result.exit_code == 0, result.output
    assert server.seen[-1].body == {"builtIn": True, "allocationWeight": 2, "location": "lab"}
    assert "make it resolve to this server" in result.stdout
    assert "server certificate now covers hub-3.lab" in result.stdout

    as_json = invoke("hub", "create", "hub-3.lab", "--no-allocation", "--json",
                     data_dir=data_dir)
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout)["builtIn"] is True  # notes go to stderr
    assert "resolve to this server" in as_json.stderr
    assert server.seen[-1].body == {"builtIn": True, "applyAllocationPolicy": False}


def test_hub_update_sends_back_what_it_does_not_change(server: FakeHttps,
                                                       data_dir: Path) -> None:
    server.routes[("GET", HUBS)] = reply({"value": [BUILT_IN, EXTERNAL]})
    server.routes[("PUT", f"{HUBS}/127.0.0.1")] = echo_hub()
    server.routes[("PUT", f"{HUBS}/{EXT}")] = echo_hub()
    weighed = invoke("hub", "update", "127.0.0.1", "--weight", "5", "--location", "lab",
                     "--json", data_dir=data_dir)
    assert weighed.exit_code == 0, weighed.output
    assert server.seen[1].body == {"builtIn": True, "allocationWeight": 5,
                                   "applyAllocationPolicy": True, "location": "lab"}
    assert json.loads(weighed.stdout)["location"] == "lab"

    # an external hub keeps its credentials: the masked string is never sent back
    excluded = invoke("hub", "update", EXT.upper(), "--no-allocation", data_dir=data_dir)
    assert excluded.exit_code == 0, excluded.output
    assert server.seen[3].path == f"{HUBS}/{EXT}"  # the server's spelling
    assert server.seen[3].body == {"builtIn": False, "allocationWeight": 3,
                                   "applyAllocationPolicy": False, "location": "westeurope"}

    rotated = invoke("hub", "update", EXT, "--connection-string", EXT_CS, data_dir=data_dir)
    assert rotated.exit_code == 0, rotated.output
    assert server.seen[5].body["connectionString"] == EXT_CS


def test_hub_update_errors(server: FakeHttps, data_dir: Path) -> None:
    server.routes[("GET", HUBS)] = reply({"value": [BUILT_IN]})
    nothing = invoke("hub", "update", "127.0.0.1", data_dir=data_dir)
    assert nothing.exit_code == 2 and "nothing to change" in nothing.stderr
    missing = invoke("hub", "update", EXT, "--weight", "2", data_dir=data_dir)
    assert missing.exit_code == 1
    assert missing.stderr.strip() == f"Error: hub {EXT} is not linked (linked: 127.0.0.1)"
    cs = f"HostName=127.0.0.1;SharedAccessKeyName=o;SharedAccessKey={EXT_KEY}"
    built_in = invoke("hub", "update", "127.0.0.1", "--connection-string", cs,
                      data_dir=data_dir)
    assert built_in.exit_code == 2 and "is built in" in built_in.stderr
    assert [s.method for s in server.seen] == ["GET", "GET"]


def test_hub_unlink(server: FakeHttps, data_dir: Path) -> None:
    server.routes[("DELETE", f"{HUBS}/{EXT}")] = lambda seen: web.Response(status=204)
    done = invoke("hub", "unlink", EXT, data_dir=data_dir)
    assert (done.exit_code, done.stdout) == (0, f"unlinked hub {EXT}\n")
    server.routes[("DELETE", f"{HUBS}/{EXT}")] = reply(
        {"errorCode": 404000, "trackingId": "t", "message": f"IoT hub {EXT} is not linked"},
        status=404)
    gone = invoke("hub", "unlink", EXT, data_dir=data_dir)
    assert gone.exit_code == 1
    assert gone.stderr == f"Error: 404000: IoT hub {EXT} is not linked\n"


# -- device deprovision ---------------------------------------------------------------------
DEPROVISIONED = {"registrationId": "dev-1",
                 "enrollment": "blocked in group grp-1 by a disabled individual enrollment",
                 "hubIdentity": "deleted from 127.0.0.1", "registrationRecord": "deleted"}


def test_device_deprovision_prints_each_step(server: FakeHttps, data_dir: Path) -> None:
    server.routes[("POST", "/opendps/registrations/dev-1/deprovision")] = reply(DEPROVISIONED)
    result = invoke("device", "deprovision", "dev-1", data_dir=data_dir)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "deprovisioned dev-1",
        "  enrollment: blocked in group grp-1 by a disabled individual enrollment",
        "  hub identity: deleted from 127.0.0.1",
        "  registration record: deleted",
    ]
    seen = server.seen[0]
    assert seen.body == {"disable": False}
    assert seen.query == {"api-version": "2021-10-01"}
    assert sas.signature_matches(sas.parse(seen.headers["Authorization"]), [DPS_KEY])


def test_device_deprovision_disable_and_json(server: FakeHttps, data_dir: Path) -> None:
    answer = {"registrationId": "dev-2", "enrollment": "disabled"}
    server.routes[("POST", "/opendps/registrations/dev-2/deprovision")] = reply(answer)
    as_json = invoke("device", "deprovision", "dev-2", "--disable", "--json",
                     data_dir=data_dir)
    plain = invoke("device", "deprovision", "dev-2", "--disable", data_dir=data_dir)
    assert json.loads(as_json.stdout) == answer
    assert server.seen[0].body == {"disable": True}
    assert "  registration record: none (the device never registered)" in plain.stdout
    assert "  hub identity: none" in plain.stdout


def test_device_deprovision_unknown_is_one_line(server: FakeHttps, data_dir: Path) -> None:
    server.routes[("POST", "/opendps/registrations/ghost/deprovision")] = reply(
        {"errorCode": 404201, "trackingId": "t",
         "message": "ghost has neither an enrollment nor a registration record"}, status=404)
    result = invoke("device", "deprovision", "ghost", data_dir=data_dir)
    assert result.exit_code == 1
    assert result.stderr == ("Error: 404201: ghost has neither an enrollment nor a "
                             "registration record\n")


# -- enrollment-group registration ------------------------------------------------------------
def test_enrollment_group_registration_list_show_delete(server: FakeHttps,
                                                        data_dir: Path) -> None:
    states = [{"registrationId": "dev-1", "deviceId": "dev-1", "assignedHub": "127.0.0.1",
               "status": "assigned"}]
    server.routes[("POST", "/registrations/grp-1/query")] = reply(states)
    server.routes[("GET", "/registrations/dev-1")] = reply(states[0])
    server.routes[("DELETE", "/registrations/dev-1")] = lambda seen: web.Response(status=204)
    table = invoke("enrollment-group", "registration", "list", "--group-id", "grp-1",
                   data_dir=data_dir)
    as_json = invoke("enrollment-group", "registration", "list", "--group-id", "grp-1",
                     "--json", data_dir=data_dir)
    old_spelling = invoke("registration", "list", "--group-id", "grp-1", "--json",
                          data_dir=data_dir)
    shown = invoke("enrollment-group", "registration", "show", "--registration-id", "dev-1",
                   "--json", data_dir=data_dir)
    deleted = invoke("enrollment-group", "registration", "delete", "--registration-id",
                     "dev-1", data_dir=data_dir)
    assert table.exit_code == 0, table.output
    assert "dev-1" in table.stdout and "assigned" in table.stdout
    assert json.loads(as_json.stdout) == json.loads(old_spelling.stdout) == states
    assert json.loads(shown.stdout) == states[0]
    assert deleted.stdout == "deleted registration dev-1\n"
    assert [(s.method, s.path) for s in server.seen] == [
        ("POST", "/registrations/grp-1/query"), ("POST", "/registrations/grp-1/query"),
        ("POST", "/registrations/grp-1/query"), ("GET", "/registrations/dev-1"),
        ("DELETE", "/registrations/dev-1")]
