"""One reconcile of a MasterTradeDeployment: read it, render it, apply what differs phase by
phase, prune what is no longer wanted, and say where the rollout stands.

The decisions are pure (`render/`, `render/desired.py`, `render/phases.py`, `status/`); this
module only sequences them with the reads and writes of `kube.py`.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mastertrade_operator.kube import OWNED, Kube, KubeError
from mastertrade_operator.render import (
    MANAGED_BY,
    PASSWORD_KEYS,
    Renderer,
    RenderError,
    credentials_secret,
    new_credentials,
)
from mastertrade_operator.render.desired import build_desired, derive_apply_reason
from mastertrade_operator.render.phases import PhasePlan, build_phases
from mastertrade_operator.resource import (
    MasterTradeDeployment,
    ResourceError,
    parse_resource,
)
from mastertrade_operator.status.derive import DEGRADED, PAUSED, Observation
from mastertrade_operator.status.rollout import (
    Key,
    derive_rollout,
    object_key,
    phase_ready,
    remember_finished_jobs,
)

Manifest = dict[str, Any]
KEPT_KINDS = ("PersistentVolumeClaim", "Secret")
"""Kinds never pruned: data (PVCs) and credentials (the Secret: switching to
`auth.existingSecret` and back must not lose the passwords the data was created with)."""


@dataclass
class Outcome:
    """What a reconcile did and found."""

    observation: Observation
    applied: list[tuple[str, str, str]] = field(default_factory=list)
    """(kind, name, why) of every object applied."""
    pruned: list[tuple[str, str]] = field(default_factory=list)
    managed: int = 0
    credentials: dict[str, str] = field(default_factory=dict)
    """The credentials Secret's data as applied (to restore it if it is deleted)."""

    @property
    def waiting(self) -> bool:
        return self.observation.phase not in ("Ready", PAUSED, DEGRADED)


def generation_of(body: Mapping[str, Any]) -> int:
    return int(body.get("metadata", {}).get("generation") or 0)


def selector(name: str) -> str:
    return f"app.kubernetes.io/instance={name},app.kubernetes.io/managed-by={MANAGED_BY}"


def controlled_by(live: Manifest, uid: str) -> bool:
    references = live.get("metadata", {}).get("ownerReferences") or []
    return any(ref.get("uid") == uid and ref.get("controller") for ref in references)


async def fetch_children(kube: Kube, namespace: str, name: str) -> dict[Key, Manifest]:
    """Live objects labelled as this installation's, by (kind, name): one consistent read."""
    listed = await asyncio.gather(
        *(kube.list(resource, namespace, selector(name)) for resource in OWNED.values())
    )
    return {
        (kind, item["metadata"]["name"]): item
        for kind, items in zip(OWNED, listed, strict=True)
        for item in items
    }


async def find_credentials(
    kube: Kube,
    renderer: Renderer,
    resource: MasterTradeDeployment,
    listed: Mapping[Key, Manifest],
    known: Mapping[str, str] | None,
) -> dict[str, str]:
    """The credentials Secret's data, so its passwords are kept: from the children just listed
    (the same read the drift check uses), else by name (a Secret not labelled ours, e.g. left by
    the chart), else the data last applied (a Secret deleted since), else new passwords."""
    proposed = dict(known or {}) or new_credentials()
    secret = credentials_secret(await renderer.render(resource, proposed))
    if secret is None:
        return {}
    name = secret["metadata"]["name"]
    found = listed.get(("Secret", name)) or await kube.fetch(
        OWNED["Secret"], resource.namespace, name
    )
    data: dict[str, str] = (found or {}).get("data") or {}
    kept = {key: value for key, value in data.items() if key in PASSWORD_KEYS and _is_base64(value)}
    return {**proposed, **kept}


def _is_base64(value: str) -> bool:
    try:
        base64.b64decode(value, validate=True)
    except ValueError:
        return False
    return True


def select_live(
    listed: Mapping[Key, Manifest], uid: str, desired: list[Manifest]
) -> dict[Key, Manifest]:
    """The listed objects this resource controls, or that carry the name of one it wants."""
    wanted = {object_key(manifest) for manifest in desired}
    return {key: item for key, item in listed.items() if key in wanted or controlled_by(item, uid)}


