"""The chart's operator mode: what it installs, and its install, upgrade and uninstall paths."""

from __future__ import annotations

import yaml

from mastertrade_operator.chartoperator import namespaced_role_rules
from tests.helm import CHART, REPO, Manifest, by_kind_and_name, render, run_helm

OPERATOR_VALUES = CHART / "ci" / "operator-values.yaml"
MANIFEST_CRD = yaml.safe_load((REPO / "manifests/crd/mastertradedeployments.yaml").read_text())


def operator_mode(*sets: str) -> dict[tuple[str, str], Manifest]:
    return by_kind_and_name(render([OPERATOR_VALUES], list(sets), namespace="desk"))


def crds_installed(*sets: str) -> list[Manifest]:
    """The CRDs `helm install` would create before the templates (crds/ of enabled charts)."""
    args = ["template", "mastertrade", str(CHART), "--include-crds", "--namespace", "desk"]
    result = run_helm(*args, *(a for s in sets for a in ("--set", s)))
    assert result.returncode == 0, result.stderr
    objects = [o for o in yaml.safe_load_all(result.stdout) if o]
    return [o for o in objects if o["kind"] == "CustomResourceDefinition"]


def test_operator_mode_installs_the_crd_kubectl_applies_before_its_resource() -> None:
    """In crds/ (of the `crds` subchart), so Helm creates it before it maps the chart's own
    MasterTradeDeployment: one `helm install` works on a fresh cluster."""
    (crd,) = crds_installed("operator.enabled=true")
    assert crd["spec"] == MANIFEST_CRD["spec"]
    assert crds_installed() == [], "chart mode needs no CRD (nor the rights to create one)"


def test_hooks_upgrade_the_crd_and_finish_the_resource_before_the_operator_goes() -> None:
    objects = operator_mode()
    upgrade = objects[("Job", "mastertrade-crd-upgrade")]
    uninstall = objects[("Job", "mastertrade-uninstall")]
    assert upgrade["metadata"]["annotations"]["helm.sh/hook"] == "pre-upgrade"
    assert uninstall["metadata"]["annotations"]["helm.sh/hook"] == "pre-delete"
    assert upgrade["spec"]["template"]["spec"]["containers"][0]["args"] == ["crd", "--apply"]
    args = uninstall["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:2] == ["uninstall", "mastertrade"] and "--namespace=desk" in args
    (crd_rule,) = objects[("ClusterRole", "desk-mastertrade-crd-upgrade")]["rules"]
    assert crd_rule["resourceNames"] == ["mastertradedeployments.mastertrade.io"]
    assert set(crd_rule["verbs"]) == {"get", "patch"}
    (mtd_rule,) = objects[("Role", "mastertrade-uninstall")]["rules"]
    assert mtd_rule["resourceNames"] == ["mastertrade"]
    assert set(mtd_rule["verbs"]) == {"get", "delete"}
    for job in (upgrade, uninstall):
        assert job["spec"]["template"]["spec"]["serviceAccountName"] == job["metadata"]["name"]
    hooks = [
        o
        for o in objects.values()
        if o["metadata"]["labels"].get("app.kubernetes.io/component") == "operator-hook"
        and "helm.sh/hook" in o["metadata"].get("annotations", {})
    ]
    weights = {o["kind"]: int(o["metadata"]["annotations"]["helm.sh/hook-weight"]) for o in hooks}
    assert weights["ServiceAccount"] < weights["Job"] and weights["Role"] < weights["Job"]


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
