"""``x-ms-max-item-count`` / ``x-ms-continuation`` paging; the continuation header is omitted
on the last page (Node stops on its absence, §4.2)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..protocol.errors import DpsError, ErrorCode
from ..store.interface import Page
from .responses import json_response

DEFAULT_PAGE = 100
MAX_PAGE = 1000


def page_params(request: web.Request) -> tuple[int, str | None]:
    raw = request.headers.get("x-ms-max-item-count")
    try:
        limit = int(raw) if raw else DEFAULT_PAGE
    except ValueError:
        raise DpsError(ErrorCode.ARGUMENT_INVALID,
                       "x-ms-max-item-count must be an integer") from None
    if limit < 1:
        raise DpsError(ErrorCode.ARGUMENT_INVALID, "x-ms-max-item-count must be positive")
    return min(limit, MAX_PAGE), request.headers.get("x-ms-continuation") or None


def paged_response(items: list[Any], page: Page, limit: int, item_type: str) -> web.Response:
    headers = {"x-ms-max-item-count": str(limit), "x-ms-item-type": item_type}
    if page.continuation:
        headers["x-ms-continuation"] = page.continuation
    return json_response(items, headers=headers)
