"""Benchmark: a full reconcile of a new MasterTradeDeployment by the operator (real kopf) against
the kmock API emulator of the tests, beside a reference in the same run: the minimal kopf
operator of the shared kopf-kmock example (one ConfigMap, one Deployment, status Ready, applied
with the same client), which shows what kopf and the emulator cost by themselves. The emulator
runs in the same process (one GIL): its LIST responses dominate the figures, so a real API
server answers faster.

Figures: time from create to status Ready (the controllers are played instantly: a watcher marks
each workload ready and the Job succeeded as soon as they appear), the API requests of the
operator and of kopf, write requests in a steady state over a window (target: 0), and the
process RSS (operator, kopf and emulator together: an upper bound for the operator).
Run with `.venv/bin/python bench/operator_reconcile.py`.
"""

from __future__ import annotations

import asyncio
import resource
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kmock
import kopf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helm import helm_binary  # noqa: E402
from tests.operator.apiserver import ApiServer  # noqa: E402
from tests.operator.cluster import (  # noqa: E402
    create_mtd,
    mark_ready,
    mtd,
    rendered_count,
    status_of,
    writes,
)
from tests.operator.conftest import declare_resources  # noqa: E402

from mastertrade_operator.kube import MASTERTRADE, USER_AGENT, Kube, plain_login  # noqa: E402
from mastertrade_operator.reconcile import Timing  # noqa: E402
from mastertrade_operator.render.desired import build_owner_reference  # noqa: E402
from mastertrade_operator.render.helm import find_helm  # noqa: E402
from mastertrade_operator.runner import build_operator  # noqa: E402

STEADY_WINDOW = 5.0
TIMING = Timing(phase_retry=0.5, resync=1.0)


def start_kopf(options: dict[str, Any]) -> Callable[[], None]:
    """kopf in its own thread (as in the tests); returns its stopper."""
    stop, ready = threading.Event(), threading.Event()
    options = {**options, "standalone": True, "namespaces": ["default"]}
    thread = threading.Thread(
        target=kopf.run, kwargs={**options, "stop_flag": stop, "ready_flag": ready}, daemon=True
    )
    thread.start()
    assert ready.wait(10), "kopf did not start"

    def stopper() -> None:
        stop.set()
        thread.join(15)

    return stopper


async def until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def handled(api: ApiServer, name: str) -> bool:
    """kopf has finished the change handler (no retry pending)."""
    annotations = (mtd(api, name) or {}).get("metadata", {}).get("annotations") or {}
    return "mastertrade.io/reconcile" not in annotations and bool(
        annotations.get("mastertrade.io/last-handled-configuration")
    )


async def play_controllers(api: ApiServer, done: asyncio.Event) -> None:
    while not done.is_set():
        await mark_ready(api, ("StatefulSet", "Deployment", "Job"))
        await asyncio.sleep(0.01)


async def measure_operator() -> dict[str, Any]:
    async with ApiServer() as api, kmock.Server(api):
        declare_resources(api)
        server = str(api.url).rstrip("/")
        assembly = build_operator(TIMING, find_helm(helm_binary()), login=plain_login(server))
        assembly.settings.scanning.disabled = True
        stop = await asyncio.to_thread(
            start_kopf,
            {"registry": assembly.registry, "settings": assembly.settings, "memo": assembly.memo},
        )
        try:
            done = asyncio.Event()
            player = asyncio.create_task(play_controllers(api, done))
            before, started = len(api.log()), time.monotonic()
            await create_mtd(api, "mt", {})
            await until(lambda: status_of(api, "mt").get("phase") == "Ready")
            elapsed = time.monotonic() - started
            done.set()
            await player
            made = api.log()[before:]
            ours = [r for r in made if r.headers.get("User-Agent") == USER_AGENT]
            by_kopf = [r for r in made if r.headers.get("User-Agent", "").startswith("kopf/")]
            await until(lambda: handled(api, "mt"))  # kopf's last retry of the change handler
            await asyncio.sleep(1.0)
            quiet = len(writes(api))
            await asyncio.sleep(STEADY_WINDOW)
            steady = len(writes(api)) - quiet
        finally:
            await asyncio.to_thread(stop)
    return {
        "ready_s": elapsed,
        "operator_requests": len(ours),
        "operator_writes": sum(1 for r in ours if r.method != "GET"),
        "kopf_requests": len(by_kopf),
        "steady_writes": steady,
        "objects": rendered_count("mt"),
    }


def build_reference_registry(kube: Kube) -> kopf.OperatorRegistry:
    """The shared example's minimal operator (one ConfigMap, one Deployment, status Ready),
    applying with the same client so that only what the operator adds differs."""
    registry = kopf.OperatorRegistry()

    async def on_create(body: kopf.Body, name: str, patch: kopf.Patch, **_: Any) -> None:
        owner = build_owner_reference(dict(body))
        meta = {"namespace": "default", "ownerReferences": [owner], "labels": {"app": name}}
        config = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"EXCHANGE": "binance"}}
        deployment = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}}},
        }
        async with kube.opened():
            await kube.apply({**config, "metadata": {**meta, "name": f"{name}-config"}})
            await kube.apply({**deployment, "metadata": {**meta, "name": f"{name}-api"}})
        patch.status["phase"] = "Ready"

    kopf.on.login(registry=registry)(lambda **_: kube.connection_info())
    mtd = (MASTERTRADE.group, MASTERTRADE.version, MASTERTRADE.plural)
    kopf.on.create(*mtd, registry=registry)(on_create)
    return registry


async def measure_reference() -> dict[str, Any]:
    """The reference operator: create to status Ready."""
    async with ApiServer() as api, kmock.Server(api):
        declare_resources(api)
        server = str(api.url).rstrip("/")
        kube = Kube(plain_login(server))
        settings = kopf.OperatorSettings()
        settings.scanning.disabled = True
        settings.posting.enabled = False
        registry = build_reference_registry(kube)
        stop = await asyncio.to_thread(start_kopf, {"registry": registry, "settings": settings})
        try:
            before, started = len(api.log()), time.monotonic()
            await create_mtd(api, "ref", {})
            await until(lambda: status_of(api, "ref").get("phase") == "Ready")
            elapsed = time.monotonic() - started
            requests = len(api.log()) - before
        finally:
            await asyncio.to_thread(stop)
    return {"ready_s": elapsed, "requests": requests}


def main() -> int:
    ours = asyncio.run(measure_operator())
    reference = asyncio.run(measure_reference())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("full reconcile of a new MasterTradeDeployment against the emulator")
    print(f"  time to Ready          {ours['ready_s']:.2f} s   (target < 2 s)")
    print(
        f"  operator requests      {ours['operator_requests']} "
        f"({ours['operator_writes']} writes: {ours['objects']} applies, status patches)"
    )
    print(f"  kopf requests          {ours['kopf_requests']} (watches, annotations, Events)")
    print(f"  steady-state writes    {ours['steady_writes']} in {STEADY_WINDOW:.0f} s (target 0)")
    print(f"  max RSS, whole process {rss:.0f} MiB (target < 200 MiB for the operator)")
    print("reference: the minimal example operator (1 ConfigMap, 1 Deployment, same client)")
    print(f"  time to Ready          {reference['ready_s']:.2f} s")
    print(f"  requests               {reference['requests']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
