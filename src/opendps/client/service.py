"""DPS service REST client (protocol.md §4): enrollments, enrollment groups, registrations.

Speaks api-version 2021-10-01 like the Python and Node service SDKs, so it works against
Azure DPS as well as against opendps.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

from ..protocol import connstr
from ._http import RestClient, ServiceError, if_match_header

API_VERSION = "2021-10-01"
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
