"""One reconcile of a MasterTradeDeployment: read it, render it, apply what differs phase by
phase, prune what is no longer wanted, and say where the rollout stands. While paused, it only
reads: the status still says how many workloads are ready.

The decisions are pure (`render/`, `render/desired.py`, `render/phases.py`, `status/`); this
module only sequences them with the reads and writes of `kube.py`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mastertrade_operator.kube import AUTOSCALERS, OWNED, Kube, KubeError
from mastertrade_operator.reconcile.applying import Memory, apply_needed, find_refusals
from mastertrade_operator.reconcile.credentials import credentials_secret_name, ensure_credentials
from mastertrade_operator.render import MANAGED_BY, Renderer, RenderError
from mastertrade_operator.render.desired import build_desired, release_replicas
from mastertrade_operator.render.phases import WORKLOAD_KINDS, PhasePlan, build_phases
from mastertrade_operator.resource import (
    MasterTradeDeployment,
    ResourceError,
    parse_resource,
)
from mastertrade_operator.status.derive import DEGRADED, PAUSED, Observation, WorkloadState
from mastertrade_operator.status.rollout import (
    Key,
    derive_rollout,
    derive_workloads,
    object_key,
    phase_ready,
    remember_finished_jobs,
)

Manifest = dict[str, Any]
logger = logging.getLogger(__name__)
HPA_WARNED: list[str] = []
KEPT_KINDS = ("PersistentVolumeClaim", "Secret")
"""Kinds never pruned: data (PVCs) and Secrets."""


@dataclass
class Outcome:
    """What a reconcile did and found."""

    observation: Observation
    applied: list[tuple[str, str, str]] = field(default_factory=list)
    """(kind, name, why) of every object applied."""
    pruned: list[tuple[str, str]] = field(default_factory=list)
    managed: int = 0
    credentials: dict[str, str] = field(default_factory=dict)
    """The credentials Secret's data (to restore it if it is deleted)."""

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


def select_live(
    listed: Mapping[Key, Manifest], uid: str, desired: list[Manifest]
) -> dict[Key, Manifest]:
    """The listed objects this resource controls, or that carry the name of one it wants."""
    wanted = {object_key(manifest) for manifest in desired}
    return {key: item for key, item in listed.items() if key in wanted or controlled_by(item, uid)}


async def fetch_scaled(kube: Kube, namespace: str) -> set[Key]:
    """The workloads a HorizontalPodAutoscaler scales (none when the operator may not read
    HPAs: then it keeps setting replicas, and says so)."""
    try:
        autoscalers = await kube.list(AUTOSCALERS, namespace)
    except KubeError as error:
        if error.status not in (403, 404):
            raise
        if not HPA_WARNED:  # once: every reconcile would say it again
            HPA_WARNED.append(namespace)
            logger.warning("HPAs not read, replicas are set as rendered: %s", error)
        return set()
    targets = [hpa.get("spec", {}).get("scaleTargetRef") or {} for hpa in autoscalers]
    return {(str(t.get("kind")), str(t.get("name"))) for t in targets}


@dataclass
class Apply:
    """What one reconcile applies with: the client, what it remembers, what HPAs scale."""

    kube: Kube
    memory: Memory
    scaled: set[Key]

    def form(self, manifest: Manifest) -> Manifest:
        """The object as applied: without replicas when an HPA scales it."""
        scaled = manifest["kind"] in WORKLOAD_KINDS and object_key(manifest) in self.scaled
        return release_replicas(manifest) if scaled else manifest


async def apply_phase(
    apply: Apply, plan: PhasePlan, live: dict[Key, Manifest], outcome: Outcome
) -> None:
    """Apply the phase's objects that are missing, changed or drifted; update `live`."""
    for manifest in plan.objects:
        key = object_key(manifest)
        form = apply.form(manifest)
        reason, applied = await apply_needed(apply.kube, form, live.get(key), apply.memory)
        if reason is not None and applied is not None:
            live[key] = applied
            outcome.applied.append((*key, reason))


async def apply_phases(
    apply: Apply, desired: list[Manifest], live: dict[Key, Manifest], outcome: Outcome
) -> PhasePlan | None:
    """Apply phase after phase while each is ready; the phase that waits, if one does."""
    for plan in build_phases(desired):
        await apply_phase(apply, plan, live, outcome)
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
    observation = Observation(generation, DEGRADED, "InvalidSpec", message)
    return Outcome(dataclasses.replace(observation, degraded=True))


