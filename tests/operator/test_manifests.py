"""`manifests/` installs the operator: kustomize builds it (the real kubectl), every object is
valid Kubernetes 1.35 (strict), the RBAC grants only what the operator uses, and the Deployment
runs it restricted."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from mastertrade_operator.cli import build_parser, build_run_options
from mastertrade_operator.kube import AUTOSCALERS, MASTERTRADE, OWNED
from tests.helm import REPO, TOOLS_BIN

pytestmark = pytest.mark.operator

KUBERNETES_VERSION = "1.35.0"
INSTALLS = {"clusterwide": REPO / "manifests", "namespaced": REPO / "manifests" / "namespaced"}
OWN_KINDS = {"ClusterKopfPeering", "KopfPeering"}
"""Kinds of CRDs installed alongside (no upstream schema): checked by hand below."""


def kubectl() -> str:
    local = TOOLS_BIN / "kubectl"
    found = str(local) if local.exists() else shutil.which("kubectl")
    if found is None:
        raise RuntimeError("kubectl not found: run `make tools` to install it into .tools/bin")
    return found


def kustomize(directory: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module", params=list(INSTALLS), ids=list(INSTALLS))
def objects(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return kustomize(INSTALLS[request.param])


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def test_every_object_is_valid_kubernetes(objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        if obj["kind"] in OWN_KINDS:
            assert obj["apiVersion"] == "kopf.dev/v1" and obj["metadata"]["name"]
            continue
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_the_crds_are_there(objects: list[dict[str, Any]]) -> None:
    names = {crd["metadata"]["name"] for crd in by_kind(objects, "CustomResourceDefinition")}
    assert names == {
        "mastertradedeployments.mastertrade.io",
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
    }


def granted(objects: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    """(apiGroup, resource) -> verbs, over every Role and ClusterRole."""
    rights: dict[tuple[str, str], set[str]] = {}
    for role in by_kind(objects, "ClusterRole") + by_kind(objects, "Role"):
        for rule in role["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    rights.setdefault((group, resource), set()).update(rule["verbs"])
    return rights


def test_rbac_grants_what_the_operator_uses_and_no_more(objects: list[dict[str, Any]]) -> None:
    rights = granted(objects)
    assert all("*" not in verbs for verbs in rights.values())
    assert all("*" not in key for key in rights)
    child_verbs = {"get", "list", "watch", "create", "patch", "delete"}
    for resource in OWNED.values():
        assert rights[resource.group, resource.plural] == child_verbs, resource.kind
    assert rights[MASTERTRADE.group, MASTERTRADE.plural] == {"get", "list", "watch", "patch"}
    assert rights[MASTERTRADE.group, f"{MASTERTRADE.plural}/status"] == {"get", "patch"}
    assert rights["", "events"] == {"create", "patch"}
    assert rights[AUTOSCALERS.group, AUTOSCALERS.plural] == {"list"}  # replicas an HPA owns
    assert not {key for key in rights if key[1] in ("nodes", "clusterroles", "clusterrolebindings")}
    # Pods are only read: the operator grants Prometheus' Role that much (pod discovery), and
    # Kubernetes lets it grant only what it holds
    assert rights["", "pods"] == {"get", "list", "watch"}
    assert "update" not in rights["", "secrets"]


def test_the_operator_runs_restricted(objects: list[dict[str, Any]]) -> None:
    (deployment,) = by_kind(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"].startswith("ghcr.io/mastertrade/mastertrade-operator:")
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "capabilities": {"drop": ["ALL"]},
    }
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["resources"]["limits"] and container["resources"]["requests"]
    assert "--priority=auto" in container["args"]
    scope = [arg for arg in container["args"] if "namespace" in arg]
    assert scope in (["--all-namespaces"], ["--namespace=mastertrade"])


def test_the_operator_command_line_is_one_run_accepts() -> None:
    for directory in INSTALLS.values():
        (deployment,) = by_kind(kustomize(directory), "Deployment")
        args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        options = build_run_options(build_parser().parse_args(args))
        assert options.liveness.endswith("/healthz") and options.metrics_port == 9090
        assert not options.standalone
