"""The steps only an operator adds to the chart's objects; pure functions on plain dicts.

- `helm test` pods are never rendered (`--skip-tests`); hook Jobs (schema, restore) become plain
  Jobs, which the operator runs as phases (`phases.py`) instead of Helm hooks.
- Helm's hook and resource-policy annotations go: the operator's finalizer keeps the PVCs.
- `app.kubernetes.io/managed-by` says `mastertrade-operator`, which is how the operator finds
  its children.
- Every object names its namespace (the chart leaves cluster-scoped ones unnamed, and has none).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Manifest = dict[str, Any]

MANAGED_BY = "mastertrade-operator"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
HELM_ANNOTATIONS = (
    "helm.sh/hook",
    "helm.sh/hook-weight",
    "helm.sh/hook-delete-policy",
    "helm.sh/resource-policy",
)


def _relabel(node: Any) -> None:
    """Set managed-by in every `labels` map of the object (metadata and pod templates)."""
    if isinstance(node, dict):
        labels = node.get("labels")
        if isinstance(labels, dict) and MANAGED_BY_LABEL in labels:
            labels[MANAGED_BY_LABEL] = MANAGED_BY
        for value in node.values():
            _relabel(value)
    elif isinstance(node, list):
        for item in node:
            _relabel(item)


def as_operator_object(manifest: Manifest, namespace: str) -> Manifest:
    """One rendered object as the operator applies it."""
    meta = manifest.setdefault("metadata", {})
    annotations = {
        key: value
        for key, value in (meta.get("annotations") or {}).items()
        if key not in HELM_ANNOTATIONS
    }
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    meta.setdefault("namespace", namespace)
    _relabel(manifest)
    return manifest


def as_operator_objects(documents: Iterable[Any], namespace: str) -> list[Manifest]:
    """The objects of a `helm template` stream (empty documents skipped)."""
    return [
        as_operator_object(document, namespace)
        for document in documents
        if isinstance(document, dict) and document.get("kind")
    ]
