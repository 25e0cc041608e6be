"""Device twins: versions, merge patches, and desired-property notifications."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..protocol.hub_models import empty_twin
from ..protocol.twin_patch import merge
from ..store.interface import EtagMismatch, Store, StoredDoc
from .bus import EventBus, desired_channel

MAX_CAS_ATTEMPTS = 50
# The etag of a twin nobody has written yet (IoT Hub's own for a version-1 twin). A new
# device's twin is not stored until something writes it: reads show ``empty_twin()``, and
# every registration of a new device writes one row (and its pages) fewer.
UNWRITTEN_ETAG = "AAAAAAAAAAE="


class TwinNotFound(Exception):
    pass


class TwinService:
    def __init__(self, store: Store, host_name: str, bus: EventBus) -> None:
        self.store = store
        self.host_name = host_name
        self.bus = bus

    async def get(self, device_id: str) -> StoredDoc | None:
        """The device's twin; an unwritten one when it has none stored yet. None: no such
        device."""
        stored = await self.store.get_twin(self.host_name, device_id)
        if stored is not None:
            return stored
        device = await self.store.get_device(self.host_name, device_id)
        if device is None:
            return None
        return StoredDoc(key=device_id, doc=empty_twin(), etag=UNWRITTEN_ETAG,
                         created=device.created, updated=device.created)

    async def _update(
        self, device_id: str, change: Callable[[dict[str, Any]], dict[str, Any]],
        if_match: str | None = None,
    ) -> StoredDoc:
        """Read-modify-write with compare-and-swap, so concurrent patches never lose one."""
        for _ in range(MAX_CAS_ATTEMPTS):
            current = await self.get(device_id)
            if current is None:
                raise TwinNotFound(device_id)
            if if_match not in (None, "*") and if_match != current.etag:
                raise EtagMismatch(device_id)
            base = current.doc
            doc = change(dict(base))
            doc["version"] = base.get("version", 1) + 1
            # a stored etag is hex, never the unwritten one
            if current.etag == UNWRITTEN_ETAG:  # the first write: unless another came first
                added = await self.store.add_twin(self.host_name, device_id, doc)
                if added is not None:
                    return added
                continue
            try:
                return await self.store.put_twin(self.host_name, device_id, doc,
                                                 if_match=current.etag)
            except EtagMismatch:
                if if_match not in (None, "*"):
                    raise
                continue
        raise EtagMismatch(device_id)

    async def patch_desired(self, device_id: str, patch: dict[str, Any], *,
                            tags: dict[str, Any] | None = None,
                            if_match: str | None = None) -> StoredDoc:
        def change(doc: dict[str, Any]) -> dict[str, Any]:
            if tags:
                doc["tags"] = merge(doc.get("tags", {}), tags)
            if patch:
                doc["desired"] = merge(doc.get("desired", {}), patch)
                doc["desiredVersion"] = doc.get("desiredVersion", 1) + 1
            return doc

        stored = await self._update(device_id, change, if_match)
        if patch:
            version = stored.doc["desiredVersion"]
            self.bus.publish(desired_channel(self.host_name, device_id),
                             dict(patch, **{"$version": version}))
        return stored

    async def replace(self, device_id: str, tags: dict[str, Any], desired: dict[str, Any],
                      if_match: str | None = None) -> StoredDoc:
        def change(doc: dict[str, Any]) -> dict[str, Any]:
            doc["tags"] = merge({}, tags)
            doc["desired"] = merge({}, desired)
            doc["desiredVersion"] = doc.get("desiredVersion", 1) + 1
            return doc

        stored = await self._update(device_id, change, if_match)
        self.bus.publish(desired_channel(self.host_name, device_id),
                         dict(stored.doc["desired"], **{"$version": stored.doc["desiredVersion"]}))
        return stored

    async def patch_reported(self, device_id: str, patch: dict[str, Any]) -> StoredDoc:
        def change(doc: dict[str, Any]) -> dict[str, Any]:
            doc["reported"] = merge(doc.get("reported", {}), patch)
            doc["reportedVersion"] = doc.get("reportedVersion", 1) + 1
            return doc

        return await self._update(device_id, change)
