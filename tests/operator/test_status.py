"""The status as a pure value: phase and conditions from an observation, readiness from live
children, condition times kept across no-change, and the merge patch (None when unchanged)."""

from __future__ import annotations

from typing import Any

from mastertrade_model import load_values
from mastertrade_operator.render.phases import Phase, build_phases
from mastertrade_operator.status import (
    Observation,
    WorkloadState,
    build_status_patch,
    derive_job_state,
    derive_status,
    derive_workload_state,
)
from mastertrade_operator.status.readiness import JobState
from mastertrade_operator.status.rollout import derive_rollout, object_key, observe_failed_job
from tests.helm import operator_render

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_a_waiting_rollout_is_progressing() -> None:
    workloads = {"postgres": WorkloadState(0, 1), "redis": WorkloadState(1, 1)}
    observation = Observation(
        3, "Infrastructure", "WaitingInfrastructure", "...", False, workloads, "paper"
    )
    status = derive_status(observation, {}, T0)
    assert status["phase"] == "Infrastructure" and status["observedGeneration"] == 3
    assert conditions(status) == {
        "Ready": ("False", "WaitingInfrastructure"),
        "Progressing": ("True", "WaitingInfrastructure"),
        "Degraded": ("False", "WaitingInfrastructure"),
    }
    assert status["readyWorkloads"] == "1/2" and status["tradingEnvironment"] == "paper"
    assert status["workloads"]["postgres"] == {"ready": 0, "desired": 1}


def test_condition_times_change_only_with_the_condition() -> None:
    waiting = Observation(1, "Services", "WaitingServices", "a", workloads={})
    before = derive_status(waiting, {}, T0)
    same = derive_status(waiting, before, T1)
    assert same == before and build_status_patch(before, same) is None
    ready = derive_status(Observation(1, "Ready", "AllWorkloadsReady", "b", workloads={}), same, T1)
    times = {c["type"]: c["lastTransitionTime"] for c in ready["conditions"]}
    assert times == {"Ready": T1, "Progressing": T1, "Degraded": T0}


def test_paused_and_invalid_keep_the_last_figures() -> None:
    running = derive_status(
        Observation(
            1,
            "Ready",
            "AllWorkloadsReady",
            "",
            workloads={"redis": WorkloadState(1, 1)},
            trading_environment="paper",
        ),
        {},
        T0,
    )
    paused = derive_status(Observation(2, "Paused", "Paused", "spec.paused"), running, T1)
    assert paused["workloads"] == running["workloads"] and paused["readyWorkloads"] == "1/1"
    assert conditions(paused)["Progressing"] == ("False", "Paused")
    invalid = derive_status(
        Observation(3, "Degraded", "InvalidSpec", "spec.x: bad", degraded=True), paused, T1
    )
    assert conditions(invalid)["Degraded"] == ("True", "InvalidSpec")
    assert conditions(invalid)["Ready"] == ("False", "InvalidSpec")


def test_the_status_patch_removes_what_is_gone() -> None:
    old = {"phase": "Ready", "workloads": {"a": {"ready": 1}, "b": {"ready": 1}}, "kopf": {}}
    new = {"phase": "Ready", "workloads": {"a": {"ready": 2}}}
    assert build_status_patch(old, new) == {
        "workloads": {"a": {"ready": 2}, "b": None},
        "kopf": None,
    }


def test_workload_readiness_needs_the_current_generation() -> None:
    desired = {"spec": {"replicas": 3}}
    assert derive_workload_state(desired, None) == WorkloadState(0, 3)
    live = {"metadata": {"generation": 2}, "status": {"readyReplicas": 3, "observedGeneration": 1}}
    assert derive_workload_state(desired, live) == WorkloadState(0, 3)
    live["status"]["observedGeneration"] = 2
    assert derive_workload_state(desired, live).is_ready
    assert derive_workload_state({"spec": {"replicas": 0}}, {"status": {}}).is_ready


def test_job_states() -> None:
    assert derive_job_state(None) is JobState.MISSING
    assert derive_job_state({"status": {"active": 1}}) is JobState.RUNNING
    assert derive_job_state({"status": {"succeeded": 1}}) is JobState.SUCCEEDED
    failed = {"status": {"conditions": [{"type": "Failed", "status": "True"}]}}
    assert derive_job_state(failed) is JobState.FAILED


def test_a_failed_migration_is_degraded() -> None:
    desired = operator_render()
    plans = build_phases(desired)
    migrating = next(plan for plan in plans if plan.phase is Phase.MIGRATING)
    (job,) = migrating.gates
    live = {
        object_key(job): {**job, "status": {"conditions": [{"type": "Failed", "status": "True"}]}}
    }
    keys = {w.name: key for key, w in load_values().workloads.items()}
    observation = derive_rollout(
        generation=1,
        trading_environment="paper",
        desired=desired,
        live=live,
        keys=keys,
        waiting=migrating,
    )
    assert (observation.phase, observation.reason, observation.degraded) == (
        "Migrating",
        "MigrationFailed",
        True,
    )
    assert "mt-mastertrade-migrate" in observation.message
    assert observation.workloads is not None and len(observation.workloads) == 14


def test_a_failed_restore_is_reported_as_such() -> None:
    def observe(phase: str, reason: str, message: str, *, degraded: bool = False) -> Observation:
        return Observation(1, phase, reason, message, degraded=degraded)

    failed = observe_failed_job(Phase.RESTORING, "mt-mastertrade-restore", observe)
    assert (failed.phase, failed.reason, failed.degraded) == ("Restoring", "RestoreFailed", True)
    assert failed.message.startswith("restore Job mt-mastertrade-restore failed")
