"""kopf handlers of MasterTradeDeployments and of their children. They decide and call: each
runs a reconcile under the resource's lock (`reconcile`). A phase that waits is ordinary
progress, not a handler failure: no handler raises for it (kopf would log it at ERROR).

- create / update / resume: reconcile once.
- progress daemon: every `phase_retry` seconds, reconcile a resource whose last reconcile
  waited or failed; after failures only once the backoff is over.
- resync timer: the safety net against silent watches (not while the backoff lasts).
- child events (any owned kind labelled managed-by=mastertrade-operator): a deleted, edited or
  newly ready child wakes its owner's reconcile; bursts of events collapse into one; none
  while the backoff after an API failure lasts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import kopf

from mastertrade_operator.kube import CONNECTION_ERRORS, MASTERTRADE
from mastertrade_operator.reconcile.converge import Outcome, Reconciled, converge
from mastertrade_operator.reconcile.report import publish
from mastertrade_operator.reconcile.runtime import Runtime
from mastertrade_operator.status.derive import DEGRADED, Observation

Body = Mapping[str, Any]
logger = logging.getLogger(__name__)


def runtime_of(memo: Any) -> Runtime:
    runtime: Runtime = memo.runtime
    return runtime


def failure(body: Body, error: Exception) -> Outcome:
    generation = int(body.get("metadata", {}).get("generation") or 0)
    message = f"the API server refused a change, will retry: {error}"
    return Outcome(Observation(generation, DEGRADED, "ApplyFailed", message, degraded=True))


async def reconcile(runtime: Runtime, body: kopf.Body, trigger: str) -> Outcome:
    """Converge and publish (status, Events), measured; API errors become Degraded."""
    started = time.monotonic()
    uid = str(body["metadata"]["uid"])
    previous = runtime.statuses.get(uid) or dict(body.get("status") or {})
    try:
        remembered = Reconciled(
            completed_jobs=previous.get("completedJobs") or {},
            credentials=runtime.credentials.get(uid) or {},
            memory=runtime.memory(uid),
        )
        outcome = await converge(runtime.kube, runtime.renderer, body, remembered)
        if outcome.credentials:
            runtime.credentials[uid] = outcome.credentials
        result = "waiting" if outcome.waiting else outcome.observation.phase.lower()
    except CONNECTION_ERRORS as error:
        outcome, result = failure(body, error), "error"
        runtime.metrics.errors.labels(reason=type(error).__name__).inc()
    runtime.settle(uid, waiting=outcome.waiting, failed=result == "error")
    try:
        runtime.statuses[uid] = await publish(runtime.kube, body, outcome, previous)
    except CONNECTION_ERRORS as error:  # e.g. deleted meanwhile, or the API server down
        logger.warning("status not written, the next reconcile writes it: %s", error)
        runtime.metrics.errors.labels(reason=type(error).__name__).inc()
    meta = body["metadata"]
    if outcome.managed:
        gauge = runtime.metrics.managed_objects.labels(meta["namespace"], meta["name"])
        gauge.set(outcome.managed)
    for kind, _, reason in outcome.applied:
        runtime.metrics.applies.labels(kind=kind, reason=reason).inc()
    runtime.metrics.reconciles.labels(trigger=trigger, result=result).inc()
    runtime.metrics.durations.observe(time.monotonic() - started)
    return outcome


async def reconcile_exclusive(
    runtime: Runtime,
    body: kopf.Body,
    trigger: str,
    *,
    coalesce: bool = False,
    after_backoff: bool = False,
) -> Outcome | None:
    """`reconcile` under the resource's lock (None when coalesced into a queued run, or
    skipped because a failure's backoff lasts)."""
    outcomes: list[Outcome] = []

    async def work() -> None:
        outcomes.append(await reconcile(runtime, body, trigger))

    uid = str(body["metadata"]["uid"])
    async with runtime.kube.opened():
        await runtime.exclusive(uid, work, coalesce=coalesce, after_backoff=after_backoff)
    return outcomes[0] if outcomes else None


async def on_change_mastertrade(body: kopf.Body, memo: Any, reason: str, **_: Any) -> None:
    """Created, changed, or found at start: reconcile once. A phase that waits is not an error
    (kopf would log a retry at ERROR): child events and the progress loop carry it on."""
    await reconcile_exclusive(runtime_of(memo), body, trigger=str(reason))


async def on_progress_mastertrade(
    body: kopf.Body, memo: Any, stopped: kopf.DaemonStopped, **_: Any
) -> None:
    """While the resource lives: every `phase_retry` seconds, reconcile it again if its last
    reconcile waited or failed (and its backoff is over); done once kopf says stop."""
    runtime = runtime_of(memo)
    uid = str(body["metadata"]["uid"])
    while not stopped:
        await stopped.wait(runtime.timing.phase_retry)  # returns at once when kopf stops it
        if stopped or body.get("metadata", {}).get("deletionTimestamp"):
            return
        if uid not in runtime.unsettled or runtime.backing_off(uid):
            continue
        await reconcile_exclusive(
            runtime, body, trigger="progress", coalesce=True, after_backoff=True
        )


async def on_resync_mastertrade(body: kopf.Body, memo: Any, **_: Any) -> None:
    """The periodic safety net: the same reconcile, never retried (the next tick is), and not
    while a failure's backoff lasts (the progress loop retries after it)."""
    await reconcile_exclusive(
        runtime_of(memo), body, trigger="resync", coalesce=True, after_backoff=True
    )


def index_mastertrade(
    body: kopf.Body, namespace: str | None, name: str, **_: Any
) -> dict[tuple[str | None, str], kopf.Body]:
    """Index of MasterTradeDeployments by (namespace, name), so child events find their owner."""
    return {(namespace, name): body}


def controller_owner(body: Body) -> str | None:
    """Name of the MasterTradeDeployment that controls a child, if any."""
    for reference in body.get("metadata", {}).get("ownerReferences") or []:
        if reference.get("kind") == MASTERTRADE.kind and reference.get("controller"):
            name: str = reference["name"]
            return name
    return None


async def on_event_child(
    body: kopf.Body,
    namespace: str | None,
    memo: Any,
    mastertrade_index: kopf.Index[tuple[str, str], kopf.Body] | None = None,
    **_: Any,
) -> None:
    """A child was added, changed or deleted: reconcile its owner (coalesced)."""
    owner = controller_owner(body)
    if owner is None or namespace is None or mastertrade_index is None:
        return
    if (namespace, owner) not in mastertrade_index:
        return
    owners = list(mastertrade_index[namespace, owner])
    if not owners or owners[-1].get("metadata", {}).get("deletionTimestamp"):
        return
    # while the API server's last failure backs off, the progress loop retries, not events
    await reconcile_exclusive(
        runtime_of(memo), owners[-1], trigger="child", coalesce=True, after_backoff=True
    )
