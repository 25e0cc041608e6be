"""``opendps device simulate``: one device's whole life, step by step; ``opendps device
deprovision``: its end.

Provision through DPS (MQTT), connect to the assigned hub with the same credential, send
telemetry, report a property and read the twin back: the path a real device on the Azure SDK
takes. The credential is a symmetric key (own or derived from a group key) or an X.509
certificate presented in the TLS handshake, with no MQTT password (protocol.md §2.1, §7.1).
Deprovisioning is one service call that does the how-to's steps: disenroll, then remove the
hub identity.
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import click

from ..certs import CertError, load_certificate_file, thumbprint
from ..client.device import (
    ClientCertificate,
    ClientCertificateError,
    DeviceSettings,
    device_key,
    hub_client_for,
    provision,
)
from ..client.service import DpsServiceClient
from ..client.tls import client_ssl_context
from ..protocol.timefmt import format_utc, utc_now
from ..protocol.x509.certificates import common_name
from ._common import json_option, print_json, run, service_options
from ._instance import DEFAULT_MQTT_PORT, LazyInfo, Target


@click.group()
def device() -> None:
    """Device-side tools (our own MQTT client, not the Azure SDK)."""


def _settings(info: LazyInfo, dps_host: str | None, id_scope: str | None, port: int | None,
              ca_file: str | None, timeout: float,
              client_cert: ClientCertificate | None = None) -> DeviceSettings:
    dps_host = dps_host or info.get().get("deviceEndpoint")
    id_scope = id_scope or info.get().get("idScope")
    if not dps_host or not id_scope:
        raise click.ClickException("no DPS endpoint: pass --dps-host and --id-scope, or "
                                   "--data-dir of a local instance")
    mqtt_port = info.port(port, "mqtt", DEFAULT_MQTT_PORT)
    return DeviceSettings(dps_host, id_scope, info.ca_file(ca_file), dps_port=mqtt_port,
                          hub_port=mqtt_port, timeout=timeout, client_cert=client_cert)


def _pem_certificates(path: str, option: str) -> list[Any]:
    """The certificates of a PEM file (TLS loads PEM only), with a one-line error."""
    try:
        with open(path, "rb") as handle:
            loaded = load_certificate_file(handle.read())
    except OSError as exc:
        raise click.BadParameter(f"cannot read {path}: {exc.strerror or exc}",
                                 param_hint=option) from None
    except CertError as exc:
        raise click.BadParameter(f"{path}: {exc}", param_hint=option) from None
    if loaded.format != "PEM":
        raise click.BadParameter(f"{path} is {loaded.format}; TLS needs PEM",
                                 param_hint=option)
    return list(loaded.certificates)


def x509_identity(cert_file: str, key_file: str | None, chain_file: str | None,
                  password: str | None, registration_id: str | None
                  ) -> tuple[ClientCertificate, str, str]:
    """(the client certificate, the registration ID, a description of the leaf): the ID
    defaults to the leaf's CN, which DPS requires to equal it anyway."""
    leaf = _pem_certificates(cert_file, "--cert")[0]
    if chain_file:
        _pem_certificates(chain_file, "--chain")
    if key_file is None:
        with open(cert_file, "rb") as handle:
            if b"PRIVATE KEY-----" not in handle.read():
                raise click.UsageError("--cert needs --key FILE (the device's private key)")
    cn = common_name(leaf)
    if registration_id is None:
        if not cn:
            raise click.UsageError("the certificate has no CN: pass --registration-id")
        registration_id = cn
    elif cn != registration_id:
        click.echo(f"warning: the certificate's CN {cn!r} is not the registration ID "
                   f"{registration_id!r}; DPS will refuse it", err=True)
    client_cert = ClientCertificate(cert_file, key_file, chain_file, password)
    try:
        client_ssl_context(None, client_cert)  # fail here, not as a TLS error later
    except ClientCertificateError as exc:
        raise click.ClickException(str(exc)) from None
    return client_cert, registration_id, f"CN={cn}, SHA-1 {thumbprint(leaf)}"


def telemetry(index: int) -> dict[str, Any]:
    return {"messageNumber": index,
            "temperature": round(20 + random.random() * 10, 2),
            "humidity": round(60 + random.random() * 20, 2),
            "timestamp": format_utc(utc_now())}


@device.command("simulate")
@click.option("--registration-id", default=None,
              help="The device's registration ID (default with --cert: the certificate's CN).")
@click.option("--key", default=None,
              help="The device's own symmetric key; with --cert, its private key file (PEM).")
@click.option("--group-key", default=None,
              help="The enrollment group's key (the device key is derived from it).")
