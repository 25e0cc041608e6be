"""Distinguished names spelled the way Azure shows them (``CN=my-device, O=Contoso, C=US``).

Azure DPS is a .NET service: ``subjectName``/``issuerName`` in ``X509CertificateInfo`` and the
portal's "Subject" column are ``X509Certificate2.Subject``, i.e.
``X500DistinguishedName.Decode(Reversed)``. That format (dotnet/runtime ``X500NameEncoder``):

* RDNs in *reverse* encoding order, so the usual "most specific first" order for certificates
  that encode ``C, O, CN`` (and ``O=MSR_TEST, C=US, CN=riot-device`` for one that encodes
  ``CN, C, O``, as in the portal screenshot quoted in seed-digest-4 item 58);
* ``", "`` between RDNs and ``" + "`` inside a multi-valued RDN;
* Windows short names (``CN``, ``O``, ``OU``, ``C``, ``S``, ``L``, ``E``, ``STREET``, ``DC``,
  ``T``, ``G``, ``I``, ``SN``, ``SERIALNUMBER``, ...) and ``OID.1.2.3`` for the rest;
* values in double quotes (inner quotes doubled) when empty, starting or ending with white
  space, or containing one of ``, + = " \\n < > # ;``. No backslash escaping (that is RFC 4514,
  which cryptography's ``rfc4514_string()`` implements, and which Azure does not show).
"""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import NameOID

# Windows/.NET friendly names for the attribute types that occur in practice.
_SHORT_NAMES: dict[str, str] = {
    NameOID.COMMON_NAME.dotted_string: "CN",
    NameOID.ORGANIZATION_NAME.dotted_string: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME.dotted_string: "OU",
    NameOID.COUNTRY_NAME.dotted_string: "C",
    NameOID.STATE_OR_PROVINCE_NAME.dotted_string: "S",
    NameOID.LOCALITY_NAME.dotted_string: "L",
    NameOID.EMAIL_ADDRESS.dotted_string: "E",
    NameOID.STREET_ADDRESS.dotted_string: "STREET",
    NameOID.DOMAIN_COMPONENT.dotted_string: "DC",
    NameOID.TITLE.dotted_string: "T",
    NameOID.GIVEN_NAME.dotted_string: "G",
    NameOID.INITIALS.dotted_string: "I",
    NameOID.SURNAME.dotted_string: "SN",
    NameOID.SERIAL_NUMBER.dotted_string: "SERIALNUMBER",
    NameOID.POSTAL_CODE.dotted_string: "PostalCode",
    NameOID.USER_ID.dotted_string: "UID",
}

_QUOTE_TRIGGERS = frozenset(',+="\n<>#;')
_QUOTABLE_SPACE = frozenset(" \t\n\v\f\r")


def _value(value: str | bytes) -> str:
    if isinstance(value, bytes):  # bit strings and the like: .NET prints them as #hex
        return "#" + value.hex().upper()
    value = value.rstrip("\0")  # .NET drops trailing NULs embedded in the DER
    if (
        not value
        or value[0] in _QUOTABLE_SPACE
        or value[-1] in _QUOTABLE_SPACE
        or any(c in _QUOTE_TRIGGERS for c in value)
    ):
        return '"' + value.replace('"', '""') + '"'
    return value


def _attribute(attribute: x509.NameAttribute) -> str:
    dotted = attribute.oid.dotted_string
    label = _SHORT_NAMES.get(dotted, f"OID.{dotted}")
    return f"{label}={_value(attribute.value)}"


def format_name(name: x509.Name) -> str:
    """``name`` as .NET's ``X500DistinguishedName.Name`` prints it (see the module docstring)."""
    rdns = list(name.rdns)
    rdns.reverse()
    return ", ".join(" + ".join(_attribute(a) for a in rdn) for rdn in rdns)


def quoted(text: str) -> str:
    """``text`` in single quotes for an error message, control characters escaped.

    Names and CNs come from the device; a raw newline in one must not forge a log line.
    """
    safe = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
    return f"'{safe}'"
