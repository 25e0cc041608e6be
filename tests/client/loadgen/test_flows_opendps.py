"""The lean HTTPS and MQTT registrations against a real ``opendps serve``: symmetric keys and
X.509 certificates register, and refusals come back labelled as the error table shows them."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from integration.servers import ServerProcess
from opendps.client.loadgen import (
    DeviceFleet,
    RegisterLoad,
    RegisterTarget,
    provision,
    run_register,
)
from opendps.client.loadgen.register import register_one
from opendps.client.loadgen.stats import error_code
from opendps.client.service import DpsServiceClient

TRANSPORTS = ["https", "mqtt"]


def target(server: ServerProcess, **changes: Any) -> RegisterTarget:
    return dataclasses.replace(RegisterTarget(server.host, server.id_scope), **changes)


async def new_fleet(server: ServerProcess, attestation: str,
                    create: bool = True) -> DeviceFleet:
    fleet = DeviceFleet.new(attestation, server.info["caCertificate"])
    if create:
        async with DpsServiceClient.from_connection_string(
                server.info["serviceConnectionString"],
                ca_file=server.info["caCertificate"]) as service:
            await fleet.create_group(service)
    return fleet


def load(transport: str, devices: int = 1, **kwargs: Any) -> RegisterLoad:
    return RegisterLoad(transport, devices, concurrency=4, poll_immediately=True, timeout=15,
                        **kwargs)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_symmetric_key_devices_register(opendps_server: ServerProcess,
                                              transport: str) -> None:
    fleet = await new_fleet(opendps_server, "symmetric-key")
    result = await run_register(target(opendps_server), load(transport, 12), fleet,
                                server_pids=[opendps_server.proc.pid])
    assert (result["completed"], result["errors"]) == (12, {})
    assert result["client_cpu_ms_per_registration"] > 0
    status = await register_one(target(opendps_server), load(transport), fleet.identity(0))
    state = status["registrationState"]
    assert status["status"] == "assigned"
    assert (state["deviceId"], state["assignedHub"]) == (fleet.registration_id(0),
                                                         opendps_server.host)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_x509_devices_register(opendps_server: ServerProcess, transport: str) -> None:
    fleet = await new_fleet(opendps_server, "x509")
    try:
        result = await run_register(target(opendps_server), load(transport, 4), fleet)
        assert (result["completed"], result["errors"]) == (4, {})
    finally:
        fleet.cleanup()


@pytest.mark.parametrize(("transport", "label"), [("https", "401002"),
                                                  ("mqtt", "ConnectRefused")])
async def test_a_wrong_key_is_refused(opendps_server: ServerProcess, transport: str,
                                      label: str) -> None:
    """DPS answers HTTPS with 401 and errorCode 401002; MQTT refuses the CONNECT (rc 5)."""
    fleet = await new_fleet(opendps_server, "symmetric-key")
    fleet.group_key = (await new_fleet(opendps_server, "symmetric-key", create=False)).group_key
    result = await run_register(target(opendps_server), load(transport, 2), fleet)
    assert (result["completed"], result["errors"]) == (0, {label: 2})
    with pytest.raises(Exception) as caught:
        await register_one(target(opendps_server), load(transport), fleet.identity(0))
    if transport == "https":
        assert (caught.value.status, caught.value.error_code) == (401, 401002)
    else:
        assert caught.value.return_code == 5


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_certificate_no_enrollment_knows_is_refused(opendps_server: ServerProcess,
                                                            transport: str) -> None:
    """The handshake passes (any chain is accepted), the engine answers 401002."""
    fleet = await new_fleet(opendps_server, "x509", create=False)
    try:
        result = await run_register(target(opendps_server), load(transport, 2), fleet)
        assert (result["completed"], result["errors"]) == (0, {"401002": 2})
    finally:
        fleet.cleanup()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_host_name_the_server_certificate_lacks(opendps_server: ServerProcess,
                                                        transport: str) -> None:
    fleet = await new_fleet(opendps_server, "symmetric-key")
    wrong = target(opendps_server, host="dps.wrong.example", connect_host=opendps_server.host)
    result = await run_register(wrong, load(transport, 2), fleet)
    assert result["errors"] == {"tls CERTIFICATE_VERIFY_FAILED": 2}
    with pytest.raises(Exception, match="Hostname mismatch") as caught:
        await register_one(wrong, load(transport), fleet.identity(0))
    assert error_code(caught.value) == "tls CERTIFICATE_VERIFY_FAILED"


async def test_an_untrusted_server_certificate(opendps_server: ServerProcess,
                                               stranger_ca: Path) -> None:
    fleet = await new_fleet(opendps_server, "symmetric-key")
    fleet.ca_file = str(stranger_ca)
    for transport in TRANSPORTS:
        result = await run_register(target(opendps_server), load(transport, 1), fleet)
        assert result["errors"] == {"tls CERTIFICATE_VERIFY_FAILED": 1}


async def test_provision_for_the_hub_loads(opendps_server: ServerProcess) -> None:
    fleet = await new_fleet(opendps_server, "symmetric-key")
    devices = await provision(target(opendps_server), fleet, 5, concurrency=2)
    assert sorted(d.device_id for d in devices) == [fleet.registration_id(i) for i in range(5)]
    assert {d.hub_host for d in devices} == {opendps_server.host}
    assert all(d.key for d in devices)
