"""``opendps cert …``: the X.509 files DPS attestation needs, without OpenSSL scripts.

A root CA (uploaded to DPS and verified), intermediates (for enrollment groups), device
certificates whose CN is the registration ID (with the chain the device presents), self-signed
device certificates (individual enrollments, matched by thumbprint), the proof-of-possession
certificate for a DPS verification code, and a description of any certificate file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from rich.table import Table

from ..certs import (
    CertError,
    FileInfo,
    PrivateKey,
    check_registration_id,
    create_device_certificate,
    create_intermediate_ca,
    create_root_ca,
    create_self_signed_device_certificate,
    create_verification_certificate,
    describe_certificate,
    describe_file,
    ensure_writable,
    generate_key,
    is_signed_by,
    load_certificates,
    load_private_key,
    write_certificate,
    write_pfx,
    write_private_key,
)
from ..certs.inspect import CertificateInfo, format_time
from ..certs.issue import DEVICE_DAYS, INTERMEDIATE_DAYS, ROOT_DAYS, VERIFICATION_DAYS
from ._common import console, json_option, print_json

F = TypeVar("F", bound=Callable[..., Any])
_BASENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class _CertGroup(click.Group):
    """Library errors (bad input, wrong password, existing file) become one-line errors."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CertError as exc:
            raise click.ClickException(str(exc)) from None


@click.group("cert", cls=_CertGroup)
def cert() -> None:
    """X.509 certificates for DPS: root, intermediate, device, verification; show a file."""


# -- shared options -------------------------------------------------------------------------------
def _key_options(f: F) -> F:
    f = click.option("--curve", type=click.Choice(["P-256", "P-384"], case_sensitive=False),
                     default=None, help="EC curve (default P-256).")(f)
    f = click.option("--key-size", type=click.Choice(["2048", "3072", "4096"]), default=None,
                     help="RSA key size in bits (default 2048).")(f)
    return click.option("--key-type", type=click.Choice(["ec", "rsa"]), default="ec",
                        show_default=True, help="Key algorithm of the new certificate.")(f)


def _output_options(f: F) -> F:
    f = json_option(f)
    f = click.option("--force", is_flag=True, help="Overwrite existing files.")(f)
    return click.option("--out-dir", required=True, type=click.Path(file_okay=False),
                        help="Directory for the new files (created if missing).")(f)


def _ca_options(f: F) -> F:
    f = click.option("--ca-key", type=click.Path(exists=True, dir_okay=False), default=None,
                     help="The signing CA's private key (PEM or DER).")(f)
    return click.option("--ca-cert", type=click.Path(exists=True, dir_okay=False),
                        default=None, help="The signing CA's certificate (PEM, .cer or DER).")(f)


key_password_option = click.option(
    "--key-password", envvar="OPENDPS_KEY_PASSWORD", default=None,
    help="Encrypt the new key with this password, and read an encrypted CA key with it "
         "(env OPENDPS_KEY_PASSWORD).")
ca_key_password_option = click.option(
    "--ca-key-password", envvar="OPENDPS_CA_KEY_PASSWORD", default=None,
    help="Password of the CA key, if not --key-password (env OPENDPS_CA_KEY_PASSWORD).")


def _new_key(key_type: str, key_size: str | None, curve: str | None) -> PrivateKey:
    if key_type == "ec" and key_size:
        raise click.UsageError("--key-size applies to RSA keys (use --curve for EC)")
    if key_type == "rsa" and curve:
        raise click.UsageError("--curve applies to EC keys (use --key-size for RSA)")
    return generate_key("rsa" if key_type == "rsa" else "ec",
                        size=int(key_size) if key_size else None,
                        curve=curve.upper() if curve else None)


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise click.ClickException(f"cannot read {path}: {exc.strerror or exc}") from None


def _out_dir(out_dir: str) -> Path:
    directory = Path(out_dir)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.ClickException(f"cannot create {out_dir}: {exc.strerror or exc}") from None
    return directory


def _basename(name: str) -> str:
    if not _BASENAME.match(name):
        raise click.BadParameter("use letters, digits and '. _ -' (no path)", param_hint="--name")
    return name


