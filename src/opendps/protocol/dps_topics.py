"""DPS MQTT grammar: username, request topics, response topics (protocol.md §2)."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

RESPONSE_FILTER = "$dps/registrations/res/#"
REGISTER_PREFIX = "$dps/registrations/PUT/iotdps-register/"
POLL_PREFIX = "$dps/registrations/GET/iotdps-get-operationstatus/"


@dataclass(frozen=True, slots=True)
class DpsUsername:
    id_scope: str
    registration_id: str
    api_version: str | None
    params: dict[str, str]


def parse_username(username: str) -> DpsUsername | None:
    """``{scope}/registrations/{regId}/api-version=…&ClientVersion=…``; None if not that shape.

    No ``?`` is expected before ``api-version`` (unlike the hub), but one is tolerated.
    """
    parts = username.split("/", 3)
    if len(parts) < 3 or parts[1] != "registrations" or not parts[0] or not parts[2]:
        return None
    query = parts[3] if len(parts) == 4 else ""
    query = query.lstrip("?")
    params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    return DpsUsername(parts[0], parts[2], params.get("api-version"), params)


@dataclass(frozen=True, slots=True)
class DpsRequest:
    kind: str  # "register" | "poll"
    rid: str
    operation_id: str | None


def _params(topic: str, prefix: str) -> dict[str, str] | None:
    rest = topic[len(prefix):]
    if not rest.startswith("?"):
        return None
    out: dict[str, str] = {}
    for pair in rest[1:].split("&"):
        if not pair:
            continue
        key, _, value = pair.partition("=")
        out[urllib.parse.unquote(key)] = urllib.parse.unquote(value)
    return out


def parse_request_topic(topic: str) -> DpsRequest | None:
    """Register or poll; None for any other topic."""
    if topic.startswith(REGISTER_PREFIX):
        params = _params(topic, REGISTER_PREFIX)
        if params is None or "$rid" not in params:
            return None
        return DpsRequest("register", params["$rid"], None)
    if topic.startswith(POLL_PREFIX):
        params = _params(topic, POLL_PREFIX)
        if params is None or "$rid" not in params:
            return None
        return DpsRequest("poll", params["$rid"], params.get("operationId"))
    return None


def response_topic(status: int, rid: str, retry_after: int | None = None) -> str:
    """``$rid`` first and no other ``$`` key: Python splits the topic on ``$`` (§8.1)."""
    topic = f"$dps/registrations/res/{status}/?$rid={rid}"
    if retry_after is not None:
        topic += f"&retry-after={retry_after}"
    return topic
