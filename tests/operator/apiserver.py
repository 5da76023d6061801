"""kmock's Kubernetes emulator, taught the API server behaviour the operator relies on.

kmock stores objects as JSON and merges patches into them. A real API server also:

- stamps uid, creationTimestamp, resourceVersion and generation (bumped when `spec` changes),
  and names objects created with `generateName` (kopf's Events);
- isolates the status subresource (a patch of `/status` changes only `status`, a patch of the
  object never changes `status`);
- implements server-side apply (PATCH application/apply-patch+yaml): creates a missing object;
  otherwise the applied fields replace the manager's (modelled here as: everything but
  metadata and status is the applied object's, labels and annotations merge, status stays);
  requires a fieldManager; with `dryRun=All` it answers what the object would become and
  stores nothing;
- garbage-collects objects whose owner (by uid in ownerReferences) is gone.

Those are added here, in the test harness, so the operator is written for the real thing.
"""

from __future__ import annotations

import copy
import datetime
import itertools
import uuid
from typing import Any

import aiohttp.web
import attrs
import kmock

APPLY = "application/apply-patch+yaml"
SYSTEM_FIELDS = (
    "uid",
    "creationTimestamp",
    "resourceVersion",
    "generation",
    "finalizers",
    "deletionTimestamp",
)

Manifest = dict[str, Any]
RECENT_REQUESTS = 100


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


def object_key(request: kmock.Request) -> tuple[kmock.resource, str | None, str]:
    """The key of the object a request names, as kmock stores it."""
    assert request.resource is not None
    return request.resource, request.namespace, request.name or ""


@attrs.define(kw_only=True)
class ApiServer(kmock.KubernetesEmulator):
    """The emulator with the behaviour above."""

    _versions: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1), init=False)
    _archive: list[kmock.Request] = attrs.field(factory=list, init=False)

    def _version(self) -> str:
        return str(next(self._versions))

    def log(self, method: str | None = None) -> list[kmock.Request]:
        """Requests served so far (of one HTTP method), in order: a plain list, without kmock's
        filtering machinery, which is too slow to poll while the operator runs."""
        requests = [*self._archive, *self._requests]
        return requests if method is None else [r for r in requests if r.method == method]

    def _archive_requests(self) -> None:
        """Move all but the latest requests out of kmock's log: kmock routes each request by
        scanning its whole log (quadratic over a test); `log()` still has them all."""
        if len(self._requests) > RECENT_REQUESTS:
            self._archive.extend(self._requests[:-RECENT_REQUESTS])
            del self._requests[:-RECENT_REQUESTS]

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        self._archive_requests()
        if request.resource is None:
            return await super()._handle(request)
        if request.action == kmock.action.UPDATE and APPLY in request.headers.get(
            "Content-Type", ""
        ):
            return await self._apply(request)
        current = self._current(request)
        if isinstance(request.data, dict):  # not a JSON patch (a list), as kopf's finalizers
            self._stamp(request, current)
        uid = (current or {}).get("metadata", {}).get("uid")
        response = await super()._handle(request)
        if uid is not None and request.action in (kmock.action.DELETE, kmock.action.UPDATE):
            await self._collect_garbage(request, uid)
        return response

    def _current(self, request: kmock.Request) -> Manifest | None:
        key = object_key(request)
        if request.name is None or key not in self.objects or self.objects[key].deleted:
            return None
        return copy.deepcopy(self.objects[key].raw)

    def _stamp(self, request: kmock.Request, current: Manifest | None) -> None:
        data: Manifest = request.data
        meta = data.setdefault("metadata", {})
        if request.action == kmock.action.CREATE:
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:10]
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=now(), generation=1)
            data.pop("status", None)
        if request.action not in (kmock.action.CREATE, kmock.action.UPDATE):
            return
        if request.action == kmock.action.UPDATE and request.subresource == "status":
            for key in [key for key in data if key not in ("status", "metadata")]:
                del data[key]
            data["metadata"] = {}
        elif request.action == kmock.action.UPDATE:
            data.pop("status", None)
            old_spec = (current or {}).get("spec")
            if "spec" in data and current is not None:
                merged = kmock.Object(copy.deepcopy(current))
                merged.patch({"spec": data["spec"]})
                if merged.get("spec") != old_spec:
                    meta["generation"] = int(current["metadata"].get("generation", 1)) + 1
        data["metadata"]["resourceVersion"] = self._version()

    async def _apply(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        if not request.params.get("fieldManager"):
            return aiohttp.web.json_response(
                {
                    "kind": "Status",
                    "code": 400,
                    "reason": "BadRequest",
                    "message": "PATCH with apply requires a fieldManager",
                },
                status=400,
            )
        assert request.resource is not None
        key = object_key(request)
        async with self._lock:
            exists = key in self.objects and not self.objects[key].deleted
            current = copy.deepcopy(self.objects[key].raw) if exists else None
            merged = self._merge_applied(copy.deepcopy(request.data), current)
            if request.params.get("dryRun") == "All":  # what it would become; nothing stored
                if current is not None:
                    merged["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                return aiohttp.web.json_response(merged)
            merged["metadata"]["resourceVersion"] = self._version()
            if key in self.objects:
                self.objects[key].create(merged)
            else:
                self.objects[key] = merged
            event = {"type": "MODIFIED" if exists else "ADDED", "object": merged}
            await self._buses[request.resource].put(event)
        return aiohttp.web.json_response(merged)

    def _merge_applied(self, applied: Manifest, current: Manifest | None) -> Manifest:
        meta = applied.setdefault("metadata", {})
        applied.pop("status", None)
        if current is None:
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=now(), generation=1)
            return applied
        old_meta = current["metadata"]
        for field in SYSTEM_FIELDS:
            if field in old_meta:
                meta[field] = old_meta[field]
        for field in ("labels", "annotations"):
            if field in old_meta or field in meta:
                meta[field] = {**old_meta.get(field, {}), **meta.get(field, {})}
        if "status" in current:
            applied["status"] = current["status"]
        if applied.get("spec") != current.get("spec"):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        return applied

    async def _collect_garbage(self, request: kmock.Request, uid: str) -> None:
        """Once an object is gone, delete what it owned (in the background, as the GC does)."""
        key = object_key(request)
        if key in self.objects and not self.objects[key].deleted:
            return
        async with self._lock:
            gone = {uid}
            while gone:
                owner = gone.pop()
                for (resource, _, _), obj in list(self.objects.items()):
                    if obj.deleted:
                        continue
                    references = obj.get("metadata", {}).get("ownerReferences") or []
                    if any(ref.get("uid") == owner for ref in references):
                        raw = copy.deepcopy(obj.raw)
                        obj.delete()
                        await self._buses[resource].put({"type": "DELETED", "object": raw})
                        gone.add(raw["metadata"]["uid"])
