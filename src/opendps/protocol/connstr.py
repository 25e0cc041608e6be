"""``HostName=…;SharedAccessKeyName=…;SharedAccessKey=…`` connection strings."""

from __future__ import annotations

from dataclasses import dataclass


class ConnectionStringError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ConnectionString:
    host_name: str
    key_name: str
    key: str

    def __str__(self) -> str:
        return (f"HostName={self.host_name};SharedAccessKeyName={self.key_name};"
                f"SharedAccessKey={self.key}")


def parse(text: str) -> ConnectionString:
    fields: dict[str, str] = {}
    for part in text.strip().split(";"):
        if not part:
            continue
        name, sep, value = part.partition("=")
        if not sep:
            raise ConnectionStringError(f"connection string part without '=': {name!r}")
        fields[name.strip().lower()] = value.strip()
    try:
        return ConnectionString(fields["hostname"], fields["sharedaccesskeyname"],
                                fields["sharedaccesskey"])
    except KeyError as exc:
        raise ConnectionStringError(f"connection string lacks {exc.args[0]}") from None