def read_spec(body: Mapping[str, Any]) -> MasterTradeDeployment | Outcome:
    """The typed resource, or the outcome of not touching anything (invalid spec)."""
    try:
        return parse_resource(dict(body))
    except ResourceError as error:
        return invalid_spec(generation_of(body), str(error))


def observe_paused(
    generation: int, workloads: Mapping[str, WorkloadState], trading: str
) -> Observation:
    message = "spec.paused is true: the operator makes no changes until it is false"
    return Observation(
        generation, PAUSED, "Paused", message, workloads=workloads, trading_environment=trading
    )


def with_refusals(observation: Observation, refusals: list[str]) -> Observation:
    """Degraded, naming what the API server refused (the rest was applied)."""
    if not refusals:
        return observation
    message = (
        f"the API server refused {'; '.join(refusals)}; the other objects were applied: "
        "change the spec back, or delete the object to have it created anew"
    )
    return dataclasses.replace(
        observation, phase=DEGRADED, reason="ApplyRefused", message=message, degraded=True
    )


@dataclass
class Children:
    """The rendered objects of a resource, the live ones they are compared with, and the
    credentials Secret's data (none when the user brings the Secret)."""

    desired: list[Manifest]
    live: dict[Key, Manifest]
    credentials: dict[str, str]


async def read_children(
    kube: Kube,
    renderer: Renderer,
    body: Mapping[str, Any],
    resource: MasterTradeDeployment,
    remembered: Reconciled,
) -> Children:
    """Render (after making sure the credentials Secret exists) and read what is live."""
    listed = await fetch_children(kube, resource.namespace, resource.name)
    secret, credentials = None, {}
    if not resource.values.auth.existingSecret:
        secret = credentials_secret_name(resource)
        credentials = await ensure_credentials(
            kube, resource.namespace, secret, resource.name, remembered.credentials
        )
    rendered = await renderer.render(resource, secret)
    desired = [build_desired(manifest, dict(body)) for manifest in rendered]
    live = select_live(listed, str(body["metadata"]["uid"]), desired)
    live.update(remember_finished_jobs(desired, live, remembered.completed_jobs))
    return Children(desired, live, credentials)


@dataclass(frozen=True)
class Reconciled:
    """What earlier reconciles of a resource left to this one."""

    completed_jobs: Mapping[str, str] = field(default_factory=dict)
    """The status' record of the Jobs last seen succeeded (name to hash)."""
    credentials: Mapping[str, str] = field(default_factory=dict)
    """The credentials last seen, for a Secret deleted since: its passwords come back rather
    than new ones the data was not created with."""
    memory: Memory | None = None
    """Confirmed drifts and refusals."""


async def converge(
    kube: Kube,
    renderer: Renderer,
    body: Mapping[str, Any],
    remembered: Reconciled | None = None,
) -> Outcome:
    """Make the cluster match `body` as far as the phases allow; raises KubeError."""
    generation = generation_of(body)
    resource = read_spec(body)
    if isinstance(resource, Outcome):
        return resource
    remembered = remembered or Reconciled()
    try:
        children = await read_children(kube, renderer, body, resource, remembered)
    except RenderError as error:
        return invalid_spec(generation, str(error))
    desired, live = children.desired, children.live
    values = resource.values
    keys = {w.name: key for key, w in values.workloads.items() if values.runs(key)}
    trading = values.settings.trading.trading_environment
    if resource.paused:
        workloads = derive_workloads(desired, live, keys)
        return Outcome(observe_paused(generation, workloads, trading))
    outcome = Outcome(
        Observation(generation, "Pending", "", ""),
        managed=len(desired),
        credentials=children.credentials,
    )
    memory = remembered.memory or Memory()
    apply = Apply(kube, memory, await fetch_scaled(kube, resource.namespace))
    waiting = await apply_phases(apply, desired, live, outcome)
    uid = str(body["metadata"]["uid"])
    if waiting is None:
        outcome.pruned = await prune(kube, resource.namespace, uid, desired, live)
    observation = derive_rollout(
        generation=generation,
        trading_environment=trading,
        desired=desired,
        live=live,
        keys=keys,
        waiting=waiting,
    )
    outcome.observation = with_refusals(observation, find_refusals(desired, apply.memory))
    return outcome
