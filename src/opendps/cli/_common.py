"""Shared CLI pieces: connection options, output (rich by default, ``--json`` for scripts),
JSON and certificate-file parameter types, and one place that runs a coroutine."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.json import JSON
from rich.table import Table

from ._instance import hub_target, service_target

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


class JsonParam(click.ParamType):
    """A JSON object given on the command line (``--initial-twin-tags '{"a": 1}'``)."""

    name = "JSON"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> dict[str, Any]:
        if isinstance(value, dict):
            return value
        try:
            parsed = json.loads(value)
        except ValueError as exc:
            self.fail(f"not valid JSON ({exc.msg} at position {exc.pos})", param, ctx)
        if not isinstance(parsed, dict):
            self.fail("must be a JSON object", param, ctx)
        return parsed


JSON_OBJECT = JsonParam()

PRIVATE_KEY_MARKER = b"PRIVATE KEY-----"


class CertificateFileParam(click.ParamType):
    """A file with exactly one certificate (PEM, base-64 .cer or DER), converted to the PEM
    text the service takes. A file holding a private key is refused here, so a key never
    leaves the machine even when the server would have rejected it anyway."""

    name = "FILE"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> str:
        from cryptography.hazmat.primitives.serialization import Encoding

        from ..certs import CertError, load_certificates

        try:
            with open(value, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            self.fail(f"cannot read {value}: {exc.strerror or exc}", param, ctx)
        if PRIVATE_KEY_MARKER in data:
            self.fail(f"{value} holds a private key: give a file with only the certificate",
                      param, ctx)
        try:
            certs = load_certificates(data)
        except CertError as exc:
            self.fail(f"{value}: {exc}", param, ctx)
        if len(certs) != 1:
            self.fail(f"{value} holds {len(certs)} certificates; give a file with just the "
                      "one certificate", param, ctx)
        return certs[0].public_bytes(Encoding.PEM).decode("ascii")


CERTIFICATE_FILE = CertificateFileParam()

json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print JSON instead of tables (for scripts).")


def _common_connection(f: F) -> F:
    f = click.option("--port", type=int, default=None,
                     help="HTTPS port (default: the instance's, else 443).")(f)
    f = click.option("--ca-file", envvar="OPENDPS_CA_FILE", default=None,
                     type=click.Path(dir_okay=False),
                     help="CA to trust (default: the instance's CA; env OPENDPS_CA_FILE).")(f)
    f = click.option("--data-dir", envvar="OPENDPS_DATA_DIR", default=None,
                     type=click.Path(file_okay=False),
                     help="Local instance to read the connection from (env OPENDPS_DATA_DIR).")(f)
    return f


def service_options_named(flag: str) -> Callable[[F], F]:
    """The DPS connection options with the connection string under ``flag``: commands whose
    ``--connection-string`` means something else (``hub link``) name it differently."""

    def decorate(f: F) -> F:
        @functools.wraps(f)
        def wrapper(*args: Any, connection_string: str | None, data_dir: str | None,
                    ca_file: str | None, port: int | None, **kwargs: Any) -> Any:
            target = service_target(connection_string, data_dir, ca_file, port)
            return f(*args, target=target, **kwargs)

        wrapper = _common_connection(wrapper)
        return click.option(
            flag, "connection_string", envvar="OPENDPS_CONNECTION_STRING", default=None,
            help="DPS service connection string (env OPENDPS_CONNECTION_STRING; "
                 "default: the local instance's).")(wrapper)  # type: ignore[return-value]
    return decorate


# adds the DPS connection options and passes one ``target: Target`` instead
service_options = service_options_named("--connection-string")


def hub_options(f: F) -> F:
    """Adds the hub connection options and passes ``target: Target``."""

    @functools.wraps(f)
    def wrapper(*args: Any, hub_connection_string: str | None, hub: str | None,
                data_dir: str | None, ca_file: str | None, port: int | None,
                **kwargs: Any) -> Any:
        target = hub_target(hub_connection_string, hub, data_dir, ca_file, port)
        return f(*args, target=target, **kwargs)

    wrapper = _common_connection(wrapper)
    wrapper = click.option("--hub", default=None, metavar="HOST",
                           help="Which of the instance's hubs (default: the first).")(wrapper)
    return click.option(
        "--hub-connection-string", envvar="OPENDPS_HUB_CONNECTION_STRING", default=None,
        help="IoT hub connection string (env OPENDPS_HUB_CONNECTION_STRING; "
             "default: from the local instance).")(wrapper)  # type: ignore[return-value]


# -- output -------------------------------------------------------------------------------------
PIPE_WIDTH = 160  # tables piped to grep or a file should not fold IDs at 80 columns


def console() -> Console:
    # created per call so click's CliRunner (which swaps sys.stdout) captures it
    console = Console(soft_wrap=True)
    if not console.is_terminal:
        console.width = max(console.width, PIPE_WIDTH)
    return console


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def show(data: Any, as_json: bool) -> None:
    """One object: plain JSON for scripts, highlighted JSON for people."""
    if as_json:
        print_json(data)
    else:
        console().print(JSON.from_data(data, ensure_ascii=False))


def details(rows: Sequence[tuple[str, Any]], *, title: str | None = None) -> None:
    """One object as a two-column table (label, value) for people."""
    out = Table(show_header=False, title=title)
    out.add_column(style="bold")
    out.add_column(overflow="fold")
    for label, value in rows:
        out.add_row(label, _cell(value))
    console().print(out)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, Callable[[dict], Any]]],
          as_json: bool, *, title: str | None = None) -> None:
    """A list: the raw JSON array with ``--json``, else a table of the chosen columns."""
    if as_json:
        print_json(list(rows))
        return
    out = Table(title=title)
    for header, _ in columns:
        out.add_column(header, overflow="fold")
    for row in rows:
        out.add_row(*(_cell(get(row)) for _, get in columns))
    console().print(out)
    if not rows:
        console().print("(none)", style="dim")

