"""The one writer of a MasterTradeDeployment's status, and the Events that say what happened.

Status is derived in full (`status.derive_status`) and written as a merge patch of the status
subresource only when it differs from the last status written or seen; Events are posted for
applies, prunes and phase changes, never for a reconcile that changed nothing.
"""

from __future__ import annotations

import datetime

import kopf

from mastertrade_operator.kube import MASTERTRADE, Kube
from mastertrade_operator.reconcile.converge import Outcome
from mastertrade_operator.status import build_status_patch, derive_status
from mastertrade_operator.status.derive import Status

SUMMARY_LIMIT = 8


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def summarize(items: list[str]) -> str:
    shown = ", ".join(items[:SUMMARY_LIMIT])
    more = len(items) - SUMMARY_LIMIT
    return f"{shown} and {more} more" if more > 0 else shown


def post_events(body: kopf.Body, outcome: Outcome, previous: Status) -> None:
    """Events for what this reconcile did, and for a change of phase or reason."""
    if outcome.applied:
        by_reason: dict[str, list[str]] = {}
        for kind, name, reason in outcome.applied:
            by_reason.setdefault(reason, []).append(f"{kind}/{name}")
        message = "; ".join(f"{why}: {summarize(names)}" for why, names in by_reason.items())
        kopf.event(body, type="Normal", reason="Applied", message=message)
    if outcome.pruned:
        names = [f"{kind}/{name}" for kind, name in outcome.pruned]
        kopf.event(body, type="Normal", reason="Pruned", message=summarize(names))
    observation = outcome.observation
    before = (previous.get("phase"), _reason(previous))
    if before != (observation.phase, observation.reason):
        kind = "Warning" if observation.degraded else "Normal"
        kopf.event(body, type=kind, reason=observation.reason, message=observation.message)


def _reason(status: Status) -> str | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready":
            reason: str | None = condition.get("reason")
            return reason
    return None


async def write_status(kube: Kube, body: kopf.Body, previous: Status, new: Status) -> bool:
    """Patch the status subresource with what changed; False when nothing did."""
    patch = build_status_patch(previous, new)
    if patch is None:
        return False
    meta = body["metadata"]
    await kube.patch(
        MASTERTRADE, meta["namespace"], meta["name"], {"status": patch}, subresource="status"
    )
    return True


async def publish(kube: Kube, body: kopf.Body, outcome: Outcome, previous: Status) -> Status:
    """Events, then the status; returns the status now in place."""
    post_events(body, outcome, previous)
    status = derive_status(outcome.observation, previous, now())
    await write_status(kube, body, previous, status)
    return status
