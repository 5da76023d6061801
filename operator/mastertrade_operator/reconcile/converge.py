"""One reconcile of a MasterTradeDeployment: read it, render it, apply what differs phase by
phase, prune what is no longer wanted, and say where the rollout stands. While paused, it only
reads: the status still says how many workloads are ready.

The decisions are pure (`render/`, `render/desired.py`, `render/phases.py`, `status/`); this
module only sequences them with the reads and writes of `kube.py`.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mastertrade_operator.kube import AUTOSCALERS, OWNED, Kube, KubeError
from mastertrade_operator.model.resource import (
    MasterTradeDeployment,
    ResourceError,
    parse_resource,
)
from mastertrade_operator.reconcile.applying import Memory, apply_needed, find_refusals
from mastertrade_operator.render import MANAGED_BY, build_release, render_all
from mastertrade_operator.render.desired import build_desired, release_replicas
from mastertrade_operator.render.phases import WORKLOAD_KINDS, PhasePlan, build_phases
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
    resource: MasterTradeDeployment,
    listed: Mapping[Key, Manifest],
    known: Mapping[str, str] | None,
) -> dict[str, str]:
    """The credentials Secret's data, so its passwords are kept: from the children just listed
    (the same read the drift check uses), else by name (a Secret not labelled ours, e.g. left by
    the chart), else the data last applied (a Secret deleted since)."""
    if resource.values.auth.existingSecret:
        return {}
    release = build_release(resource.values, resource.name, resource.namespace)
    name = release.credentials_secret_name
    found = listed.get(("Secret", name)) or await kube.fetch(
        OWNED["Secret"], resource.namespace, name
    )
    data: dict[str, str] = (found or {}).get("data") or dict(known or {})
    return {key: value for key, value in data.items() if _is_base64(value)}


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


def read_spec(body: Mapping[str, Any]) -> MasterTradeDeployment | Outcome:
    """The typed resource, or the outcome of not touching anything (invalid spec)."""
    try:
        return parse_resource(dict(body))
    except ResourceError as error:
        message = f"the spec cannot be applied, nothing was changed: {error}"
        observation = Observation(generation_of(body), DEGRADED, "InvalidSpec", message)
        return Outcome(dataclasses.replace(observation, degraded=True))


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
    """The rendered objects of a resource and the live ones they are compared with."""

    rendered: list[Manifest]
    desired: list[Manifest]
    live: dict[Key, Manifest]


async def read_children(
    kube: Kube,
    body: Mapping[str, Any],
    resource: MasterTradeDeployment,
    completed_jobs: Mapping[str, str],
    known_credentials: Mapping[str, str] | None,
) -> Children:
    listed = await fetch_children(kube, resource.namespace, resource.name)
    existing = await find_credentials(kube, resource, listed, known_credentials)
    rendered = render_all(
        resource.values, resource.name, resource.namespace, existing_credentials=existing
    )
    desired = [build_desired(manifest, dict(body)) for manifest in rendered]
    live = select_live(listed, str(body["metadata"]["uid"]), desired)
    live.update(remember_finished_jobs(desired, live, completed_jobs))
    return Children(rendered, desired, live)


async def converge(
    kube: Kube,
    body: Mapping[str, Any],
    completed_jobs: Mapping[str, str] | None = None,
    known_credentials: Mapping[str, str] | None = None,
    memory: Memory | None = None,
) -> Outcome:
    """Make the cluster match `body` as far as the phases allow; raises KubeError.

    `completed_jobs` is the status' record of the Jobs last seen succeeded (name to hash);
    `known_credentials` the credentials last applied, for a Secret deleted since: its passwords
    come back rather than new ones the data was not created with; `memory` what earlier
    reconciles of this resource found (confirmed drifts, refusals)."""
    generation = generation_of(body)
    resource = read_spec(body)
    if isinstance(resource, Outcome):
        return resource
    children = await read_children(kube, body, resource, completed_jobs or {}, known_credentials)
    desired, live = children.desired, children.live
    keys = {w.name: key for key, w in resource.values.workloads.items() if w.enabled}
    trading = resource.values.settings.trading.TRADING_ENVIRONMENT
    if resource.paused:
        workloads = derive_workloads(desired, live, keys)
        return Outcome(observe_paused(generation, workloads, trading))
    outcome = Outcome(
        Observation(generation, "Pending", "", ""),
        managed=len(desired),
        credentials=next((o["data"] for o in children.rendered if o["kind"] == "Secret"), {}),
    )
    apply = Apply(kube, memory or Memory(), await fetch_scaled(kube, resource.namespace))
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
