"""``opendps certificate …``: the CA certificates an X.509 enrollment group (or ``caReferences``)
trusts, and their proof of possession, through the admin REST API.

A CA is only trusted once verified: either uploaded with ``--verified`` (the operator vouches),
or proved by signing a certificate whose CN is a code the service generated. ``verify
--ca-key`` does that in one step with the CA's key on this machine; ``verification-code`` and
``verify --verification-cert`` split it for a key that lives elsewhere (an HSM, another team).
The key never leaves this machine: only the verification certificate is sent.
"""

from __future__ import annotations

from typing import Any

import click
from cryptography.hazmat.primitives.serialization import Encoding

from ..certs import CertError, create_verification_certificate, load_certificate
from ..certs.keys import PrivateKey, load_private_key, public_keys_match
from ..client.service import DpsServiceClient, ServiceError
from ._common import (
    CERTIFICATE_FILE,
    details,
    json_option,
    print_json,
    run,
    service_options,
    table,
)
from ._instance import Target

name_option = click.option("--name", required=True, help="The CA certificate's name in DPS.")
etag_option = click.option("--etag", default=None,
                           help="Only if the certificate still has this etag (default: current).")


def _client(target: Target) -> DpsServiceClient:
    return DpsServiceClient.from_connection_string(
        target.connection_string, ca_file=target.ca_file, port=target.port)


def _props(item: dict[str, Any]) -> dict[str, Any]:
    return item.get("properties") or {}


def _rows(item: dict[str, Any]) -> list[tuple[str, Any]]:
    props = _props(item)
    return [("name", item.get("name")), ("subject", props.get("subject")),
            ("SHA-1 thumbprint", props.get("thumbprint")),
            ("verified", "yes" if props.get("isVerified") else "no"),
            ("expires", props.get("expiry")), ("created", props.get("created")),
            ("updated", props.get("updated")), ("etag", item.get("etag"))]


def _show(item: dict[str, Any], as_json: bool, title: str = "CA certificate") -> None:
    if as_json:
        print_json(item)
    else:
        details(_rows(item), title=title)


def _load_key(path: str, password: str | None) -> PrivateKey:
    try:
        with open(path, "rb") as handle:
            return load_private_key(handle.read(), password)
    except OSError as exc:
        raise click.ClickException(f"cannot read {path}: {exc.strerror or exc}") from None
    except CertError as exc:
        raise click.ClickException(f"--ca-key {path}: {exc}") from None


@click.group("certificate")
def certificate() -> None:
    """CA certificates in DPS: upload, prove possession, list, show, delete."""


@certificate.command("upload")
@name_option
@click.option("--file", "pem", type=CERTIFICATE_FILE, required=True,
              help="The CA certificate (PEM, .cer or DER; never the key).")
@click.option("--verified", is_flag=True,
              help="Mark it verified without proof of possession (you vouch for it).")
@click.option("--etag", default=None,
              help="Replace an existing certificate with this etag ('*': any); it must then "
                   "be verified again.")
@service_options
@json_option
def upload(target: Target, name: str, pem: str, verified: bool, etag: str | None,
           as_json: bool) -> None:
    """Upload a root or intermediate CA certificate (refuses to replace one without --etag)."""
    async def go() -> dict[str, Any]:
        async with _client(target) as client:
            if etag is None:
                try:
                    await client.get_ca_certificate(name)
                except ServiceError as exc:
                    if exc.status != 404:
                        raise
                else:
                    raise click.ClickException(
                        f"CA certificate {name!r} already exists; pass --etag to replace it")
            return await client.upload_ca_certificate(name, pem, is_verified=verified,
                                                      if_match=etag)
    _show(run(go()), as_json)


@certificate.command("list")
@service_options
@json_option
def list_cmd(target: Target, as_json: bool) -> None:
    """List the CA certificates."""
    async def go() -> list[dict[str, Any]]:
        async with _client(target) as client:
            return await client.list_ca_certificates()
    table(run(go()), [
        ("name", lambda c: c.get("name")),
        ("subject", lambda c: _props(c).get("subject")),
        ("SHA-1 thumbprint", lambda c: _props(c).get("thumbprint")),
        ("verified", lambda c: "yes" if _props(c).get("isVerified") else "no"),
        ("expires", lambda c: _props(c).get("expiry")),
    ], as_json)


