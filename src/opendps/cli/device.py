"""``opendps device simulate``: one symmetric-key device's whole life, step by step.

Provision through DPS (MQTT), connect to the assigned hub with the same key, send telemetry,
report a property and read the twin back: the path a real device on the Azure SDK takes.
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import click

from ..client.device import DeviceSettings, device_key, hub_client_for, provision
from ..protocol.timefmt import format_utc, utc_now
from ._common import print_json, run
from ._instance import DEFAULT_MQTT_PORT, LazyInfo


@click.group()
def device() -> None:
    """Device-side tools (our own MQTT client, not the Azure SDK)."""


def _settings(info: LazyInfo, dps_host: str | None, id_scope: str | None, port: int | None,
              ca_file: str | None, timeout: float) -> DeviceSettings:
    dps_host = dps_host or info.get().get("deviceEndpoint")
    id_scope = id_scope or info.get().get("idScope")
    if not dps_host or not id_scope:
        raise click.ClickException("no DPS endpoint: pass --dps-host and --id-scope, or "
                                   "--data-dir of a local instance")
    mqtt_port = info.port(port, "mqtt", DEFAULT_MQTT_PORT)
    return DeviceSettings(dps_host, id_scope, info.ca_file(ca_file), dps_port=mqtt_port,
                          hub_port=mqtt_port, timeout=timeout)


def telemetry(index: int) -> dict[str, Any]:
    return {"messageNumber": index,
            "temperature": round(20 + random.random() * 10, 2),
            "humidity": round(60 + random.random() * 20, 2),
            "timestamp": format_utc(utc_now())}


@device.command("simulate")
@click.option("--registration-id", required=True)
@click.option("--key", default=None, help="The device's own symmetric key.")
@click.option("--group-key", default=None,
              help="The enrollment group's key (the device key is derived from it).")
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
def simulate(registration_id: str, key: str | None, group_key: str | None, count: int,
             interval: float, report: bool, dps_host: str | None, id_scope: str | None,
             mqtt_port: int | None, ca_file: str | None, data_dir: str | None,
             timeout: float, as_json: bool) -> None:
    """Provision with a symmetric key, send telemetry, report, show the twin."""
    if bool(key) == bool(group_key):
        raise click.UsageError("give exactly one of --key and --group-key")
    try:
        secret = device_key(registration_id, key=key, group_key=group_key)
    except ValueError:
        raise click.BadParameter("the key is not valid base64") from None
    explicit = bool(dps_host and id_scope)
    settings = _settings(LazyInfo(data_dir, bootstrap=not explicit), dps_host, id_scope,
                         mqtt_port, ca_file, timeout)

    def step(text: str) -> None:
        if not as_json:
            click.echo(text)

    async def go() -> dict[str, Any]:
        step(f"registering {registration_id} with {settings.dps_host}:{settings.dps_port} "
             f"(ID scope {settings.id_scope})")
        result = await provision(settings, registration_id, secret)
        step(f"assigned hub: {result.assigned_hub}  device id: {result.device_id}  "
             f"({result.substatus})")
        summary: dict[str, Any] = {"registrationId": registration_id,
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
