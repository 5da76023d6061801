"""Pure parts of applying: which refusals re-create an object, how a StatefulSet is deleted
for it, what a refusal leaves in the status, and the backoff after failed reconciles."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from mastertrade_operator.kube import Kube, KubeError, plain_login
from mastertrade_operator.reconcile.applying import (
    Memory,
    find_refusals,
    is_immutable_refusal,
    propagation_for,
)
from mastertrade_operator.reconcile.runtime import Runtime, Timing
from mastertrade_operator.render import Renderer
from mastertrade_operator.render.desired import HASH_ANNOTATION
from mastertrade_operator.render.helm import find_helm
from tests.helm import helm_binary

STS: dict[str, Any] = {
    "kind": "StatefulSet",
    "metadata": {"name": "db", "annotations": {HASH_ANNOTATION: "h2"}},
    "spec": {"selector": {"matchLabels": {"app": "db"}}},
}


def test_only_immutable_field_refusals_recreate() -> None:
    forbidden = "spec: Forbidden: updates to statefulset spec for fields other than 'replicas'"
    assert is_immutable_refusal(STS, KubeError(422, "Invalid", forbidden))
    assert not is_immutable_refusal(STS, KubeError(422, "Invalid", "spec.x: Required value"))
    assert not is_immutable_refusal(STS, KubeError(403, "Forbidden", "field is immutable"))
    claim = {**STS, "kind": "PersistentVolumeClaim"}  # never deleted to be re-created
    assert not is_immutable_refusal(claim, KubeError(422, "Invalid", "field is immutable"))


def test_pods_are_orphaned_only_when_the_new_statefulset_adopts_them() -> None:
    assert propagation_for(STS, STS) == "Orphan"
    moved = {**STS, "spec": {"selector": {"matchLabels": {"app": "other"}}}}
    assert propagation_for(STS, moved) == "Background"
    assert propagation_for({**STS, "kind": "Deployment"}, STS) == "Background"


def test_a_refusal_counts_until_the_desired_object_changes() -> None:
    memory = Memory(refused={("StatefulSet", "db"): ("h2", "volumeClaimTemplates: Forbidden")})
    assert find_refusals([STS], memory) == ["StatefulSet/db: volumeClaimTemplates: Forbidden"]
    changed = {**STS, "metadata": {"name": "db", "annotations": {HASH_ANNOTATION: "h3"}}}
    assert find_refusals([changed], memory) == []


def test_failed_reconciles_back_off_exponentially_and_success_resets() -> None:
    runtime = Runtime(
        kube=Kube(plain_login("http://127.0.0.1:9")),
        renderer=Renderer(find_helm(helm_binary())),
        timing=Timing(phase_retry=10),
    )
    runtime.settle("u", waiting=False, failed=True)
    assert runtime.backing_off("u") and "u" in runtime.unsettled
    runtime.settle("u", waiting=False, failed=True)
    # a reconcile that stopped at a waiting phase may not have reached what failed: it ends
    # nothing (CI saw the backoff start over at 1 s between failures, while a phase waited)
    runtime.settle("u", waiting=True, failed=False)
    runtime.settle("u", waiting=False, failed=True)
    assert runtime._not_before["u"] - time.monotonic() > 30  # 10, 20, then 40 s
    runtime.settle("u", waiting=False, failed=False)
    assert not runtime.backing_off("u") and "u" not in runtime.unsettled
    runtime.settle("u", waiting=True, failed=False)
    assert not runtime.backing_off("u") and "u" in runtime.unsettled


async def test_a_run_queued_behind_a_failing_one_waits_out_the_backoff() -> None:
    """A child event that queued while a reconcile ran must not retry at once when that
    reconcile fails: it happened once on a real API server (a 1.1 s gap where 2 s was due)."""
    runtime = Runtime(
        kube=Kube(plain_login("http://127.0.0.1:9")),
        renderer=Renderer(find_helm(helm_binary())),
        timing=Timing(phase_retry=10),
    )
    ran: list[str] = []
    started = asyncio.Event()

    async def failing() -> None:
        ran.append("failing")
        started.set()
        await asyncio.sleep(0.05)
        runtime.settle("u", waiting=False, failed=True)

    async def queued() -> None:
        ran.append("queued")

    first = asyncio.create_task(runtime.exclusive("u", failing))
    await started.wait()
    second = await runtime.exclusive("u", queued, coalesce=True, after_backoff=True)
    await first
    assert not second and ran == ["failing"]
    runtime.settle("u", waiting=False, failed=False)  # the progress loop's retry succeeded
    assert await runtime.exclusive("u", queued, coalesce=True, after_backoff=True)
    assert ran == ["failing", "queued"]