@certificate.command("show")
@name_option
@service_options
@json_option
def show(target: Target, name: str, as_json: bool) -> None:
    """Show one CA certificate (the PEM only with --json)."""
    async def go() -> dict[str, Any]:
        async with _client(target) as client:
            return await client.get_ca_certificate(name)
    _show(run(go()), as_json)


@certificate.command("delete")
@name_option
@etag_option
@service_options
def delete(target: Target, name: str, etag: str | None) -> None:
    """Delete a CA certificate (enrollments that name it stop working)."""
    async def go() -> None:
        async with _client(target) as client:
            await client.delete_ca_certificate(name, if_match=etag)
    run(go())
    click.echo(f"deleted CA certificate {name}")


async def _current_etag(client: DpsServiceClient, name: str, etag: str | None) -> str:
    """The service requires If-Match on both PoP calls; default to the current etag."""
    return etag or (await client.get_ca_certificate(name))["etag"]


@certificate.command("verification-code")
@name_option
@etag_option
@service_options
@json_option
def verification_code(target: Target, name: str, etag: str | None, as_json: bool) -> None:
    """Generate a verification code and print it (sign it with 'opendps cert
    create-verification', then 'certificate verify --verification-cert')."""
    async def go() -> dict[str, Any]:
        async with _client(target) as client:
            return await client.generate_verification_code(
                name, await _current_etag(client, name, etag))
    coded = run(go())
    if as_json:
        print_json(coded)
        return
    code = _props(coded).get("verificationCode")
    click.echo(code)
    click.echo(f"next: opendps cert create-verification --code {code} --ca-cert CA.pem "
               f"--ca-key CA.key --out-dir DIR, then opendps certificate verify --name {name} "
               "--verification-cert DIR/verification-CODE.cert.pem", err=True)


@certificate.command("verify")
@name_option
@click.option("--ca-key", type=click.Path(exists=True, dir_okay=False), default=None,
              help="The CA's private key: generate a code, sign it and verify in one step.")
@click.option("--ca-key-password", envvar="OPENDPS_CA_KEY_PASSWORD", default=None,
              help="Password of an encrypted --ca-key (env OPENDPS_CA_KEY_PASSWORD).")
@click.option("--verification-cert", "proof", type=CERTIFICATE_FILE, default=None,
              help="A certificate with CN = the code from 'verification-code', signed by "
                   "the CA.")
@etag_option
@service_options
@json_option
def verify(target: Target, name: str, ca_key: str | None, ca_key_password: str | None,
           proof: str | None, etag: str | None, as_json: bool) -> None:
    """Prove possession of the CA's key: with --ca-key (one step) or --verification-cert."""
    if bool(ca_key) == bool(proof):
        raise click.UsageError("give exactly one of --ca-key and --verification-cert")
    key = _load_key(ca_key, ca_key_password) if ca_key else None

    async def go() -> dict[str, Any]:
        async with _client(target) as client:
            if key is None:
                assert proof is not None
                return await client.verify_ca_certificate(
                    name, await _current_etag(client, name, etag), proof)
            current = await client.get_ca_certificate(name)
            ca_cert = load_certificate(_props(current)["certificate"].encode())
            if not public_keys_match(key, ca_cert.public_key()):  # type: ignore[arg-type]
                raise click.ClickException(
                    f"--ca-key {ca_key} does not belong to CA certificate {name!r} "
                    f"({_props(current).get('subject')})")
            coded = await client.generate_verification_code(name, etag or current["etag"])
            code = _props(coded)["verificationCode"]
            try:
                signed = create_verification_certificate(code, ca_cert, key)
            except CertError as exc:
                raise click.ClickException(str(exc)) from None
            return await client.verify_ca_certificate(
                name, coded["etag"], signed.public_bytes(Encoding.PEM).decode("ascii"))

    _show(run(go()), as_json, title="CA certificate verified")
