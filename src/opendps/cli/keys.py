"""``opendps compute-device-key``: a group member's key, computed offline like
``az iot dps enrollment-group compute-device-key``."""

from __future__ import annotations

import click

from ..protocol.sas import SasError, derive_device_key


@click.command("compute-device-key")
@click.option("--key", required=True, help="The enrollment group's symmetric key (base64).")
@click.option("--registration-id", required=True, help="The device's registration ID.")
def compute_device_key(key: str, registration_id: str) -> None:
    """Print base64(HMAC-SHA256(group key, registration ID)); no server needed."""
    try:
        click.echo(derive_device_key(key, registration_id))
    except SasError:
        raise click.BadParameter("the key is not valid base64", param_hint="--key") from None
