"""Deployments (stateless services, and Prometheus/Grafana with a PVC) and StatefulSets
(PostgreSQL, RabbitMQ, Redis): one per enabled workload of the catalog."""

from __future__ import annotations

from mastertrade_operator.model.values import Workload, WorkloadKind
from mastertrade_operator.render.context import Manifest, Release
from mastertrade_operator.render.pod import build_pod_template


def build_claim_spec(release: Release, workload: Workload) -> Manifest:
    """The spec of a workload's data volume claim (a PVC, or a StatefulSet's template)."""
    assert workload.persistence is not None
    spec: Manifest = {"accessModes": ["ReadWriteOnce"]}
    storage_class = workload.persistence.storageClass or release.values.global_.storageClass
    if storage_class:
        spec["storageClassName"] = storage_class
    spec["resources"] = {"requests": {"storage": workload.persistence.size}}
    return spec


def _stateful_set_spec(release: Release, workload: Workload) -> Manifest:
    name = release.workload_name(workload)
    spec: Manifest = {
        "serviceName": f"{name}-headless",
        "podManagementPolicy": "OrderedReady",
        "updateStrategy": {"type": "RollingUpdate"},
    }
    if workload.persistence is not None and workload.persistence.enabled:
        keep = release.values.persistence.keepOnUninstall
        spec["persistentVolumeClaimRetentionPolicy"] = {
            "whenDeleted": "Retain" if keep else "Delete",
            "whenScaled": "Retain",
        }
        claim = {
            "metadata": {"name": "data", "labels": release.selector_labels(workload.name)},
            "spec": build_claim_spec(release, workload),
        }
        spec["volumeClaimTemplates"] = [claim]
    return spec


def _deployment_spec(workload: Workload) -> Manifest:
    if workload.persistence is not None and workload.persistence.enabled:
        # One ReadWriteOnce volume: the old pod must let go of it before the new one starts
        return {"strategy": {"type": "Recreate"}}
    rolling = {"maxSurge": 1, "maxUnavailable": 0}
    return {"strategy": {"type": "RollingUpdate", "rollingUpdate": rolling}}


def build_workload(release: Release, key: str, workload: Workload) -> Manifest:
    """The Deployment or StatefulSet of one workload."""
    name = release.workload_name(workload)
    spec: Manifest = {
        "replicas": workload.replicas,
        "revisionHistoryLimit": 5,
        "selector": {"matchLabels": release.selector_labels(workload.name)},
    }
    if workload.kind == WorkloadKind.STATEFUL_SET:
        spec.update(_stateful_set_spec(release, workload))
    else:
        spec.update(_deployment_spec(workload))
    spec["template"] = build_pod_template(release, key, workload)
    labels = release.workload_labels(workload.name, workload.component)
    return {
        "apiVersion": "apps/v1",
        "kind": str(workload.kind),
        "metadata": release.metadata(name, labels),
        "spec": spec,
    }


def build_workloads(release: Release) -> list[Manifest]:
    return [build_workload(release, key, w) for key, w in release.enabled_workloads()]
