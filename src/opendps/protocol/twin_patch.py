"""JSON merge semantics of twin patches: objects merge, ``null`` deletes, ``$``-keys are
metadata the service owns."""

from __future__ import annotations

from typing import Any

MAX_TWIN_DEPTH = 10


class TwinPatchError(ValueError):
    pass


def _depth(value: Any, level: int = 1) -> int:
    if isinstance(value, dict) and value:
        return max(_depth(v, level + 1) for v in value.values())
    return level


def merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(patch, dict):
        raise TwinPatchError("a twin patch must be a JSON object")
    if _depth(patch) > MAX_TWIN_DEPTH:
        raise TwinPatchError(f"a twin patch may nest at most {MAX_TWIN_DEPTH} levels")
    out = dict(target)
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict):
            base = out.get(key)
            out[key] = merge(base if isinstance(base, dict) else {}, value)
        else:
            out[key] = value
    return out


def without_nulls(value: dict[str, Any]) -> dict[str, Any]:
    return merge({}, value)