def _load_ca(ca_cert: str | None, ca_key: str | None, password: str | None
             ) -> tuple[x509.Certificate, PrivateKey, list[x509.Certificate]]:
    """The CA certificate, its key, and any further certificates its file carries."""
    if not ca_cert or not ca_key:
        missing = "--ca-cert" if not ca_cert else "--ca-key"
        raise click.UsageError(f"{missing} is required: the CA that signs the new certificate")
    try:
        certs = load_certificates(_read(ca_cert))
    except CertError as exc:
        raise click.ClickException(f"--ca-cert {ca_cert}: {exc}") from None
    try:
        key = load_private_key(_read(ca_key), password)
    except CertError as exc:
        hint = " (see --key-password)" if "password" in str(exc) else ""
        raise click.ClickException(f"--ca-key {ca_key}: {exc}{hint}") from None
    return certs[0], key, certs[1:]


# -- output ---------------------------------------------------------------------------------------
def _rows(info: CertificateInfo) -> list[tuple[str, str]]:
    ca = f"yes (pathlen {info.pathlen})" if info.is_ca and info.pathlen is not None else (
        "yes" if info.is_ca else "no")
    return [
        ("subject", info.subject), ("issuer", info.issuer), ("serial", info.serial),
        ("SHA-1 thumbprint", info.sha1_thumbprint),
        ("SHA-256 thumbprint", info.sha256_thumbprint),
        ("valid", f"{format_time(info.not_before)} → {format_time(info.not_after)}"),
        ("CA", ca), ("key", info.key), ("signature", info.signature_algorithm),
        ("extended key usage", ", ".join(info.extended_key_usage) or "-"),
        ("self-signed", "yes" if info.self_signed else "no"),
    ]


def _table(title: str, rows: list[tuple[str, str]]) -> Table:
    out = Table(show_header=False, title=title)
    out.add_column(style="bold")
    out.add_column(overflow="fold")
    for label, value in rows:
        out.add_row(label, value)
    return out


def _report(title: str, cert_: x509.Certificate, files: dict[str, Path], as_json: bool) -> None:
    info = describe_certificate(cert_)
    if as_json:
        print_json({"certificate": info.to_json(),
                    "files": {kind: str(path) for kind, path in files.items()}})
        return
    rows = _rows(info) + [(f"{kind} file", str(path)) for kind, path in files.items()]
    console().print(_table(title, rows))


def _save_key_and_cert(directory: Path, name: str, key: PrivateKey, cert_: x509.Certificate,
                       key_password: str | None, force: bool) -> dict[str, Path]:
    return {"certificate": write_certificate(directory / f"{name}.cert.pem", cert_, force=force),
            "key": write_private_key(directory / f"{name}.key.pem", key, key_password,
                                     force=force)}


# -- commands -------------------------------------------------------------------------------------
@cert.command("create-root")
@click.option("--cn", required=True, help="Common name of the root CA.")
@_key_options
@click.option("--days", type=click.IntRange(min=1), default=ROOT_DAYS, show_default=True)
@click.option("--pathlen", type=click.IntRange(min=0), default=None,
              help="Most intermediates allowed below (default: no limit).")
@_output_options
@click.option("--name", default="root", show_default=True, help="Base name of the files.")
@key_password_option
def create_root(cn: str, key_type: str, key_size: str | None, curve: str | None, days: int,
                pathlen: int | None, out_dir: str, force: bool, as_json: bool, name: str,
                key_password: str | None) -> None:
    """A self-signed root CA: NAME.cert.pem (upload to DPS) and NAME.key.pem."""
    directory, name = _out_dir(out_dir), _basename(name)
    ensure_writable([directory / f"{name}.cert.pem", directory / f"{name}.key.pem"], force)
    key = _new_key(key_type, key_size, curve)
    root = create_root_ca(cn, key, days, pathlen)
    files = _save_key_and_cert(directory, name, key, root, key_password, force)
    _report("root CA", root, files, as_json)


@cert.command("create-intermediate")
@click.option("--cn", required=True, help="Common name of the intermediate CA.")
@_ca_options
@_key_options
@click.option("--days", type=click.IntRange(min=1), default=INTERMEDIATE_DAYS, show_default=True)
@click.option("--pathlen", type=click.IntRange(min=0), default=None,
              help="Most intermediates allowed below (default: no limit).")
