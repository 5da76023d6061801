"""Readiness of live children, read from their status as the controllers write it."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from mastertrade_operator.status.derive import WorkloadState

Manifest = dict[str, Any]


class JobState(StrEnum):
    MISSING = "Missing"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


def derive_workload_state(desired: Manifest, live: Manifest | None) -> WorkloadState:
    """Ready and desired replicas of a Deployment or StatefulSet.

    Replicas count as ready only once the controller has seen the current generation, so a
    status left over from before a change does not pass for the new one.
    """
    wanted = int(desired["spec"].get("replicas", 1))
    if live is None:
        return WorkloadState(ready=0, desired=wanted)
    status = live.get("status") or {}
    generation = live.get("metadata", {}).get("generation")
    observed = status.get("observedGeneration")
    if observed is not None and generation is not None and observed < generation:
        return WorkloadState(ready=0, desired=wanted)
    return WorkloadState(ready=min(int(status.get("readyReplicas") or 0), wanted), desired=wanted)


def derive_job_state(live: Manifest | None) -> JobState:
    """Where the schema Job is: succeeded once, failed for good, or still running."""
    if live is None:
        return JobState.MISSING
    status = live.get("status") or {}
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    if int(status.get("succeeded") or 0) >= 1 or conditions.get("Complete") == "True":
        return JobState.SUCCEEDED
    if conditions.get("Failed") == "True":
        return JobState.FAILED
    return JobState.RUNNING
