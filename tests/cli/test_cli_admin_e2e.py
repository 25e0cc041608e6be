"""Linked hubs and deprovisioning as a user runs them (subprocesses) against a real
``opendps serve``: list and change the built-in hub, a refused link, and deprovisioning of a
group device and of an individual enrollment, checked from every side (DPS, hub, device)."""

from __future__ import annotations

import json
import subprocess
import uuid
from typing import Any

from .test_cli_e2e import ok, opendps

BAD_KEY = "YSB3cm9uZyBrZXkgZm9yIGEgaHViIHRoYXQgaXMgbm90IHRoZXJl"


def fails(result: subprocess.CompletedProcess[str]) -> str:
    """The one-line error of a command that must fail."""
    assert result.returncode == 1, f"exit {result.returncode}: {result.stdout}{result.stderr}"
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr.strip()


def hubs(server: Any) -> list[dict[str, Any]]:
    return json.loads(ok(opendps(server, "hub", "list", "--json")))


def simulate(server: Any, reg_id: str, *key: str) -> subprocess.CompletedProcess[str]:
    return opendps(server, "device", "simulate", "--registration-id", reg_id, *key,
                   "--count", "1", "--interval", "0", "--timeout", "15", "--json")


def test_hub_list_shows_the_built_in_hub(opendps_server: Any) -> None:
    listed = hubs(opendps_server)
    assert [(h["name"], h["builtIn"]) for h in listed] == [(opendps_server.host, True)]
    assert listed[0]["connectionString"] is None
    table = ok(opendps(opendps_server, "hub", "list"))
    assert opendps_server.host in table and "built-in" in table


def test_hub_update_changes_weight_and_location(opendps_server: Any) -> None:
    updated = json.loads(ok(opendps(opendps_server, "hub", "update", opendps_server.host,
                                    "--weight", "5", "--location", "lab-west", "--json")))
    assert (updated["allocationWeight"], updated["location"]) == (5, "lab-west")
    [hub] = hubs(opendps_server)
    assert hub == {**hub, "name": opendps_server.host, "builtIn": True, "allocationWeight": 5,
                   "applyAllocationPolicy": True, "location": "lab-west"}


def test_hub_link_with_bad_credentials_is_refused(opendps_server: Any) -> None:
    cs = f"HostName=localhost;SharedAccessKeyName=iothubowner;SharedAccessKey={BAD_KEY}"
    error = fails(opendps(opendps_server, "hub", "link", "localhost", "--connection-string",
                          cs))
    assert error.startswith("Error: 400"), error
    assert BAD_KEY not in error
    assert [h["name"] for h in hubs(opendps_server)] == [opendps_server.host]


def test_deprovision_a_group_device(opendps_server: Any) -> None:
    group_id = f"grp-{uuid.uuid4().hex[:8]}"
    reg_id = f"dev-{uuid.uuid4().hex[:8]}"
    group = json.loads(ok(opendps(opendps_server, "enrollment-group", "create", "--group-id",
                                  group_id, "--json")))
    group_key = group["attestation"]["symmetricKey"]["primaryKey"]
    first = json.loads(ok(simulate(opendps_server, reg_id, "--group-key", group_key)))
    assert first["assignedHub"] == opendps_server.host
    listed = json.loads(ok(opendps(opendps_server, "enrollment-group", "registration", "list",
                                   "--group-id", group_id, "--json")))
    assert [r["registrationId"] for r in listed] == [reg_id]

    out = ok(opendps(opendps_server, "device", "deprovision", reg_id)).splitlines()
    assert out[0] == f"deprovisioned {reg_id}"
    assert f"blocked in group {group_id}" in out[1]
    assert out[2:] == [f"  hub identity: deleted from {opendps_server.host}",
                       "  registration record: deleted"]

    assert "404" in fails(opendps(opendps_server, "registration", "show",
                                  "--registration-id", reg_id))
    assert "DeviceNotFound" in fails(opendps(opendps_server, "hub", "device", "show",
                                             "--device-id", reg_id))
    blocked = json.loads(ok(opendps(opendps_server, "enrollment", "show", "--registration-id",
                                    reg_id, "--json")))
    assert blocked["provisioningStatus"] == "disabled"
    fails(simulate(opendps_server, reg_id, "--group-key", group_key))
    assert json.loads(ok(opendps(opendps_server, "enrollment-group", "registration", "list",
                                 "--group-id", group_id, "--json"))) == []


def test_deprovision_an_individual_enrollment_with_disable(opendps_server: Any) -> None:
    reg_id = f"ind-{uuid.uuid4().hex[:8]}"
    created = json.loads(ok(opendps(opendps_server, "enrollment", "create",
                                    "--registration-id", reg_id, "--json")))
    key = created["attestation"]["symmetricKey"]["primaryKey"]
    ok(simulate(opendps_server, reg_id, "--key", key))

    answer = json.loads(ok(opendps(opendps_server, "device", "deprovision", reg_id,
                                   "--disable", "--json")))
    assert answer == {"registrationId": reg_id, "enrollment": "disabled",
                      "hubIdentity": f"deleted from {opendps_server.host}",
                      "registrationRecord": "deleted"}
    kept = json.loads(ok(opendps(opendps_server, "enrollment", "show", "--registration-id",
                                 reg_id, "--json")))
    assert kept["provisioningStatus"] == "disabled"
    assert "DeviceNotFound" in fails(opendps(opendps_server, "hub", "device", "show",
                                             "--device-id", reg_id))
    fails(simulate(opendps_server, reg_id, "--key", key))


def test_deprovision_without_disable_deletes_the_enrollment(opendps_server: Any) -> None:
    reg_id = f"ind-{uuid.uuid4().hex[:8]}"
    ok(opendps(opendps_server, "enrollment", "create", "--registration-id", reg_id))
    out = ok(opendps(opendps_server, "device", "deprovision", reg_id))
    assert "  enrollment: deleted" in out.splitlines()
    assert "404" in fails(opendps(opendps_server, "enrollment", "show", "--registration-id",
                                  reg_id))
    assert "404" in fails(opendps(opendps_server, "device", "deprovision", reg_id))


def test_hub_create_and_unlink(opendps_server: Any) -> None:
    """Last: a second built-in hub joins allocation unless excluded."""
    name = f"hub-{uuid.uuid4().hex[:6]}.opendps.test"
    created = opendps(opendps_server, "hub", "create", name, "--no-allocation", "--json")
    hub = json.loads(ok(created))
    assert (hub["name"], hub["builtIn"], hub["applyAllocationPolicy"]) == (name, True, False)
    assert "make it resolve to this server" in created.stderr
    assert name in [h["name"] for h in hubs(opendps_server)]
    ok(opendps(opendps_server, "hub", "unlink", name))
    assert [h["name"] for h in hubs(opendps_server)] == [opendps_server.host]
