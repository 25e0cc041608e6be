"""DPS service REST client (protocol.md §4): enrollments, enrollment groups, registrations,
and opendps's CA certificates with proof of possession.

Speaks api-version 2021-10-01 like the Python and Node service SDKs, so it works against
Azure DPS as well as against opendps. Azure keeps CA certificates and linked hubs in the management
plane (ARM, §5); opendps serves the same shapes under ``/opendps/certificates`` and
``/opendps/linkedHubs``, signed with a service SAS of a policy with ServiceConfig.
Deprovisioning (``/opendps/registrations/{id}/deprovision``) is opendps's one call for what
Azure's how-to does in three steps.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

from ..protocol import connstr
from ._http import RestClient, ServiceError, if_match_header

API_VERSION = "2021-10-01"
CERTIFICATES = "/opendps/certificates"
LINKED_HUBS = "/opendps/linkedHubs"
BulkMode = Literal["create", "update", "updateIfMatchETag", "delete"]

__all__ = ["API_VERSION", "DpsServiceClient", "ServiceError"]


def _seg(value: str) -> str:
    return urllib.parse.quote(value, safe="")


class DpsServiceClient(RestClient):
    """One client per service connection string; use as ``async with``."""

    api_version = API_VERSION

    @classmethod
    def from_connection_string(cls, text: str, *, ca_file: str | Path | None = None,
                               port: int = 443, base_url: str | None = None,
                               ) -> DpsServiceClient:
        return cls(connstr.parse(text), ca_file=ca_file, port=port, base_url=base_url)

    # -- individual enrollments -----------------------------------------------------------
    async def get_enrollment(self, registration_id: str) -> dict[str, Any]:
        body, _ = await self.call("GET", f"/enrollments/{_seg(registration_id)}")
        return body

    async def create_or_update_enrollment(self, enrollment: dict[str, Any], *,
                                          if_match: str | None = None) -> dict[str, Any]:
        rid = enrollment["registrationId"]
        body, _ = await self.call("PUT", f"/enrollments/{_seg(rid)}", body=enrollment,
                                  headers=if_match_header(if_match))
        return body

    async def delete_enrollment(self, registration_id: str, *,
                                if_match: str | None = None) -> None:
        await self.call("DELETE", f"/enrollments/{_seg(registration_id)}",
                        headers=if_match_header(if_match))

    async def get_enrollment_attestation(self, registration_id: str) -> dict[str, Any]:
        """The attestation mechanism with its secrets (the GET hides symmetric keys)."""
        body, _ = await self.call(
            "POST", f"/enrollments/{_seg(registration_id)}/attestationmechanism")
        return body

    async def query_enrollments(self, query: str = "SELECT * FROM enrollments", *,
                                page_size: int | None = None) -> list[dict[str, Any]]:
        return [item async for item in self.iter_query("/enrollments/query", query, page_size)]

    async def bulk_enrollments(self, enrollments: list[dict[str, Any]],
                               mode: BulkMode) -> dict[str, Any]:
        body, _ = await self.call("POST", "/enrollments",
                                  body={"enrollments": enrollments, "mode": mode})
        return body

    # -- enrollment groups -------------------------------------------------------------------
    async def get_enrollment_group(self, group_id: str) -> dict[str, Any]:
        body, _ = await self.call("GET", f"/enrollmentGroups/{_seg(group_id)}")
        return body

    async def create_or_update_enrollment_group(self, group: dict[str, Any], *,
                                                if_match: str | None = None) -> dict[str, Any]:
        gid = group["enrollmentGroupId"]
        body, _ = await self.call("PUT", f"/enrollmentGroups/{_seg(gid)}", body=group,
                                  headers=if_match_header(if_match))
        return body

    async def delete_enrollment_group(self, group_id: str, *,
                                      if_match: str | None = None) -> None:
        await self.call("DELETE", f"/enrollmentGroups/{_seg(group_id)}",
                        headers=if_match_header(if_match))

    async def get_enrollment_group_attestation(self, group_id: str) -> dict[str, Any]:
        body, _ = await self.call(
            "POST", f"/enrollmentGroups/{_seg(group_id)}/attestationmechanism")
        return body

    async def query_enrollment_groups(self, query: str = "SELECT * FROM enrollmentGroups", *,
                                      page_size: int | None = None) -> list[dict[str, Any]]:
        return [item async for item in
                self.iter_query("/enrollmentGroups/query", query, page_size)]

    async def bulk_enrollment_groups(self, groups: list[dict[str, Any]],
                                     mode: BulkMode) -> dict[str, Any]:
        body, _ = await self.call("POST", "/enrollmentGroups",
                                  body={"enrollmentGroups": groups, "mode": mode})
        return body

    # -- registration states -----------------------------------------------------------------
    async def get_registration(self, registration_id: str) -> dict[str, Any]:
        body, _ = await self.call("GET", f"/registrations/{_seg(registration_id)}")
        return body

    async def delete_registration(self, registration_id: str, *,
                                  if_match: str | None = None) -> None:
        await self.call("DELETE", f"/registrations/{_seg(registration_id)}",
                        headers=if_match_header(if_match))

    async def query_registrations(self, group_id: str, *,
                                  page_size: int | None = None) -> list[dict[str, Any]]:
        path = f"/registrations/{_seg(group_id)}/query"
        return [item async for item in self.iter_query(path, None, page_size)]

    # -- CA certificates (opendps admin API, proof of possession §5) ---------------------------
    async def upload_ca_certificate(self, name: str, certificate_pem: str, *,
                                    is_verified: bool = False,
                                    if_match: str | None = None) -> dict[str, Any]:
        """Create (201) or replace (200) a CA certificate; ``is_verified`` skips the proof."""
        body, _ = await self.call(
            "PUT", f"{CERTIFICATES}/{_seg(name)}",
            body={"certificate": certificate_pem, "isVerified": is_verified},
            headers=if_match_header(if_match))
        return body

    async def list_ca_certificates(self) -> list[dict[str, Any]]:
        body, _ = await self.call("GET", CERTIFICATES)
        return list((body or {}).get("value") or [])

    async def get_ca_certificate(self, name: str) -> dict[str, Any]:
        body, _ = await self.call("GET", f"{CERTIFICATES}/{_seg(name)}")
        return body

    async def delete_ca_certificate(self, name: str, *, if_match: str | None = None) -> None:
        await self.call("DELETE", f"{CERTIFICATES}/{_seg(name)}",
                        headers=if_match_header(if_match))

    async def generate_verification_code(self, name: str, etag: str) -> dict[str, Any]:
        """A new code in ``properties.verificationCode``; the answer's etag is what
        ``verify_ca_certificate`` needs (the service requires If-Match on both)."""
        body, _ = await self.call(
            "POST", f"{CERTIFICATES}/{_seg(name)}/generateVerificationCode",
            headers=if_match_header(etag))
        return body

    async def verify_ca_certificate(self, name: str, etag: str,
                                    certificate_pem: str) -> dict[str, Any]:
        """Prove possession with a certificate whose CN is the code, signed by the CA."""
        body, _ = await self.call(
            "POST", f"{CERTIFICATES}/{_seg(name)}/verify",
            body={"certificate": certificate_pem}, headers=if_match_header(etag))
        return body

    # -- linked IoT hubs (opendps admin API; Azure: the DPS resource's iotHubs) ---------------
    async def list_linked_hubs(self) -> list[dict[str, Any]]:
        """Every linked hub; connection strings come back with the key masked."""
        body, _ = await self.call("GET", LINKED_HUBS)
        return list((body or {}).get("value") or [])

    async def put_linked_hub(self, host: str, *, connection_string: str | None = None,
                             built_in: bool | None = None,
                             allocation_weight: int | None = None,
                             apply_allocation_policy: bool | None = None,
                             location: str | None = None) -> dict[str, Any]:
        """Link (201) or change (200) a hub. Only the given fields are sent, and the server
        fills the others with its defaults (PUT replaces): to change one field, send all."""
        fields = {"connectionString": connection_string, "builtIn": built_in,
                  "allocationWeight": allocation_weight,
                  "applyAllocationPolicy": apply_allocation_policy, "location": location}
        body, _ = await self.call("PUT", f"{LINKED_HUBS}/{_seg(host)}",
                                  body={k: v for k, v in fields.items() if v is not None})
        return body

    async def unlink_hub(self, host: str) -> None:
        await self.call("DELETE", f"{LINKED_HUBS}/{_seg(host)}")

    # -- deprovisioning (opendps admin API) ---------------------------------------------------
    async def deprovision(self, registration_id: str, *, disable: bool = False
                          ) -> dict[str, Any]:
        """Disenroll a device and delete its hub identity; the answer says what was done
        (``enrollment``, ``hubIdentity``, ``registrationRecord``)."""
        body, _ = await self.call(
            "POST", f"/opendps/registrations/{_seg(registration_id)}/deprovision",
            body={"disable": disable})
        return body

    # -- paging -----------------------------------------------------------------------------
    async def iter_query(self, path: str, query: str | None,
                         page_size: int | None = None) -> AsyncIterator[dict[str, Any]]:
        """Every item of every page: follow ``x-ms-continuation`` until a page lacks it."""
        continuation: str | None = None
        while True:
            headers: dict[str, str] = {}
            if page_size:
                headers["x-ms-max-item-count"] = str(page_size)
            if continuation:
                headers["x-ms-continuation"] = continuation
            body, response_headers = await self.call(
                "POST", path, body={"query": query} if query is not None else {},
                headers=headers)
            for item in body or []:
                yield item
            continuation = response_headers.get("x-ms-continuation")
            if not continuation:
                return
