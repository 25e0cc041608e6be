"""``enrollment`` and ``enrollment-group`` share every verb and option but the ID, so one
factory builds both groups from a ``Kind``.

Updates read the attestation mechanism first: a GET hides symmetric keys, and writing the
hidden form back would make the server generate new ones. X.509 entries carry their own
certificates (``clientCertificates`` for a device, ``signingCertificates`` for a group) or
name uploaded CA certificates (``caReferences``); an update keeps them unless new ones are
given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from ..client.service import DpsServiceClient, ServiceError
from ._common import (
    CERTIFICATE_FILE,
    JSON_OBJECT,
    details,
    json_option,
    run,
    service_options,
    show,
    table,
)
from ._instance import Target

READ_ONLY = ("etag", "createdDateTimeUtc", "lastUpdatedDateTimeUtc", "registrationState")
SLOTS = ("primary", "secondary")


@dataclass(frozen=True)
class Kind:
    noun: str  # for messages
    id_field: str  # the wire name of the ID
    id_option: str  # the click option
    get: Callable[[DpsServiceClient, str], Any]
    put: Callable[..., Any]
    delete: Callable[..., Any]
    attestation: Callable[[DpsServiceClient, str], Any]
    query: Callable[[DpsServiceClient], Any]
    individual: bool

    @property
    def own_certificates(self) -> str:
        """Where an entry's own X.509 certificates go (protocol.md §4.3)."""
        return "clientCertificates" if self.individual else "signingCertificates"


INDIVIDUAL = Kind(
    "enrollment", "registrationId", "--registration-id",
    DpsServiceClient.get_enrollment, DpsServiceClient.create_or_update_enrollment,
    DpsServiceClient.delete_enrollment, DpsServiceClient.get_enrollment_attestation,
    DpsServiceClient.query_enrollments, True)
GROUP = Kind(
    "enrollment group", "enrollmentGroupId", "--group-id",
    DpsServiceClient.get_enrollment_group, DpsServiceClient.create_or_update_enrollment_group,
    DpsServiceClient.delete_enrollment_group, DpsServiceClient.get_enrollment_group_attestation,
    DpsServiceClient.query_enrollment_groups, False)


def _client(target: Target) -> DpsServiceClient:
    return DpsServiceClient.from_connection_string(
        target.connection_string, ca_file=target.ca_file, port=target.port)


def _slots(primary: Any, secondary: Any, wrap: Callable[[Any], Any]) -> dict[str, Any]:
    return {slot: wrap(value) for slot, value in zip(SLOTS, (primary, secondary), strict=True)
            if value}


def _with_secondary(kind: Kind, current: dict[str, Any] | None, field: str, value: Any,
                    option: str) -> dict[str, Any]:
    """The current X.509 attestation with only its secondary certificate or CA replaced."""
    current = current or {}
    x509 = (current.get("x509") or {}) if current.get("type") == "x509" else {}
    entries = x509.get(field) or {}
    primary = entries.get("primary")
    if field == kind.own_certificates:
        primary = (primary or {}).get("certificate")
    if not primary:
        needs = "--certificate" if field == kind.own_certificates else "--ca-name"
        raise click.UsageError(f"{option} needs {needs} (the {kind.noun} has no primary one)")
    wrap = (lambda pem: {"certificate": pem}) if field == kind.own_certificates \
        else (lambda name: name)
    return {"type": "x509", "x509": {field: _slots(primary, value, wrap)}}


def x509_attestation(kind: Kind, current: dict[str, Any] | None, *,
                     attestation: str | None = None, certificate: str | None = None,
                     secondary_certificate: str | None = None, ca_name: str | None = None,
                     secondary_ca_name: str | None = None) -> dict[str, Any] | None:
    """The new attestation the X.509 options ask for, or None to keep ``current``.

    Certificates are PEM text (``CERTIFICATE_FILE`` read them); the service fills ``info``.
    """
    own = certificate or secondary_certificate
    refs = ca_name or secondary_ca_name
    if own and refs:
        raise click.UsageError("give certificates or CA names (--ca-name), not both")
    if attestation == "symmetric-key":
        if own or refs:
            raise click.UsageError("certificate options need --attestation x509")
        if (current or {}).get("type") == "symmetricKey":
            return None
        return {"type": "symmetricKey", "symmetricKey": {}}
    if certificate:
        return {"type": "x509", "x509": {kind.own_certificates: _slots(
            certificate, secondary_certificate, lambda pem: {"certificate": pem})}}
    if ca_name:
        return {"type": "x509",
                "x509": {"caReferences": _slots(ca_name, secondary_ca_name, lambda n: n)}}
    if secondary_certificate:
        return _with_secondary(kind, current, kind.own_certificates, secondary_certificate,
                               "--secondary-certificate")
    if secondary_ca_name:
        return _with_secondary(kind, current, "caReferences", secondary_ca_name,
                               "--secondary-ca-name")
    if attestation == "x509" and (current or {}).get("type") != "x509":
        raise click.UsageError("--attestation x509 needs --certificate FILE or --ca-name NAME")
    return None


