"""X.509 devices: the client certificate goes into the TLS handshake (leaf + chain), the CONNECT
carries no password, and the usernames stay those of the symmetric-key flow (§2.1, §7.1)."""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from opendps.certs import (
    create_device_certificate,
    create_intermediate_ca,
    create_root_ca,
    generate_ec_key,
    private_key_to_pem,
)
from opendps.client.device import (
    DeviceSettings,
    DpsDeviceClient,
    HubDeviceClient,
    MqttError,
    hub_client_for,
    provision,
)
from opendps.client.tls import ClientCertificate, ClientCertificateError, client_ssl_context

from .fake_mqtt import StartServer, TlsFiles
from .test_dps_device import SCOPE, dps_script
from .test_hub_device import TWIN, hub_script

REG = "sn-007"  # the CN; test_dps_device's script assigns this registration ID


@dataclass
class DeviceFiles:
    root: Path  # the root the server trusts
    leaf: Path  # the leaf alone
    chain: Path  # the intermediate alone
    bundle: Path  # leaf + intermediate in one file
    key: Path
    leaf_der: bytes


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.PEM)


@pytest.fixture(scope="module")
def device_files(tmp_path_factory: pytest.TempPathFactory) -> DeviceFiles:
    directory = tmp_path_factory.mktemp("x509")
    root_key, inter_key, leaf_key = generate_ec_key(), generate_ec_key(), generate_ec_key()
    root = create_root_ca("client test root", root_key)
    inter = create_intermediate_ca("client test intermediate", inter_key, root, root_key)
    leaf = create_device_certificate(REG, leaf_key, inter, inter_key)
    files = DeviceFiles(directory / "root.pem", directory / "leaf.pem", directory / "inter.pem",
                        directory / "bundle.pem", directory / "leaf.key.pem",
                        leaf.public_bytes(Encoding.DER))
    files.root.write_bytes(_pem(root))
    files.leaf.write_bytes(_pem(leaf))
    files.chain.write_bytes(_pem(inter))
    files.bundle.write_bytes(_pem(leaf) + _pem(inter))
    files.key.write_bytes(private_key_to_pem(leaf_key))
    return files


@pytest.mark.parametrize("layout", ["bundle", "separate-chain"])
async def test_dps_register_with_a_client_certificate(
        mqtt_server: StartServer, tls_files: TlsFiles, device_files: DeviceFiles,
        layout: str) -> None:
    # the server trusts only the root: the handshake succeeds only if the intermediate is sent
    server = await mqtt_server(on_publish=dps_script(), client_ca=device_files.root)
    cert = (ClientCertificate(device_files.bundle, device_files.key) if layout == "bundle"
            else ClientCertificate(device_files.leaf, device_files.key, device_files.chain))
    client = DpsDeviceClient("localhost", SCOPE, REG, None,
                             ssl_context=client_ssl_context(tls_files.ca, cert),
                             port=server.port, timeout=5, connect_host="127.0.0.1")
    result = await client.register()
    assert result.status == "assigned"
    connect = server.connects[0]
    assert connect.password is None
    assert connect.username == (f"{SCOPE}/registrations/{REG}/"
                                "api-version=2019-03-31&ClientVersion=opendps")
    assert server.peer_certs == [device_files.leaf_der]


async def test_provision_then_hub_with_the_same_certificate(
        mqtt_server: StartServer, tls_files: TlsFiles, device_files: DeviceFiles) -> None:
    dps = await mqtt_server(on_publish=dps_script(polls_before_assigned=0),
                            client_ca=device_files.root)
    hub = await mqtt_server(on_publish=hub_script(), client_ca=device_files.root)
    settings = DeviceSettings("localhost", SCOPE, tls_files.ca, dps_port=dps.port,
                              hub_port=hub.port, timeout=5, connect_host="127.0.0.1",
                              client_cert=ClientCertificate(device_files.leaf, device_files.key,
                                                            device_files.chain))
    result = await provision(settings, REG)
    assert (result.assigned_hub, result.device_id) == ("hub.local", REG)
    # the fake hub's certificate names localhost; reuse the assignment with that host
    result.registration_state["assignedHub"] = "localhost"
    async with hub_client_for(settings, result) as device:
        await device.send_telemetry({"n": 1})
        assert await device.get_twin() == TWIN
    connect = hub.connects[0]
    assert connect.password is None
    assert (connect.client_id, connect.username) == (
        REG, f"localhost/{REG}/?api-version=2021-04-12")
    assert hub.peer_certs == [device_files.leaf_der]
    assert json.loads(hub.publishes("devices/")[0].payload) == {"n": 1}


async def test_no_certificate_is_refused_by_a_server_that_requires_one(
        mqtt_server: StartServer, tls_files: TlsFiles, device_files: DeviceFiles) -> None:
    server = await mqtt_server(client_ca=device_files.root)
    client = HubDeviceClient("localhost", REG, None, ssl_context=client_ssl_context(tls_files.ca),
                             port=server.port, timeout=5, connect_host="127.0.0.1")
    with pytest.raises((ssl.SSLError, OSError, MqttError)):  # TLS 1.3: after the handshake
        async with client:
            pass


def test_provision_needs_a_key_or_a_certificate(tls_files: TlsFiles) -> None:
    settings = DeviceSettings("localhost", SCOPE, tls_files.ca)
    with pytest.raises(ValueError, match="symmetric key or a client certificate"):
        hub_client_for(settings, None)  # type: ignore[arg-type]


def test_a_key_that_does_not_match_is_a_clear_error(device_files: DeviceFiles,
                                                    tmp_path: Path) -> None:
    other = tmp_path / "other.key.pem"
    other.write_bytes(private_key_to_pem(generate_ec_key()))
    with pytest.raises(ClientCertificateError, match="does not belong"):
        client_ssl_context(None, ClientCertificate(device_files.leaf, other))
    with pytest.raises(ClientCertificateError, match="does not belong"):
        client_ssl_context(None, ClientCertificate(device_files.leaf, other, device_files.chain))


def test_unreadable_and_non_pem_files_are_clear_errors(device_files: DeviceFiles,
                                                       tmp_path: Path) -> None:
    with pytest.raises(ClientCertificateError, match="cannot read"):
        client_ssl_context(None, ClientCertificate(tmp_path / "missing.pem", device_files.key))
    der = tmp_path / "leaf.der"
    der.write_bytes(device_files.leaf_der)
    with pytest.raises(ClientCertificateError, match="expected PEM"):
        client_ssl_context(None, ClientCertificate(der, device_files.key))


def test_the_key_may_sit_in_the_certificate_file(device_files: DeviceFiles,
                                                 tmp_path: Path) -> None:
    combined = tmp_path / "combined.pem"
    combined.write_bytes(device_files.bundle.read_bytes() + device_files.key.read_bytes())
    assert client_ssl_context(None, ClientCertificate(combined)) is not None
