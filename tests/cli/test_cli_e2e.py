"""The CLI as a user runs it (a subprocess) against a real ``opendps serve``: create a group,
simulate a device with the group key, watch its telemetry, read its twin and registration."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

OPENDPS = Path(sys.executable).parent / "opendps"


def opendps(server: Any, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    command = [str(OPENDPS)] if OPENDPS.exists() else [sys.executable, "-m", "opendps"]
    return subprocess.run([*command, *args], env=server.env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def group(opendps_server: Any) -> dict[str, Any]:
    group_id = f"grp-{uuid.uuid4().hex[:8]}"
    created = json.loads(ok(opendps(
        opendps_server, "enrollment-group", "create", "--group-id", group_id,
        "--initial-twin-tags", '{"site": "lab-7"}', "--initial-twin-desired",
        '{"interval": 5}', "--json")))
    assert created["enrollmentGroupId"] == group_id
    return created


def test_group_device_flow(opendps_server: Any, group: dict[str, Any]) -> None:
    group_id = group["enrollmentGroupId"]
    group_key = group["attestation"]["symmetricKey"]["primaryKey"]
    reg_id = f"dev-{uuid.uuid4().hex[:8]}"

    summary = json.loads(ok(opendps(
        opendps_server, "device", "simulate", "--registration-id", reg_id,
        "--group-key", group_key, "--count", "3", "--interval", "0", "--json")))
    assert summary["assignedHub"] == opendps_server.host
    assert summary["deviceId"] == reg_id
    assert summary["messagesSent"] == 3
    assert summary["twin"]["desired"]["interval"] == 5
    assert summary["twin"]["reported"]["simulator"]["messagesSent"] == 3

    lines = ok(opendps(opendps_server, "hub", "monitor-events", "--device-id", reg_id,
                       "--properties", "--timeout", "3", "--json")).splitlines()
    events = [json.loads(line)["event"] for line in lines]
    assert [e["payload"]["messageNumber"] for e in events] == [1, 2, 3]
    assert {e["origin"] for e in events} == {reg_id}
    assert events[0]["properties"]["system"]["content-type"] == "application/json"

    twin = json.loads(ok(opendps(opendps_server, "hub", "twin", "show", "--device-id", reg_id,
                                 "--json")))
    assert twin["deviceId"] == reg_id
    assert twin["tags"] == {"site": "lab-7"}
    assert twin["properties"]["reported"]["simulator"]["messagesSent"] == 3

    registrations = json.loads(ok(opendps(opendps_server, "registration", "list",
                                          "--group-id", group_id, "--json")))
    assert [(r["registrationId"], r["status"]) for r in registrations] == [(reg_id, "assigned")]

    derived = ok(opendps(opendps_server, "compute-device-key", "--key", group_key,
                         "--registration-id", reg_id)).strip()
    device = json.loads(ok(opendps(opendps_server, "hub", "device", "show", "--device-id",
                                   reg_id, "--json")))
    assert device["authentication"]["symmetricKey"]["primaryKey"] == derived

    ok(opendps(opendps_server, "enrollment-group", "delete", "--group-id", group_id))
    gone = opendps(opendps_server, "enrollment-group", "show", "--group-id", group_id)
    assert gone.returncode == 1
    assert gone.stderr.startswith("Error: 404")
    assert group_key not in gone.stderr


def test_errors_are_one_line(opendps_server: Any) -> None:
    result = opendps(opendps_server, "registration", "show", "--registration-id", "no-such-dev")
    assert result.returncode == 1
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "404" in result.stderr


def test_info_matches_the_running_server(opendps_server: Any) -> None:
    info = json.loads(ok(opendps(opendps_server, "info", "--json")))
    assert info["idScope"] == opendps_server.info["idScope"]
    assert [h["hostName"] for h in info["hubs"]] == [opendps_server.host]