def build_body(kind: Kind, item_id: str, existing: dict[str, Any] | None, *,
               device_id: str | None = None, primary_key: str | None = None,
               secondary_key: str | None = None, edge: bool | None = None,
               tags: dict[str, Any] | None = None, desired: dict[str, Any] | None = None,
               enabled: bool | None = None, iot_hubs: tuple[str, ...] = (),
               allocation_policy: str | None = None, attestation: str | None = None,
               certificate: str | None = None, secondary_certificate: str | None = None,
               ca_name: str | None = None, secondary_ca_name: str | None = None,
               ) -> dict[str, Any]:
    """The PUT body: ``existing`` (read-only fields dropped) with the given options applied."""
    if existing is None:
        body: dict[str, Any] = {kind.id_field: item_id,
                                "attestation": {"type": "symmetricKey", "symmetricKey": {}}}
    else:
        body = {k: v for k, v in existing.items() if k not in READ_ONLY}
    changed = x509_attestation(
        kind, body.get("attestation"), attestation=attestation, certificate=certificate,
        secondary_certificate=secondary_certificate, ca_name=ca_name,
        secondary_ca_name=secondary_ca_name)
    if changed is not None:
        body["attestation"] = changed
    if primary_key or secondary_key:
        attestation = dict(body.get("attestation") or {})
        if attestation.get("type") != "symmetricKey":
            raise click.UsageError(f"this {kind.noun} does not use symmetric keys")
        keys = dict(attestation.get("symmetricKey") or {})
        if primary_key:
            keys["primaryKey"] = primary_key
        if secondary_key:
            keys["secondaryKey"] = secondary_key
        attestation["symmetricKey"] = keys
        body["attestation"] = attestation
    if device_id is not None and kind.individual:
        body["deviceId"] = device_id
    if edge is not None:
        body["capabilities"] = {"iotEdge": edge}
    if tags is not None or desired is not None:
        twin = dict(body.get("initialTwin") or {})
        if tags is not None:
            twin["tags"] = tags
        if desired is not None:
            twin["properties"] = {"desired": desired}
        body["initialTwin"] = twin
    if enabled is not None:
        body["provisioningStatus"] = "enabled" if enabled else "disabled"
    if iot_hubs:
        body["iotHubs"] = list(iot_hubs)
        body["allocationPolicy"] = allocation_policy or ("static" if len(iot_hubs) == 1
                                                         else "hashed")
    elif allocation_policy:
        body["allocationPolicy"] = allocation_policy
    return body


def _body_options(kind: Kind) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    own_help = "device's own (self-signed or CA-issued)" if kind.individual \
        else "signing (root or intermediate CA)"

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        options = [
            click.option("--attestation", default=None,
                         type=click.Choice(["symmetric-key", "x509"]),
                         help="How devices prove themselves (default on create: symmetric-key, "
                              "or x509 when certificates or CA names are given)."),
            click.option("--certificate", type=CERTIFICATE_FILE, default=None,
                         help=f"X.509: the {own_help} certificate file (PEM, .cer or DER)."),
            click.option("--secondary-certificate", type=CERTIFICATE_FILE, default=None,
                         help="X.509: a second certificate (e.g. for rollover)."),
            click.option("--ca-name", default=None, metavar="NAME",
                         help="X.509: an uploaded, verified CA certificate that signed the "
                              "device certificates (see 'opendps certificate')."),
            click.option("--secondary-ca-name", default=None, metavar="NAME",
                         help="X.509: a second uploaded CA certificate."),
            click.option("--primary-key", default=None,
                         help="Base64 symmetric key (default: generated by the server)."),
            click.option("--secondary-key", default=None, help="Base64 symmetric key."),
            click.option("--edge/--no-edge", default=None, help="An IoT Edge device."),
            click.option("--initial-twin-tags", "tags", type=JSON_OBJECT, default=None,
                         help="Initial twin tags (JSON object)."),
            click.option("--initial-twin-desired", "desired", type=JSON_OBJECT, default=None,
                         help="Initial desired properties (JSON object)."),
            click.option("--enabled/--disabled", default=None,
                         help="Provisioning status (default on create: enabled)."),
            click.option("--iot-hub", "iot_hubs", multiple=True, metavar="HOST",
                         help="Hub(s) to allocate to (repeatable; one hub = static)."),
            click.option("--allocation-policy", default=None,
                         type=click.Choice(["hashed", "static", "geoLatency"]),
                         help="How to pick among the hubs."),
        ]
        if kind.individual:
            options.append(click.option("--device-id", default=None,
                                        help="Hub device ID (default: the registration ID)."))
        for option in reversed(options):
            f = option(f)
        return f
    return decorate


def _id_option(kind: Kind) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(kind.id_option, "item_id", required=True, help=f"The {kind.noun} ID.")