@_output_options
@click.option("--name", default="intermediate", show_default=True,
              help="Base name of the files.")
@key_password_option
@ca_key_password_option
def create_intermediate(cn: str, ca_cert: str | None, ca_key: str | None, key_type: str,
                        key_size: str | None, curve: str | None, days: int,
                        pathlen: int | None, out_dir: str, force: bool, as_json: bool,
                        name: str, key_password: str | None,
                        ca_key_password: str | None) -> None:
    """An intermediate CA signed by --ca-cert/--ca-key (for an enrollment group)."""
    issuer, issuer_key, _ = _load_ca(ca_cert, ca_key, ca_key_password or key_password)
    directory, name = _out_dir(out_dir), _basename(name)
    ensure_writable([directory / f"{name}.cert.pem", directory / f"{name}.key.pem"], force)
    key = _new_key(key_type, key_size, curve)
    inter = create_intermediate_ca(cn, key, issuer, issuer_key, days, pathlen)
    files = _save_key_and_cert(directory, name, key, inter, key_password, force)
    _report("intermediate CA", inter, files, as_json)


def _device_chain(leaf: x509.Certificate, issuers: list[x509.Certificate],
                  include_root: bool) -> list[x509.Certificate]:
    """leaf + intermediates (+ root): each must be signed by the next."""
    seen: set[bytes] = set()
    ordered: list[x509.Certificate] = []
    for issuer in issuers:
        fingerprint = issuer.fingerprint(hashes.SHA256())
        if fingerprint not in seen:
            seen.add(fingerprint)
            ordered.append(issuer)
    previous = leaf
    for issuer in ordered:
        if not is_signed_by(previous, issuer):
            raise CertError(f"chain out of order: {issuer.subject.rfc4514_string()} did not sign "
                            f"{previous.subject.rfc4514_string()} (list --chain from the CA's "
                            "issuer towards the root)")
        previous = issuer
    roots = [c for c in ordered if is_signed_by(c, c)]
    if include_root and not roots:
        raise CertError("--include-root: the root is not in --ca-cert or --chain")
    return [leaf, *(c for c in ordered if c not in roots), *(roots if include_root else [])]


@cert.command("create-device")
@click.option("--registration-id", required=True, help="Becomes the certificate's CN.")
@_ca_options
@click.option("--chain", "chain_file", type=click.Path(exists=True, dir_okay=False),
              default=None, help="Further intermediates to append (PEM, the CA's issuer first).")
@click.option("--include-root", is_flag=True, help="Append the root to the chain file too.")
@click.option("--self-signed", is_flag=True,
              help="No CA: a self-signed certificate for an individual enrollment.")
@_key_options
@click.option("--days", type=click.IntRange(min=1), default=DEVICE_DAYS, show_default=True)
@click.option("--pfx", is_flag=True, help="Also write ID.pfx (key + chain) with --password.")
@click.option("--password", envvar="OPENDPS_PFX_PASSWORD", default=None,
              help="Password of the PFX (env OPENDPS_PFX_PASSWORD).")
@click.option("--pfx-legacy", is_flag=True,
              help="3DES/SHA-1 PFX for old Windows importers (default AES-256).")
