"""Where a rollout stands, from the phases' gates and the live children: a pure `Observation`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from mastertrade_operator.render.desired import HASH_ANNOTATION
from mastertrade_operator.render.phases import COMPONENT_LABEL, WORKLOAD_KINDS, Phase, PhasePlan
from mastertrade_operator.status.derive import READY, Observation, WorkloadState
from mastertrade_operator.status.readiness import JobState, derive_job_state, derive_workload_state

Manifest = dict[str, Any]
Key = tuple[str, str]


def object_key(manifest: Manifest) -> Key:
    return manifest["kind"], manifest["metadata"]["name"]


def applied_hash(manifest: Manifest) -> str | None:
    annotations = manifest.get("metadata", {}).get("annotations") or {}
    found: str | None = annotations.get(HASH_ANNOTATION)
    return found


def remember_finished_jobs(
    desired: list[Manifest], live: Mapping[Key, Manifest], completed: Mapping[str, str]
) -> dict[Key, Manifest]:
    """Jobs that succeeded and are gone since (their TTL, or deleted), as the finished Jobs
    they were: a Job whose desired hash is the one last seen succeeded is not run again (a
    migration not daily, a restore never twice)."""
    return {
        object_key(job): {**job, "status": {"succeeded": 1}}
        for job in desired
        if job["kind"] == "Job"
        and object_key(job) not in live
        and completed.get(job["metadata"]["name"]) == applied_hash(job)
    }


def derive_completed_jobs(desired: list[Manifest], live: Mapping[Key, Manifest]) -> dict[str, str]:
    """The hash of each desired Job that has succeeded, by name."""
    return {
        job["metadata"]["name"]: applied_hash(job) or ""
        for job in desired
        if job["kind"] == "Job"
        and derive_job_state(live.get(object_key(job))) is JobState.SUCCEEDED
    }


def derive_workloads(
    desired: list[Manifest], live: Mapping[Key, Manifest], keys: Mapping[str, str]
) -> dict[str, WorkloadState]:
    """Ready/desired replicas by catalog key; `keys` maps a workload's name to its key."""
    return {
        keys[manifest["metadata"]["labels"][COMPONENT_LABEL]]: derive_workload_state(
            manifest, live.get(object_key(manifest))
        )
        for manifest in desired
        if manifest["kind"] in WORKLOAD_KINDS
    }


def gate_ready(gate: Manifest, live: Mapping[Key, Manifest]) -> bool:
    """A workload with all replicas ready, or a Job that succeeded."""
    found = live.get(object_key(gate))
    if gate["kind"] == "Job":
        return derive_job_state(found) is JobState.SUCCEEDED
    return derive_workload_state(gate, found).is_ready


def phase_ready(plan: PhasePlan, live: Mapping[Key, Manifest]) -> bool:
    """Every workload of the phase ready, its Job succeeded."""
    return all(gate_ready(gate, live) for gate in plan.gates)


def derive_rollout(
    *,
    generation: int,
    trading_environment: str,
    desired: list[Manifest],
    live: Mapping[Key, Manifest],
    keys: Mapping[str, str],
    waiting: PhasePlan | None,
) -> Observation:
    """Ready when no phase waits; else the phase it waits on, Degraded if its Job failed."""
    workloads = derive_workloads(desired, live, keys)
    ready = sum(1 for state in workloads.values() if state.is_ready)

    def observe(phase: str, reason: str, message: str, *, degraded: bool = False) -> Observation:
        return Observation(
            generation=generation,
            phase=phase,
            reason=reason,
            message=message,
            degraded=degraded,
            workloads=workloads,
            trading_environment=trading_environment,
            completed_jobs=derive_completed_jobs(desired, live),
        )

    if waiting is None:
        return observe(READY, "AllWorkloadsReady", f"all {len(workloads)} workloads ready")
    jobs = [gate for gate in waiting.gates if gate["kind"] == "Job"]
    failed = [
        job["metadata"]["name"]
        for job in jobs
        if derive_job_state(live.get(object_key(job))) is JobState.FAILED
    ]
    if failed:
        return observe_failed_job(waiting.phase, failed[0], observe)
    pending = [gate["metadata"]["name"] for gate in waiting.gates if not gate_ready(gate, live)]
    message = (
        f"waiting for {', '.join(pending)} ({waiting.phase}); {ready}/{len(workloads)} "
        "workloads ready"
    )
    return observe(str(waiting.phase), f"Waiting{waiting.phase}", message)


FAILED_JOB_REASONS = {
    Phase.MIGRATING: ("schema", "MigrationFailed"),
    Phase.RESTORING: ("restore", "RestoreFailed"),
}


def observe_failed_job(phase: Phase, job: str, observe: Callable[..., Observation]) -> Observation:
    """Degraded on a failed schema or restore Job, with what to do about it."""
    what, reason = FAILED_JOB_REASONS[phase]
    message = f"{what} Job {job} failed: see its pods' logs, then delete the Job to retry"
    return observe(str(phase), reason, message, degraded=True)
