"""The CA-certificate admin REST API (proof of possession) as tests drive it."""

from __future__ import annotations

import json
from typing import Any

from opendps.protocol import sas

from .raw import https
from .x509_factory import Issued, make


def owner_headers(server) -> dict[str, str]:  # type: ignore[no-untyped-def]
    key = server.info["serviceConnectionString"].split("SharedAccessKey=")[1]
    return {"Authorization": sas.generate(server.host, key,
                                          key_name="provisioningserviceowner")}


def call(server, method: str, path: str, body: Any = None,  # type: ignore[no-untyped-def]
         if_match: str | None = None) -> tuple[int, Any]:
    headers = owner_headers(server)
    if if_match is not None:
        headers["If-Match"] = if_match
    status, _, data = https(server, method, f"/opendps/certificates{path}?api-version=2021-10-01",
                            json.dumps(body) if body is not None else None, headers)
    return status, data


def upload_and_prove(server, name: str, ca: Issued) -> dict:  # type: ignore[no-untyped-def]
    status, uploaded = call(server, "PUT", f"/{name}", {"certificate": ca.pem})
    assert status == 201, uploaded
    assert uploaded["properties"]["isVerified"] is False
    status, coded = call(server, "POST", f"/{name}/generateVerificationCode",
                         if_match=uploaded["etag"])
    assert status == 200, coded
    code = coded["properties"]["verificationCode"]
    proof = make(code, ca, client_eku=False)
    status, verified = call(server, "POST", f"/{name}/verify", {"certificate": proof.pem},
                            if_match=coded["etag"])
    assert status == 200, verified
    assert verified["properties"]["isVerified"] is True
    return verified


def admin(server, method: str, path: str, body: Any = None) -> tuple[int, Any]:  # type: ignore[no-untyped-def]
    """Any /opendps/… admin call with the owner policy."""
    status, _, data = https(server, method, f"/opendps{path}?api-version=2021-10-01",
                            json.dumps(body) if body is not None else None,
                            owner_headers(server))
    return status, data
