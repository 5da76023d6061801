"""The chart's operator mode: what it installs, and the CRD upgrade path it gives."""

from __future__ import annotations

import yaml

from mastertrade_operator.chartoperator import namespaced_role_rules
from tests.helm import CHART, REPO, Manifest, by_kind_and_name, render

OPERATOR_VALUES = CHART / "ci" / "operator-values.yaml"
MANIFEST_CRD = yaml.safe_load((REPO / "manifests/crd/mastertradedeployments.yaml").read_text())


def operator_mode(*sets: str) -> dict[tuple[str, str], Manifest]:
    return by_kind_and_name(render([OPERATOR_VALUES], list(sets), namespace="desk"))


def test_helm_upgrade_upgrades_the_same_crd_kubectl_applies() -> None:
    """Helm never upgrades crds/; this CRD is a template, so `helm upgrade` applies it."""
    crd = operator_mode()[("CustomResourceDefinition", "mastertradedeployments.mastertrade.io")]
    assert crd["spec"] == MANIFEST_CRD["spec"]
    assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}


def test_a_second_release_leaves_the_crd_to_the_first() -> None:
    kinds = {kind for kind, _ in operator_mode("operator.installCRD=false")}
    assert "CustomResourceDefinition" not in kinds
    assert "MasterTradeDeployment" in kinds


def test_the_operator_watches_only_its_namespace_with_the_namespaced_rules() -> None:
    objects = operator_mode()
    deployment = objects[("Deployment", "mastertrade-operator")]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=desk" in args and "--all-namespaces" not in args
    assert objects[("Role", "mastertrade-operator")]["rules"] == namespaced_role_rules()
    binding = objects[("RoleBinding", "mastertrade-operator")]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "mastertrade-operator", "namespace": "desk"}
    ]


def test_the_resource_carries_the_values_but_not_the_operator_block() -> None:
    resource = operator_mode()[("MasterTradeDeployment", "mastertrade")]
    assert "operator" not in resource["spec"]
    assert resource["spec"]["workloads"]["strategyService"]["replicas"] == 2
