"""Applying one object: only when it is needed, and what to do when the API server refuses.

A suspected drift (`derive_apply_reason` says "drifted") is confirmed with a server-side apply
dry run: when the result equals the live object, what differs belongs to another field manager
(an annotation, an extra env var) and nothing is written. The confirmation is remembered by the
object's resourceVersion, so an unchanged object is not asked about again.

A change to an immutable field (a StatefulSet's volume claim templates, a selector, a Job's
template) cannot be applied: the object is deleted and created again. A StatefulSet whose
selector stays is deleted with its Pods orphaned, so the new one adopts them (the PVCs are never
deleted); anything else is deleted in the background. Any other refusal is remembered with the
hash it refused, reported (Degraded, with the API server's message naming the field) and not
tried again until the desired object changes.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from mastertrade_operator.kube import OWNED, Kube, KubeError
from mastertrade_operator.render.desired import build_hash, derive_apply_reason, same_after_apply
from mastertrade_operator.status.rollout import Key, applied_hash, object_key

Manifest = dict[str, Any]
RECREATED_KINDS = ("Deployment", "StatefulSet", "Job")
IMMUTABLE_MARKERS = ("field is immutable", "updates to statefulset spec for fields other than")
GONE_TIMEOUT = 30.0
"""Seconds to wait for a deleted object to be gone before creating it again."""
GONE_POLL = 0.2


@dataclass
class Memory:
    """What one resource's reconciles remember between runs."""

    confirmed: dict[Key, str] = field(default_factory=dict)
    """resourceVersion at which a suspected drift was found to be none, by object."""
    refused: dict[Key, tuple[str, str]] = field(default_factory=dict)
    """(hash, message) of a desired object the API server refused, by object."""


def is_immutable_refusal(manifest: Manifest, error: KubeError) -> bool:
    """A 422 because an immutable field changed, on a kind that may be re-created."""
    return (
        error.status == 422
        and manifest["kind"] in RECREATED_KINDS
        and any(marker in error.message for marker in IMMUTABLE_MARKERS)
    )


def propagation_for(manifest: Manifest, live: Manifest | None) -> str:
    """Orphan a StatefulSet's Pods when the new one will adopt them (same selector)."""
    if manifest["kind"] != "StatefulSet" or live is None:
        return "Background"
    same = manifest["spec"].get("selector") == live.get("spec", {}).get("selector")
    return "Orphan" if same else "Background"


async def wait_gone(kube: Kube, manifest: Manifest, uid: str | None) -> None:
    """Until the object named like `manifest` with `uid` no longer exists."""
    meta = manifest["metadata"]
    deadline = time.monotonic() + GONE_TIMEOUT
    while time.monotonic() < deadline:
        found = await kube.fetch(OWNED[manifest["kind"]], meta["namespace"], meta["name"])
        if found is None or found["metadata"].get("uid") != uid:
            return
        await asyncio.sleep(GONE_POLL)
    raise KubeError(504, "Timeout", f"{manifest['kind']} {meta['name']} still being deleted")


async def recreate(kube: Kube, manifest: Manifest, live: Manifest | None) -> Manifest:
    meta = manifest["metadata"]
    propagation = propagation_for(manifest, live)
    uid = (live or {}).get("metadata", {}).get("uid")
    await kube.delete(
        OWNED[manifest["kind"]], meta["namespace"], meta["name"], propagation=propagation
    )
    await wait_gone(kube, manifest, uid)
    return await kube.apply(manifest)


async def is_in_sync(kube: Kube, manifest: Manifest, live: Manifest, memory: Memory) -> bool:
    """Confirm a suspected drift with a dry run; remembered per resourceVersion."""
    key = object_key(manifest)
    version = f"{live['metadata'].get('resourceVersion')}/{build_hash(manifest)}"
    if memory.confirmed.get(key) == version:
        return True
    if same_after_apply(await kube.apply(manifest, dry_run=True), live):
        memory.confirmed[key] = version
        return True
    return False


async def apply_needed(
    kube: Kube, manifest: Manifest, live: Manifest | None, memory: Memory
) -> tuple[str | None, Manifest | None]:
    """(why it was applied, the object now) or (None, None) when nothing was needed or the
    API server refused it (then `memory.refused` says why)."""
    key = object_key(manifest)
    reason = derive_apply_reason(manifest, live)
    if reason is None:
        return None, None
    if reason == "drifted" and live is not None and await is_in_sync(kube, manifest, live, memory):
        return None, None
    digest = applied_hash(manifest) or ""
    if memory.refused.get(key, ("", ""))[0] == digest:
        return None, None
    try:
        try:
            applied = await kube.apply(manifest)
        except KubeError as error:
            if not is_immutable_refusal(manifest, error) or reason == "missing":
                raise
            applied, reason = await recreate(kube, manifest, live), "recreated"
    except KubeError as error:
        if error.status != 422:
            raise
        memory.refused[key] = (digest, error.message)
        return None, None
    memory.refused.pop(key, None)
    return reason, applied


def find_refusals(desired: list[Manifest], memory: Memory) -> list[str]:
    """ "Kind/name: message" of each desired object the API server refused as it is now."""
    found = []
    for manifest in desired:
        key = object_key(manifest)
        refusal = memory.refused.get(key)
        if refusal is not None and refusal[0] == (applied_hash(manifest) or ""):
            found.append(f"{key[0]}/{key[1]}: {refusal[1]}")
    return found