@_output_options
@key_password_option
@ca_key_password_option
def create_device(registration_id: str, ca_cert: str | None, ca_key: str | None,
                  chain_file: str | None, include_root: bool, self_signed: bool, key_type: str,
                  key_size: str | None, curve: str | None, days: int, pfx: bool,
                  password: str | None, pfx_legacy: bool, out_dir: str, force: bool,
                  as_json: bool, key_password: str | None, ca_key_password: str | None) -> None:
    """A device certificate (CN = registration ID): ID.cert.pem, ID.key.pem, ID.chain.pem
    (leaf + intermediates: what the device presents) and optionally ID.pfx."""
    try:
        check_registration_id(registration_id)
    except CertError as exc:
        raise click.BadParameter(str(exc), param_hint="--registration-id") from None
    if pfx and not password:
        raise click.UsageError("--pfx needs --password")
    if password and not pfx:
        raise click.UsageError("--password applies to --pfx")
    if self_signed and (ca_cert or ca_key or chain_file or include_root):
        raise click.UsageError("--self-signed takes no --ca-cert, --ca-key, --chain or "
                               "--include-root")
    issuers: list[x509.Certificate] = []
    if not self_signed:
        issuer, issuer_key, extra = _load_ca(ca_cert, ca_key, ca_key_password or key_password)
        issuers = [issuer, *extra]
        if chain_file:
            try:
                issuers += load_certificates(_read(chain_file))
            except CertError as exc:
                raise click.ClickException(f"--chain {chain_file}: {exc}") from None
    directory = _out_dir(out_dir)
    paths = {kind: directory / f"{registration_id}.{suffix}" for kind, suffix in
             [("certificate", "cert.pem"), ("key", "key.pem"), ("chain", "chain.pem")]}
    if pfx:
        paths["pfx"] = directory / f"{registration_id}.pfx"
    ensure_writable(paths.values(), force)
    key = _new_key(key_type, key_size, curve)
    if self_signed:
        leaf = create_self_signed_device_certificate(registration_id, key, days)
    else:
        leaf = create_device_certificate(registration_id, key, issuers[0], issuer_key, days)
    chain = _device_chain(leaf, issuers, include_root)
    files = _save_key_and_cert(directory, registration_id, key, leaf, key_password, force)
    files["chain"] = write_certificate(paths["chain"], chain, force=force)
    if pfx:
        files["pfx"] = write_pfx(paths["pfx"], key, leaf, chain[1:], password or "",
                                 name=registration_id, legacy=pfx_legacy, force=force)
    _report("self-signed device certificate" if self_signed else "device certificate", leaf,
            files, as_json)


@cert.command("create-verification")
@click.option("--code", required=True, help="The verification code DPS generated for the CA.")
@_ca_options
@click.option("--days", type=click.IntRange(min=1), default=VERIFICATION_DAYS, show_default=True)
@_output_options
@click.option("--key-password", "--ca-key-password", "key_password",
              envvar="OPENDPS_KEY_PASSWORD", default=None,
              help="Password of an encrypted CA key (env OPENDPS_KEY_PASSWORD).")
def create_verification(code: str, ca_cert: str | None, ca_key: str | None, days: int,
                        out_dir: str, force: bool, as_json: bool,
                        key_password: str | None) -> None:
    """Proof of possession: verification-CODE.cert.pem, CN = CODE, signed by the CA's key."""
    code = code.strip()
    if not _BASENAME.match(code) or len(code) > 64:
        raise click.BadParameter("expected the code DPS generated (letters and digits)",
                                 param_hint="--code")
    issuer, issuer_key, _ = _load_ca(ca_cert, ca_key, key_password)
    path = _out_dir(out_dir) / f"verification-{code}.cert.pem"
    ensure_writable([path], force)
    verification = create_verification_certificate(code, issuer, issuer_key, days)
    files = {"certificate": write_certificate(path, verification, force=force)}
    _report("verification certificate", verification, files, as_json)


@cert.command("show")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--password", envvar="OPENDPS_PFX_PASSWORD", default=None,
              help="Password of a PFX file (env OPENDPS_PFX_PASSWORD).")
@json_option
def show(file: str, password: str | None, as_json: bool) -> None:
    """Describe a certificate file (PEM, .cer, DER or PFX) and check its chain."""
    try:
        described = describe_file(_read(file), password)
    except CertError as exc:
        raise click.ClickException(f"{file}: {exc}") from None
    if as_json:
        print_json({"file": file, **described.to_json()})
        return
    _render_file(file, described)


def _render_file(file: str, described: FileInfo) -> None:
    out = console()
    count = len(described.certificates)
    key_note = ", with a private key" if described.has_private_key else ""
    out.print(f"{file}: {described.format}, {count} certificate{'s' * (count != 1)}{key_note}")
    for index, info in enumerate(described.certificates, 1):
        rows = _rows(info)
        if info.signed_by_next is not None:
            rows.append(("signed by next", "yes" if info.signed_by_next else "NO"))
        out.print(_table(f"certificate {index} of {count}", rows))
    if count > 1:
        verdict = "each certificate is signed by the next" if described.chain_intact else \
            "BROKEN: a certificate is not signed by the one after it"
        out.print(f"chain: {verdict}")
