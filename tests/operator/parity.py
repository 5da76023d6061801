"""Normalising and comparing rendered objects: what the parity tests call "the same"."""

from __future__ import annotations

import difflib
from typing import Any

import yaml

from tests.helm import Manifest

TOOL_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by")
Key = tuple[str, str, str]


def _normalise_node(node: Any) -> Any:
    if isinstance(node, list):
        return [_normalise_node(item) for item in node]
    if not isinstance(node, dict):
        return node
    result: dict[str, Any] = {}
    for key, item in node.items():
        value = item
        if key == "labels" and isinstance(item, dict):
            value = {k: v for k, v in item.items() if k not in TOOL_LABELS}
        elif key == "annotations" and isinstance(item, dict):
            value = {k: v for k, v in item.items() if not k.startswith("helm.sh/")}
            if not value:
                continue
        result[key] = _normalise_node(value)
    return result


def normalise(manifest: Manifest) -> Manifest:
    """Drop the labels and annotations that name the tool and the Secret's random data."""
    normalised: Manifest = _normalise_node(manifest)
    if normalised["kind"] == "Secret":
        normalised["data"] = dict.fromkeys(normalised.get("data") or {}, "<password>")
    return normalised


def is_helm_test(manifest: Manifest) -> bool:
    annotations = manifest["metadata"].get("annotations") or {}
    return annotations.get("helm.sh/hook") == "test"


def keyed(manifests: list[Manifest]) -> dict[Key, Manifest]:
    return {
        (m["apiVersion"], m["kind"], m["metadata"]["name"]): normalise(m)
        for m in manifests
        if not is_helm_test(m)
    }


def _dump(manifest: Manifest) -> list[str]:
    return yaml.safe_dump(manifest, sort_keys=True, width=1000).splitlines(keepends=True)


def differences(helm: list[Manifest], python: list[Manifest]) -> str:
    """A readable report of every difference, empty when the renders are the same."""
    ours, theirs = keyed(python), keyed(helm)
    report = [f"only in helm template: {key}\n" for key in sorted(theirs.keys() - ours.keys())]
    report += [f"only in the operator's render: {key}\n" for key in sorted(ours.keys() - theirs)]
    for key in sorted(ours.keys() & theirs.keys()):
        if ours[key] != theirs[key]:
            label = "/".join(key[1:])
            report += difflib.unified_diff(
                _dump(theirs[key]), _dump(ours[key]), f"helm {label}", f"operator {label}"
            )
    return "".join(report)
