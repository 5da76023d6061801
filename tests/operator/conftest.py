"""The operator as production assembles it (`runner.build_operator`), running real kopf in its
own thread against the extended kmock emulator (`apiserver.ApiServer`) on 127.0.0.1.

kopf runs in a thread with its own event loop: in the test's loop, `kopf.operator()` would
cancel every task created after it started (pytest-asyncio's teardown included). The emulator
keeps serving on the test's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator
from typing import Any

import kmock
import kopf
import pytest

from mastertrade_operator.kube import MASTERTRADE, OWNED, plain_login
from mastertrade_operator.reconcile import Timing
from mastertrade_operator.render.helm import find_helm
from mastertrade_operator.runner import Assembly, build_operator
from tests.helm import helm_binary
from tests.operator.apiserver import ApiServer

NAMESPACE = "default"
TIMING = Timing(phase_retry=0.5, resync=1.0)
"""Fast enough for tests: a phase is re-checked twice a second, a resync every second."""

ALL_VERBS = {"list", "watch", "get", "patch", "create", "delete"}


def declare_resources(api: ApiServer) -> None:
    """What discovery shows: the CRD's resource, the owned kinds, and kopf's backbone."""
    api.resources[f"{MASTERTRADE.api_version}/{MASTERTRADE.plural}"] = kmock.ResourceInfo(
        kind=MASTERTRADE.kind, namespaced=True, verbs=ALL_VERBS, subresources={"status"}
    )
    for resource in OWNED.values():
        status = {"status"} if resource.kind in ("Deployment", "StatefulSet", "Job") else set()
        api.resources[f"{resource.api_version}/{resource.plural}"] = kmock.ResourceInfo(
            kind=resource.kind, namespaced=True, verbs=ALL_VERBS, subresources=status
        )
    api.resources["autoscaling/v2/horizontalpodautoscalers"] = kmock.ResourceInfo(
        kind="HorizontalPodAutoscaler", namespaced=True, verbs={"list", "watch", "get"}
    )
    api.resources["v1/events"] = kmock.ResourceInfo(kind="Event", namespaced=True, verbs={"create"})
    api.resources["v1/namespaces"] = kmock.ResourceInfo(
        kind="Namespace", namespaced=False, verbs={"list", "watch", "get"}
    )
    api.resources["apiextensions.k8s.io/v1/customresourcedefinitions"] = kmock.ResourceInfo(
        kind="CustomResourceDefinition", namespaced=False, verbs={"list", "watch", "get"}
    )


@pytest.fixture
def api(kmock: ApiServer) -> ApiServer:
    declare_resources(kmock)
    return kmock


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def liveness() -> str:
    """Where the operator under test serves /healthz."""
    return f"http://127.0.0.1:{free_port()}/healthz"


@pytest.fixture
async def operator(api: ApiServer, liveness: str) -> AsyncIterator[Assembly]:
    """The operator, started and ready; stopped (and checked to stop) afterwards."""
    server = str(api.url).rstrip("/")
    assembly = build_operator(TIMING, find_helm(helm_binary()), login=plain_login(server))
    settings = assembly.settings
    settings.scanning.disabled = True  # namespaces are exact names: no namespace/CRD watching
    settings.watching.server_timeout = 5
    stop, ready = threading.Event(), threading.Event()
    options: dict[str, Any] = {
        "registry": assembly.registry,
        "settings": settings,
        "memo": assembly.memo,
        "standalone": True,
        "liveness_endpoint": liveness,
        "namespaces": [NAMESPACE],
        "ready_flag": ready,
    }
    thread = threading.Thread(target=asyncio.run, args=(run_until(stop, options),), daemon=True)
    thread.start()
    assert await asyncio.to_thread(ready.wait, 10), "kopf did not start"
    yield assembly
    stop.set()
    await asyncio.to_thread(thread.join, 10)
    assert not thread.is_alive(), "kopf did not stop"


async def run_until(stop: threading.Event, options: dict[str, Any]) -> None:
    """kopf until `stop` is set, then cancelled: a graceful stop (kopf's stop flag) waits 5 s
    for the resync timer kopf respawns on the last watch events while it shuts down."""
    operator = asyncio.create_task(kopf.operator(**options))
    await asyncio.to_thread(stop.wait)
    operator.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await operator
