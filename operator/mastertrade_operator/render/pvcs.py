"""PersistentVolumeClaims of Deployments with a data volume (StatefulSets claim theirs through
volumeClaimTemplates).

The chart marks them `helm.sh/resource-policy: keep`; the operator keeps them through its
finalizer instead, so no such annotation is rendered here.
"""

from __future__ import annotations

from mastertrade_operator.model.values import Workload, WorkloadKind
from mastertrade_operator.render.context import Manifest, Release
from mastertrade_operator.render.workloads import build_claim_spec


def build_pvc(release: Release, workload: Workload) -> Manifest:
    name = f"{release.workload_name(workload)}-data"
    labels = release.workload_labels(workload.name, workload.component)
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": release.metadata(name, labels),
        "spec": build_claim_spec(release, workload),
    }


def build_pvcs(release: Release) -> list[Manifest]:
    return [
        build_pvc(release, workload)
        for _, workload in release.enabled_workloads()
        if workload.kind == WorkloadKind.DEPLOYMENT
        and workload.persistence is not None
        and workload.persistence.enabled
    ]
