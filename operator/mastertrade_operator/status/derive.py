"""The status as one value: phase, conditions (Ready, Progressing, Degraded), observedGeneration,
per-workload readiness, readyWorkloads and tradingEnvironment.

`derive_status` builds the whole status from an `Observation` and the previous status (whose
condition times are kept when a condition did not change); `build_status_patch` is the merge
patch from the old status to the new one, or None when nothing changed, so the one writer of
status writes only transitions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Status = dict[str, Any]

READY, PAUSED, DEGRADED, PENDING = "Ready", "Paused", "Degraded", "Pending"


@dataclass(frozen=True)
class WorkloadState:
    ready: int
    desired: int

    @property
    def is_ready(self) -> bool:
        return self.ready >= self.desired


@dataclass(frozen=True)
class Observation:
    """What one reconcile found: the phase it stands in and why.

    `phase` is a rollout phase (Infrastructure, Migrating, Restoring, Services, Monitoring) while
    waiting, or Ready, Paused or Degraded. `workloads` is None when the children were not looked at
    (paused, invalid spec): the previous figures are kept then.
    """

    generation: int
    phase: str
    reason: str
    message: str
    degraded: bool = False
    workloads: Mapping[str, WorkloadState] | None = None
    trading_environment: str | None = None
    completed_jobs: Mapping[str, str] | None = None
    """Hash of each Job seen succeeded in this reconcile, by name."""


def _condition(kind: str, active: bool, observation: Observation) -> Status:
    return {
        "type": kind,
        "status": "True" if active else "False",
        "reason": observation.reason,
        "message": observation.message,
        "observedGeneration": observation.generation,
    }


def derive_conditions(observation: Observation) -> list[Status]:
    """Ready, Progressing and Degraded, all with the observation's reason and message."""
    steady = observation.phase in (READY, PAUSED, DEGRADED)
    return [
        _condition("Ready", observation.phase == READY, observation),
        _condition("Progressing", not steady and not observation.degraded, observation),
        _condition("Degraded", observation.degraded, observation),
    ]


def _keep_transition_times(conditions: list[Status], previous: Status, now: str) -> list[Status]:
    before = {c.get("type"): c for c in previous.get("conditions") or []}
    for condition in conditions:
        old = before.get(condition["type"])
        same = old is not None and old.get("status") == condition["status"]
        condition["lastTransitionTime"] = old.get("lastTransitionTime", now) if same else now  # type: ignore[union-attr]
    return conditions


def derive_status(observation: Observation, previous: Status, now: str) -> Status:
    """The full status after `observation`; `now` stamps conditions that changed."""
    conditions = _keep_transition_times(derive_conditions(observation), previous, now)
    status: Status = {
        "phase": observation.phase,
        "observedGeneration": observation.generation,
        "conditions": conditions,
    }
    if observation.workloads is not None:
        workloads = observation.workloads
        ready = sum(1 for state in workloads.values() if state.is_ready)
        status["workloads"] = {
            key: {"ready": state.ready, "desired": state.desired}
            for key, state in sorted(workloads.items())
        }
        status["readyWorkloads"] = f"{ready}/{len(workloads)}"
    else:
        for key in ("workloads", "readyWorkloads"):
            if key in previous:
                status[key] = previous[key]
    trading = observation.trading_environment or previous.get("tradingEnvironment")
    if trading:
        status["tradingEnvironment"] = trading
    completed = {**previous.get("completedJobs", {}), **(observation.completed_jobs or {})}
    if completed:
        status["completedJobs"] = dict(sorted(completed.items()))
    return status


def _merge_patch(old: Any, new: Any) -> Any:
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return new
    patch: Status = {key: None for key in old if key not in new}
    for key, value in new.items():
        if key not in old:
            patch[key] = value
        elif old[key] != value:
            patch[key] = _merge_patch(old[key], value)
    return patch


def build_status_patch(old: Status, new: Status) -> Status | None:
    """The JSON merge patch taking `old` to `new`, or None when they are equal."""
    if old == new:
        return None
    patch: Status = _merge_patch(old, new)
    return patch
