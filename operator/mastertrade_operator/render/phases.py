"""The order the operator applies an installation in, as the seed starts it.

Infrastructure (PostgreSQL, RabbitMQ, Redis, and every object the workloads read: Secret,
ConfigMaps, Services, PVCs, policies) → the schema Job (`mastertrade migrate`) → a restore, when
one is asked for (after the schema, as the chart's hook weights order them; never beside it) →
the core services (and the backup CronJob, once there is a schema to dump) → monitoring. Each
phase is applied only once the one before is ready.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from mastertrade_model.values import Component
from mastertrade_operator.render.objects import Manifest

TIER_LABEL = "mastertrade.io/tier"
COMPONENT_LABEL = "app.kubernetes.io/component"
WORKLOAD_KINDS = ("Deployment", "StatefulSet")
RESTORE = "restore"
"""The component label of the chart's restore Job (`restore-job.yaml`)."""


class Phase(StrEnum):
    """Phases in order; the status shows the one the rollout waits on."""

    INFRASTRUCTURE = "Infrastructure"
    MIGRATING = "Migrating"
    RESTORING = "Restoring"
    SERVICES = "Services"
    MONITORING = "Monitoring"


PHASE_OF_TIER = {
    Component.INFRASTRUCTURE: Phase.INFRASTRUCTURE,
    Component.CORE: Phase.SERVICES,
    Component.MONITORING: Phase.MONITORING,
}


@dataclass
class PhasePlan:
    """The objects of one phase; `gates` are those whose readiness ends the phase."""

    phase: Phase
    objects: list[Manifest] = field(default_factory=list)

    @property
    def gates(self) -> list[Manifest]:
        return [obj for obj in self.objects if obj["kind"] in (*WORKLOAD_KINDS, "Job")]


def derive_phase(manifest: Manifest) -> Phase:
    """The phase an object belongs to."""
    if manifest["kind"] == "Job":
        restore = manifest["metadata"]["labels"].get(COMPONENT_LABEL) == RESTORE
        return Phase.RESTORING if restore else Phase.MIGRATING
    if manifest["kind"] == "CronJob":
        return Phase.SERVICES
    if manifest["kind"] in WORKLOAD_KINDS:
        tier = manifest["metadata"]["labels"][TIER_LABEL]
        return PHASE_OF_TIER[Component(tier)]
    return Phase.INFRASTRUCTURE


def build_phases(objects: list[Manifest]) -> list[PhasePlan]:
    """The objects grouped by phase, in phase order (phases without objects left out)."""
    plans = {phase: PhasePlan(phase) for phase in Phase}
    for manifest in objects:
        plans[derive_phase(manifest)].objects.append(manifest)
    return [plan for plan in plans.values() if plan.objects]