@click.option("--cert", "cert_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="X.509: the device certificate (PEM; leaf first, may hold the chain).")
@click.option("--chain", "chain_file", type=click.Path(exists=True, dir_okay=False),
              default=None, help="X.509: intermediates to present after the certificate (PEM).")
@click.option("--key-password", envvar="OPENDPS_KEY_PASSWORD", default=None,
              help="X.509: password of an encrypted --key (env OPENDPS_KEY_PASSWORD).")
@click.option("--count", type=click.IntRange(min=0), default=3, show_default=True,
              help="Telemetry messages to send.")
@click.option("--interval", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Seconds between messages.")
@click.option("--report/--no-report", default=True, show_default=True,
              help="Patch a reported property before reading the twin.")
@click.option("--dps-host", default=None, help="DPS host (default: the instance's).")
@click.option("--id-scope", default=None, help="ID scope (default: the instance's).")
@click.option("--mqtt-port", type=int, default=None,
              help="MQTT port for DPS and hub (default: the instance's, else 8883).")
@click.option("--ca-file", envvar="OPENDPS_CA_FILE", default=None,
              type=click.Path(dir_okay=False), help="CA to trust (default: the instance's).")
@click.option("--data-dir", envvar="OPENDPS_DATA_DIR", default=None,
              type=click.Path(file_okay=False), help="Local instance (env OPENDPS_DATA_DIR).")
@click.option("--timeout", type=float, default=30.0, show_default=True,
              help="Seconds to wait for each answer.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary at the end.")
def simulate(registration_id: str | None, key: str | None, group_key: str | None,
             cert_file: str | None, chain_file: str | None, key_password: str | None,
             count: int, interval: float, report: bool, dps_host: str | None,
             id_scope: str | None, mqtt_port: int | None, ca_file: str | None,
             data_dir: str | None, timeout: float, as_json: bool) -> None:
    """Provision with a symmetric key or an X.509 certificate, send telemetry, report,
    show the twin."""
    client_cert: ClientCertificate | None = None
    secret: str | None = None
    if cert_file:
        if group_key:
            raise click.UsageError("--group-key is for symmetric keys, not with --cert")
        client_cert, registration_id, identity = x509_identity(
            cert_file, key, chain_file, key_password, registration_id)
    else:
        if chain_file or key_password:
            raise click.UsageError("--chain and --key-password need --cert")
        if registration_id is None:
            raise click.UsageError("--registration-id is required (unless --cert is given)")
        if bool(key) == bool(group_key):
            raise click.UsageError("give exactly one of --key and --group-key (or --cert)")
        try:
            secret = device_key(registration_id, key=key, group_key=group_key)
        except ValueError:
            raise click.BadParameter("the key is not valid base64") from None
        identity = "symmetric key"
    explicit = bool(dps_host and id_scope)
    settings = _settings(LazyInfo(data_dir, bootstrap=not explicit), dps_host, id_scope,
                         mqtt_port, ca_file, timeout, client_cert)

    def step(text: str) -> None:
        if not as_json:
            click.echo(text)

    async def go() -> dict[str, Any]:
        step(f"registering {registration_id} with {settings.dps_host}:{settings.dps_port} "
             f"(ID scope {settings.id_scope}; {identity})")
        result = await provision(settings, registration_id, secret)
        step(f"assigned hub: {result.assigned_hub}  device id: {result.device_id}  "
             f"({result.substatus})")
        summary: dict[str, Any] = {"registrationId": registration_id,
                                   "attestation": "x509" if client_cert else "symmetricKey",
                                   "assignedHub": result.assigned_hub,
                                   "deviceId": result.device_id,
                                   "substatus": result.substatus, "messagesSent": 0}
        async with hub_client_for(settings, result, secret) as hub:
            step(f"connected to {result.assigned_hub}:{settings.hub_port}")
            for index in range(1, count + 1):
                message = telemetry(index)
                await hub.send_telemetry(message)
                summary["messagesSent"] = index
                step(f"[{index}/{count}] sent {json.dumps(message)}")
                if index < count and interval:
                    await asyncio.sleep(interval)
            if report:
                version = await hub.patch_reported(
                    {"simulator": {"messagesSent": count, "lastRun": format_utc(utc_now())}})
                step(f"reported properties updated (version {version})")
            summary["twin"] = await hub.get_twin()
        return summary

    summary = run(go())
    if as_json:
        print_json(summary)
    else:
        click.echo("twin:")
        print_json(summary["twin"])


DEPROVISION_STEPS = (
    ("enrollment", "enrollment", "none (no individual enrollment, no group recorded)"),
    ("hubIdentity", "hub identity", "none (no assigned hub recorded)"),
    ("registrationRecord", "registration record", "none (the device never registered)"),
)


@device.command("deprovision")
@click.argument("registration_id", metavar="REGID")
@click.option("--disable", is_flag=True,
              help="Keep the individual enrollment, disabled (re-enable it to let the device "
                   "back) instead of deleting it.")
@service_options
@json_option
def deprovision(target: Target, registration_id: str, disable: bool, as_json: bool) -> None:
    """Disenroll a device and delete its hub identity.

    An individual enrollment is deleted (kept disabled with --disable). A device from an
    enrollment group is always blocked by a disabled individual enrollment, since the group
    keeps serving the other devices; delete that enrollment to let the device back.
    """
    async def go() -> dict[str, Any]:
        async with DpsServiceClient.from_connection_string(
                target.connection_string, ca_file=target.ca_file, port=target.port) as client:
            return await client.deprovision(registration_id, disable=disable)

    result = run(go())
    if as_json:
        print_json(result)
        return
    click.echo(f"deprovisioned {result.get('registrationId') or registration_id}")
    for field, label, absent in DEPROVISION_STEPS:
        click.echo(f"  {label}: {result.get(field) or absent}")
