"""Pure derivation of a MasterTradeDeployment's status from what the operator observed."""

from mastertrade_operator.status.derive import (
    Observation,
    WorkloadState,
    build_status_patch,
    derive_status,
)
from mastertrade_operator.status.readiness import derive_job_state, derive_workload_state

__all__ = [
    "Observation",
    "WorkloadState",
    "build_status_patch",
    "derive_job_state",
    "derive_status",
    "derive_workload_state",
]
