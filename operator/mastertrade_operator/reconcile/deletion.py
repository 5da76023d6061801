"""Deletion of a MasterTradeDeployment: its finalizer keeps the data unless told otherwise.

Kubernetes' garbage collector deletes every child that names the resource as its owner. Before
that, the finalizer releases the PersistentVolumeClaims (removes the resource from their owner
references) so they survive, or deletes them when `spec.deletePvcsOnDelete` is true, and says
which in an Event. It cannot deadlock: every API error is reported and swallowed, so the
finalizer is always removed (the handler is also registered with errors ignored).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import kopf

from mastertrade_operator.kube import CONNECTION_ERRORS, OWNED, Kube
from mastertrade_operator.reconcile.handlers import runtime_of

Body = Mapping[str, Any]
PVC = OWNED["PersistentVolumeClaim"]


def wants_pvcs_deleted(body: Body) -> bool:
    """`spec.deletePvcsOnDelete`, read leniently: a broken spec must not block deletion."""
    spec = body.get("spec")
    return isinstance(spec, Mapping) and spec.get("deletePvcsOnDelete") is True


def without_owner(claim: Mapping[str, Any], uid: str) -> list[Any] | None:
    """The claim's owner references less `uid`; None when `uid` was not among them."""
    references = claim.get("metadata", {}).get("ownerReferences") or []
    kept = [ref for ref in references if ref.get("uid") != uid]
    return kept if len(kept) != len(references) else None


async def release_claims(kube: Kube, body: Body, *, delete: bool) -> list[str]:
    """Delete or orphan the release's PVCs (those of StatefulSets too); their names."""
    meta = body["metadata"]
    namespace, uid = meta["namespace"], meta["uid"]
    claims = await kube.list(PVC, namespace, f"app.kubernetes.io/instance={meta['name']}")
    names = []
    for claim in claims:
        name = claim["metadata"]["name"]
        if delete:
            await kube.delete(PVC, namespace, name)
        elif (kept := without_owner(claim, uid)) is not None:
            patch = {"metadata": {"ownerReferences": kept or None}}
            await kube.patch(PVC, namespace, name, patch)
        names.append(name)
    return sorted(names)


async def on_delete_mastertrade(body: kopf.Body, memo: Any, logger: Any, **_: Any) -> None:
    """The finalizer: keep (or delete) the data volumes, say so, and let the deletion go on."""
    runtime = runtime_of(memo)
    delete = wants_pvcs_deleted(body)
    try:
        async with runtime.kube.opened():
            names = await release_claims(runtime.kube, body, delete=delete)
    except CONNECTION_ERRORS as error:
        logger.warning("could not release the PVCs, deleting anyway: %s", error)
        kopf.warn(body, reason="PvcsNotReleased", message=f"PVCs left as they were: {error}")
        names = []
    else:
        verb = "Deleted" if delete else "Kept"
        listed = ", ".join(names) if names else "none"
        hint = "" if delete else " (delete them by hand, or set spec.deletePvcsOnDelete)"
        kopf.info(body, reason=f"Pvcs{verb}", message=f"{verb} PVCs: {listed}{hint}")
    runtime.forget(str(body["metadata"]["uid"]))
    meta = body["metadata"]
    with contextlib.suppress(KeyError):  # never reconciled by this replica
        runtime.metrics.managed_objects.remove(meta["namespace"], meta["name"])
