"""api-version handling: accept every version any SDK sends (§1.2, §4.1, §8.10)."""

from __future__ import annotations

import re

from aiohttp import web

from ..protocol.errors import DpsError, ErrorCode

_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")


def check_api_version(version: str | None) -> str:
    if not version:
        raise DpsError(ErrorCode.INVALID_API_VERSION, "the api-version query parameter is required")
    if not _VERSION.match(version):
        raise DpsError(ErrorCode.INVALID_API_VERSION, f"api-version {version!r} is not supported")
    return version


SERVICE_VERSIONS = ("2018-09-01-preview", "2018-11-01", "2019-03-31", "2021-06-01",
                    "2021-10-01")


def require_service_api_version(request: web.Request) -> str:
    version = request.query.get("api-version")
    if version not in SERVICE_VERSIONS:
        raise DpsError(ErrorCode.INVALID_API_VERSION,
                       f"api-version {version!r} is not supported; use one of "
                       + ", ".join(SERVICE_VERSIONS))
    return version
