"""The official Python device SDK sends its certificate chain although the server's certificate
request names no CAs (OpenSSL clients send what they were configured with), over MQTT on 8883
and over WebSocket on 443, which it cannot move off the fixed ports."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp import web
from azure.iot.device import X509, ProvisioningDeviceClient
from azure.iot.device.exceptions import CredentialError

from integration.servers import _free_loopback as free_loopback
from opendps.transport.mqtt_listener import start_mqtt_listener
from opendps.transport.tls_transport import start_tls_server
from opendps.transport.websocket import websocket_handler

from .pki_files import REGISTRATION_ID, make_pki
from .test_tls_apps import CapturingRouter

pytestmark = pytest.mark.sdk


@pytest.mark.parametrize("websockets", [False, True], ids=["mqtt", "websocket"])
async def test_the_sdk_sends_its_chain(tmp_path: Path, websockets: bool) -> None:
    host = free_loopback()
    files = make_pki(tmp_path, (host,))
    router = CapturingRouter()
    runner: web.AppRunner | None = None
    if websockets:
        app = web.Application()
        app.router.add_get("/{path:.*}", websocket_handler(router, 5.0))  # type: ignore[arg-type]
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        assert runner.server is not None
        server = await start_tls_server(runner.server, host, 443, files.tls)
    else:
        server = await start_mqtt_listener(router, host, 8883, files.tls,  # type: ignore[arg-type]
                                           connect_timeout=5.0)
    device = files.leaf_and_intermediate

    def register() -> None:
        client = ProvisioningDeviceClient.create_from_x509_certificate(
            provisioning_host=host, registration_id=REGISTRATION_ID, id_scope="0ne00000000",
            x509=X509(cert_file=str(device.cert_file), key_file=str(device.key_file)),
            server_verification_cert=files.server_ca_file.read_text(), websockets=websockets)
        with pytest.raises(CredentialError):  # the capturing router refuses every CONNECT
            client.register()

    try:
        async with asyncio.timeout(60):
            await asyncio.to_thread(register)
    finally:
        server.close()
        if runner is not None:
            await runner.cleanup()
    assert router.chains and all(chain == list(device.sent) for chain in router.chains)
