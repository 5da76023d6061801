"""PodDisruptionBudgets: workloads scaled past one replica keep one serving through drains."""

from __future__ import annotations

from mastertrade_operator.model.values import Workload
from mastertrade_operator.render.context import Manifest, Release


def build_pdb(release: Release, workload: Workload) -> Manifest:
    labels = release.workload_labels(workload.name, workload.component)
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": release.metadata(release.workload_name(workload), labels),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": release.selector_labels(workload.name)},
        },
    }


def build_pdbs(release: Release) -> list[Manifest]:
    return [build_pdb(release, w) for _, w in release.enabled_workloads() if w.replicas > 1]
