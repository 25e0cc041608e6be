"""First start creates the instance; later starts reuse it; the server certificate covers
every host name devices are sent to."""

from __future__ import annotations

import ipaddress
import re

from cryptography import x509

from opendps import pki
from opendps.config import load
from opendps.instance import bootstrap
from opendps.store import MemoryStore


async def test_bootstrap_creates_then_reuses(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = MemoryStore()
    settings = load({"data_dir": str(tmp_path), "dps_host_name": "dps.example",
                     "hub_host_names": "hub-a.example,127.0.0.9"}, env={})
    first = await bootstrap(settings, store)
    assert re.fullmatch(r"0ne[0-9A-F]{8}", first.id_scope)
    assert first.owner.name == "provisioningserviceowner"
    assert {"EnrollmentRead", "EnrollmentWrite", "ServiceConfig", "RegistrationStatusRead",
            "RegistrationStatusWrite"} <= first.owner.rights
    assert sorted(h.host_name for h in first.hubs) == ["127.0.0.9", "hub-a.example"]
    ca_before = first.ca_path.read_text()
    cert_before = first.cert_path.read_text()

    second = await bootstrap(settings, store)
    assert second.id_scope == first.id_scope
    assert second.owner.primary_key == first.owner.primary_key
    assert second.ca_path.read_text() == ca_before
    assert second.cert_path.read_text() == cert_before
    info = second.info()
    assert info["idScope"] == first.id_scope and info["caCertificate"] == str(first.ca_path)
    assert info["serviceConnectionString"].startswith(
        "HostName=dps.example;SharedAccessKeyName=provisioningserviceowner;SharedAccessKey=")
    assert all(h["connectionString"].startswith(f"HostName={h['hostName']};"
                                                "SharedAccessKeyName=iothubowner;")
               for h in info["hubs"])

    cert = x509.load_pem_x509_certificate(second.cert_path.read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns = set(sans.get_values_for_type(x509.DNSName))
    ips = set(sans.get_values_for_type(x509.IPAddress))
    assert {"localhost", "dps.example", "hub-a.example"} <= dns
    assert {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"),
            ipaddress.ip_address("127.0.0.9")} <= ips
    assert oct(second.key_path.stat().st_mode & 0o777) == "0o600"

    # a new hub host name re-issues the certificate with the same CA
    more = load({"data_dir": str(tmp_path), "hub_host_names": "hub-b.example"}, env={})
    third = await bootstrap(more, store)
    assert third.ca_path.read_text() == ca_before
    assert third.cert_path.read_text() != cert_before
    assert pki.server_cert_fits(third.cert_path.read_text().split("-----END CERTIFICATE-----")[0]
                                + "-----END CERTIFICATE-----\n",
                                pki.server_names(["dps.example", "hub-b.example"]), ca_before)


def test_cert_that_misses_a_name_does_not_fit() -> None:
    ca_cert, ca_key = pki.create_ca()
    cert, _ = pki.create_server_cert(ca_cert, ca_key, pki.server_names(["a.example"]))
    assert pki.server_cert_fits(cert, pki.server_names(["a.example"]), ca_cert)
    assert not pki.server_cert_fits(cert, pki.server_names(["b.example"]), ca_cert)
    other_ca, _ = pki.create_ca("another")
    assert not pki.server_cert_fits(cert, pki.server_names(["a.example"]), other_ca)
