"""The operator path on a real node: `helm install --set operator.enabled=true` runs the operator
as a Pod (its image, its ServiceAccount and namespaced RBAC, reaching the API server through the
`kubernetes` Service) and one MasterTradeDeployment; the operator renders the chart inside its
Pod and brings the MasterTradeDeployment to Ready with 14 real workloads. Deleting a Pod or a
whole Deployment heals. Runs after test_chart.py (file order), once its release is gone."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helm import CHART
from tests.node.cluster import NodeCluster, pod_ready, wait_for
from tests.node.conftest import FIGURES
from tests.node.test_chart import (
    VALUES,
    WORKLOADS,
    not_ready,
    restricted_namespace,
    wait_all_ready,
    workloads,
)

pytestmark = pytest.mark.node

NAMESPACE = "mastertrade-operated"
RELEASE = "mt"
HEALED = f"{RELEASE}-mastertrade-risk-manager"


def deployment_status(cluster: NodeCluster) -> dict[str, Any]:
    found = cluster.get("mastertradedeployments", RELEASE, "-n", NAMESPACE)
    return dict(found.get("status") or {})


def mtd_ready(cluster: NodeCluster) -> bool:
    status = deployment_status(cluster)
    conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
    return status.get("phase") == "Ready" and conditions.get("Ready") == "True"


@pytest.fixture(scope="module")
def operated(cluster: NodeCluster) -> Iterator[NodeCluster]:
    restricted_namespace(cluster, NAMESPACE)
    started = time.monotonic()
    cluster.helm("install", RELEASE, str(CHART), "-n", NAMESPACE, "-f", str(VALUES),
                 "--set", "operator.enabled=true", "--timeout", "15m")  # fmt: skip
    try:
        wait_for(lambda: mtd_ready(cluster), 900, "the MasterTradeDeployment Ready", every=3)
        wait_all_ready(cluster, NAMESPACE, WORKLOADS)
    finally:
        FIGURES["operator_install_to_mtd_ready_s"] = round(time.monotonic() - started, 1)
    try:
        yield cluster
    finally:
        cluster.helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout", "10m")


def test_the_operator_pod_brings_the_deployment_to_ready_with_real_pods(
    operated: NodeCluster,
) -> None:
    operator = operated.get("pods", "-n", NAMESPACE, "-l",
                            "app.kubernetes.io/component=operator")["items"]  # fmt: skip
    assert len(operator) == 1 and pod_ready(operator[0])
    assert operator[0]["spec"]["serviceAccountName"] == f"{RELEASE}-mastertrade-operator"
    status = deployment_status(operated)
    assert status["phase"] == "Ready", status
    rendered = workloads(operated, NAMESPACE)
    assert len(rendered) == WORKLOADS and not not_ready(operated, NAMESPACE)
    # The operator, not helm, created them
    for workload in rendered:
        owners = workload["metadata"].get("ownerReferences") or []
        assert any(o["kind"] == "MasterTradeDeployment" for o in owners), workload["metadata"]


def test_a_deleted_pod_is_replaced(operated: NodeCluster) -> None:
    pods = operated.get("pods", "-n", NAMESPACE, "-l",
                        "app.kubernetes.io/component=risk-manager")["items"]  # fmt: skip
    assert len(pods) == 1
    old = pods[0]["metadata"]["name"]
    operated.kubectl("delete", "pod", old, "-n", NAMESPACE, "--wait=true", timeout=180)

    def replaced() -> bool:
        current = operated.get("pods", "-n", NAMESPACE, "-l",
                               "app.kubernetes.io/component=risk-manager")["items"]  # fmt: skip
        return any(p["metadata"]["name"] != old and pod_ready(p) for p in current)

    wait_for(replaced, 300, "a new risk-manager Pod Ready", every=2)


def test_a_deleted_deployment_is_recreated_by_the_operator(operated: NodeCluster) -> None:
    old_uid = operated.get("deployment", HEALED, "-n", NAMESPACE)["metadata"]["uid"]
    operated.kubectl("delete", "deployment", HEALED, "-n", NAMESPACE, "--wait=true", timeout=180)

    def recreated_and_ready() -> bool:
        try:
            current = operated.get("deployment", HEALED, "-n", NAMESPACE)
        except RuntimeError:
            return False
        status = current.get("status") or {}
        return bool(current["metadata"]["uid"] != old_uid and status.get("readyReplicas", 0) >= 1)

    wait_for(recreated_and_ready, 600, f"{HEALED} recreated and Ready", every=3)
    wait_for(lambda: mtd_ready(operated), 300, "the MasterTradeDeployment Ready again", every=3)