async def apply_one(kube: Kube, manifest: Manifest, reason: str) -> Manifest:
    """Apply; a Job whose template changed (immutable) is replaced instead."""
    try:
        return await kube.apply(manifest)
    except KubeError as error:
        if manifest["kind"] != "Job" or error.status != 422 or reason == "missing":
            raise
    meta = manifest["metadata"]
    await kube.delete(OWNED["Job"], meta["namespace"], meta["name"])
    return await kube.apply(manifest)


async def apply_phase(
    kube: Kube, plan: PhasePlan, live: dict[Key, Manifest], outcome: Outcome
) -> None:
    """Apply the phase's objects that are missing, changed or drifted; update `live`."""
    for manifest in plan.objects:
        key = object_key(manifest)
        reason = derive_apply_reason(manifest, live.get(key))
        if reason is not None:
            live[key] = await apply_one(kube, manifest, reason)
            outcome.applied.append((*key, reason))


async def apply_phases(
    kube: Kube, desired: list[Manifest], live: dict[Key, Manifest], outcome: Outcome
) -> PhasePlan | None:
    """Apply phase after phase while each is ready; the phase that waits, if one does."""
    for plan in build_phases(desired):
        await apply_phase(kube, plan, live, outcome)
        if not phase_ready(plan, live):
            return plan
    return None


async def prune(
    kube: Kube, namespace: str, uid: str, desired: list[Manifest], live: dict[Key, Manifest]
) -> list[tuple[str, str]]:
    """Delete what this resource controls and no longer renders (never PVCs)."""
    wanted = {object_key(manifest) for manifest in desired}
    pruned = []
    for (kind, name), item in sorted(live.items()):
        if (kind, name) in wanted or kind in KEPT_KINDS or not controlled_by(item, uid):
            continue
        await kube.delete(OWNED[kind], namespace, name)
        pruned.append((kind, name))
    return pruned


def invalid_spec(generation: int, problem: str) -> Outcome:
    message = f"the spec cannot be applied, nothing was changed: {problem}"
    return Outcome(Observation(generation, DEGRADED, "InvalidSpec", message, degraded=True))


def read_spec(body: Mapping[str, Any]) -> MasterTradeDeployment | Outcome:
    """The typed resource, or the outcome of not touching anything (invalid spec, paused)."""
    generation = generation_of(body)
    try:
        resource = parse_resource(dict(body))
    except ResourceError as error:
        return invalid_spec(generation, str(error))
    if resource.paused:
        message = "spec.paused is true: the operator makes no changes until it is false"
        return Outcome(Observation(generation, PAUSED, "Paused", message))
    return resource


async def converge(
    kube: Kube,
    renderer: Renderer,
    body: Mapping[str, Any],
    completed_jobs: Mapping[str, str] | None = None,
    known_credentials: Mapping[str, str] | None = None,
) -> Outcome:
    """Make the cluster match `body` as far as the phases allow; raises KubeError.

    `completed_jobs` is the status' record of the Jobs last seen succeeded (name to hash);
    `known_credentials` the credentials last applied, for a Secret deleted since: its passwords
    come back rather than new ones the data was not created with."""
    generation = generation_of(body)
    resource = read_spec(body)
    if isinstance(resource, Outcome):
        return resource
    listed = await fetch_children(kube, resource.namespace, resource.name)
    try:
        credentials = await find_credentials(kube, renderer, resource, listed, known_credentials)
        rendered = await renderer.render(resource, credentials)
    except RenderError as error:
        return invalid_spec(generation, str(error))
    desired = [build_desired(manifest, dict(body)) for manifest in rendered]
    uid = str(body["metadata"]["uid"])
    live = select_live(listed, uid, desired)
    live.update(remember_finished_jobs(desired, live, completed_jobs or {}))
    outcome = Outcome(
        Observation(generation, "Pending", "", ""),
        managed=len(desired),
        credentials=(credentials_secret(rendered) or {}).get("data", {}),
    )
    waiting = await apply_phases(kube, desired, live, outcome)
    if waiting is None:
        outcome.pruned = await prune(kube, resource.namespace, uid, desired, live)
    values = resource.values
    keys = {w.name: key for key, w in values.workloads.items() if values.runs(key)}
    trading = resource.values.settings.trading.trading_environment
    outcome.observation = derive_rollout(
        generation=generation,
        trading_environment=trading,
        desired=desired,
        live=live,
        keys=keys,
        waiting=waiting,
    )
    return outcome