def _columns(kind: Kind) -> list[tuple[str, Callable[[dict], Any]]]:
    cols: list[tuple[str, Callable[[dict], Any]]] = [
        (kind.id_field, lambda e: e.get(kind.id_field))]
    if kind.individual:
        cols.append(("deviceId", lambda e: e.get("deviceId")))
    cols += [
        ("attestation", lambda e: (e.get("attestation") or {}).get("type")),
        ("status", lambda e: e.get("provisioningStatus")),
        ("edge", lambda e: (e.get("capabilities") or {}).get("iotEdge")),
        ("iotHubs", lambda e: ", ".join(e.get("iotHubs") or [])),
        ("updated", lambda e: e.get("lastUpdatedDateTimeUtc")),
    ]
    if kind.individual:
        cols.insert(5, ("registration", lambda e: (e.get("registrationState") or {})
                        .get("status")))
    return cols


def certificate_rows(item: dict[str, Any]) -> list[tuple[str, Any]]:
    """What people check on an X.509 entry: each certificate's subject, SHA-1 thumbprint
    and expiry (the ``info`` the service computed), or the CA names it refers to."""
    x509 = (item.get("attestation") or {}).get("x509") or {}
    rows: list[tuple[str, Any]] = []
    for field in ("clientCertificates", "signingCertificates"):
        for slot, entry in (x509.get(field) or {}).items():
            info = (entry or {}).get("info") or {}
            rows += [(f"{slot} subject", info.get("subjectName")),
                     (f"{slot} SHA-1 thumbprint", info.get("sha1Thumbprint")),
                     (f"{slot} expires", info.get("notAfterUtc"))]
    for slot, ca in (x509.get("caReferences") or {}).items():
        rows.append((f"{slot} CA certificate", ca))
    return rows


def _without_pem(item: dict[str, Any]) -> dict[str, Any]:
    """The entry for the screen: PEM blobs shortened, their ``info`` kept."""
    x509 = (item.get("attestation") or {}).get("x509")
    if not x509:
        return item
    short = {field: ({slot: {**entry, "certificate": "(PEM, see --json)"}
                      if isinstance(entry, dict) and "certificate" in entry else entry
                      for slot, entry in value.items()} if isinstance(value, dict) else value)
             for field, value in x509.items()}
    return {**item, "attestation": {**item["attestation"], "x509": short}}


def show_entry(item: dict[str, Any], as_json: bool) -> None:
    if as_json:
        show(item, True)
        return
    show(_without_pem(item), False)
    rows = certificate_rows(item)
    if rows:
        details(rows, title="X.509")


def make_group(kind: Kind, name: str, help_text: str) -> click.Group:
    @click.group(name=name, help=help_text)
    def group() -> None:
        pass

    @group.command("create")
    @_id_option(kind)
    @_body_options(kind)
    @service_options
    @json_option
    def create(target: Target, item_id: str, as_json: bool, **fields: Any) -> None:
        """Create an entry: symmetric key (default) or X.509 (refuses to overwrite)."""
        async def go() -> dict[str, Any]:
            async with _client(target) as client:
                try:
                    await kind.get(client, item_id)
                except ServiceError as exc:
                    if exc.status != 404:
                        raise
                else:
                    raise click.ClickException(
                        f"{kind.noun} {item_id!r} already exists; use 'update'")
                return await kind.put(client, build_body(kind, item_id, None, **fields))
        show_entry(run(go()), as_json)

    @group.command("show")
    @_id_option(kind)
    @click.option("--show-keys", is_flag=True, help="Include the symmetric keys.")
    @service_options
    @json_option
    def show_cmd(target: Target, item_id: str, show_keys: bool, as_json: bool) -> None:
        """Show one entry (keys only with --show-keys; X.509 certificate details)."""
        async def go() -> dict[str, Any]:
            async with _client(target) as client:
                item = await kind.get(client, item_id)
                if show_keys:
                    item["attestation"] = await kind.attestation(client, item_id)
                return item
        show_entry(run(go()), as_json)

    @group.command("list")
    @service_options
    @json_option
    def list_cmd(target: Target, as_json: bool) -> None:
        """List every entry (all pages)."""
        async def go() -> list[dict[str, Any]]:
            async with _client(target) as client:
                return await kind.query(client)
        table(run(go()), _columns(kind), as_json)

    @group.command("update")
    @_id_option(kind)
    @_body_options(kind)
    @click.option("--etag", default=None, help="Only if the entry still has this etag.")
    @service_options
    @json_option
    def update(target: Target, item_id: str, etag: str | None, as_json: bool,
               **fields: Any) -> None:
        """Change the given fields, keep the rest (keys and certificates included)."""
        async def go() -> dict[str, Any]:
            async with _client(target) as client:
                existing = await kind.get(client, item_id)
                if (existing.get("attestation") or {}).get("type") == "symmetricKey":
                    existing["attestation"] = await kind.attestation(client, item_id)
                body = build_body(kind, item_id, existing, **fields)
                return await kind.put(client, body, if_match=etag or existing.get("etag"))
        show_entry(run(go()), as_json)

    @group.command("delete")
    @_id_option(kind)
    @click.option("--etag", default=None, help="Only if the entry still has this etag.")
    @service_options
    def delete(target: Target, item_id: str, etag: str | None) -> None:
        """Delete one entry."""
        async def go() -> None:
            async with _client(target) as client:
                await kind.delete(client, item_id, if_match=etag)
        run(go())
        click.echo(f"deleted {kind.noun} {item_id}")

    return group
