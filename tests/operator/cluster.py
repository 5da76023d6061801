"""What the operator tests do to the emulated cluster: create and change resources, play the
controllers (mark workloads ready, Jobs succeeded), look at objects, wait with deadlines."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import kmock

from mastertrade_operator.kube import MASTERTRADE, OWNED, Resource
from tests.helm import operator_render
from tests.operator.apiserver import ApiServer

Manifest = dict[str, Any]
NAMESPACE = "default"
WRITES = ("POST", "PATCH", "PUT", "DELETE")


def rendered_names(name: str, kind: str, spec: Manifest | None = None) -> set[str]:
    """Names of the objects of `kind` the chart's render of `spec` has (the expectation)."""
    objects = operator_render(spec, name, NAMESPACE)
    return {obj["metadata"]["name"] for obj in objects if obj["kind"] == kind}


def rendered_count(name: str, spec: Manifest | None = None) -> int:
    return len(operator_render(spec, name, NAMESPACE))


async def eventually(condition: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    """Poll `condition` until it returns something true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        assert time.monotonic() < deadline, f"not met in {timeout}s: {what or condition}"
        await asyncio.sleep(0.05)


def path_of(kind: str, name: str = "") -> str:
    if kind == MASTERTRADE.kind:
        return MASTERTRADE.path(NAMESPACE, name or None)
    return OWNED[kind].path(NAMESPACE, name or None)


async def request(api: ApiServer, method: str, path: str, body: Any = None) -> Manifest:
    headers = {"Content-Type": "application/merge-patch+json"} if method == "PATCH" else {}
    response = await api.request(method, path, json=body, headers=headers)
    assert response.status < 400, await response.text()
    result: Manifest = await response.json()
    return result


async def create_mtd(api: ApiServer, name: str, spec: Manifest) -> Manifest:
    body = {
        "apiVersion": MASTERTRADE.api_version,
        "kind": MASTERTRADE.kind,
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": spec,
    }
    return await request(api, "POST", path_of(MASTERTRADE.kind), body)


def stored(api: ApiServer, resource: Resource) -> dict[str, Manifest]:
    """Objects of a resource in the test namespace, by name (not the deleted ones)."""
    return {
        name: obj.raw
        for (res, namespace, name), obj in api.objects.items()
        if (res.group, res.version, res.plural)
        == (resource.group, resource.version, resource.plural)
        and namespace == NAMESPACE
        and not obj.deleted
    }


def mtd(api: ApiServer, name: str) -> Manifest | None:
    return stored(api, MASTERTRADE).get(name)


def status_of(api: ApiServer, name: str) -> Manifest:
    status: Manifest = (mtd(api, name) or {}).get("status") or {}
    return status


def children(api: ApiServer, kind: str | None = None) -> dict[tuple[str, str], Manifest]:
    """Live objects of the owned kinds, by (kind, name)."""
    return {
        (resource.kind, name): obj
        for resource in OWNED.values()
        if kind in (None, resource.kind)
        for name, obj in stored(api, resource).items()
    }


def child(api: ApiServer, kind: str, name: str) -> Manifest | None:
    return children(api, kind).get((kind, name))


def writes(api: ApiServer) -> list[kmock.Request]:
    """Every write request the server has seen so far (dry runs write nothing)."""
    return [
        item for item in api.log() if item.method in WRITES and item.params.get("dryRun") != "All"
    ]


async def mark_ready(api: ApiServer, kinds: tuple[str, ...] = ("StatefulSet", "Deployment")) -> int:
    """Play the controllers: workloads all ready, Jobs succeeded. How many were changed."""
    changed = 0
    for (kind, name), obj in children(api).items():
        if kind not in kinds:
            continue
        if kind == "Job":
            status: Manifest = {"succeeded": 1}
        else:
            replicas = obj["spec"].get("replicas", 1)
            generation = obj["metadata"].get("generation", 1)
            status = {"readyReplicas": replicas, "observedGeneration": generation}
        if {**obj.get("status", {}), **status} != obj.get("status", {}):
            await request(api, "PATCH", path_of(kind, name) + "/status", {"status": status})
            changed += 1
    return changed


async def roll_out(api: ApiServer, name: str, timeout: float = 60.0) -> Manifest:
    """Play the controllers until the resource reports Ready; its status."""
    deadline = time.monotonic() + timeout
    while status_of(api, name).get("phase") != "Ready":
        assert time.monotonic() < deadline, f"not Ready: {status_of(api, name)}"
        await mark_ready(api, ("StatefulSet", "Deployment", "Job"))
        await asyncio.sleep(0.05)
    return status_of(api, name)
