"""Both install paths on the real API server, as a user runs them: `helm install` of the chart,
and `helm install --set operator.enabled=true` on a cluster without the CRD; each upgraded with a
changed value and uninstalled. The hook Jobs' commands are run here as local processes with the
hooks' own ServiceAccounts (the kubelet stand-in marks Jobs done without running them), which
proves what they do and that their RBAC is enough and no more.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helm import CHART, helm_binary
from tests.k8s.controlplane import ControlPlane, python_bin, run, wait_for

pytestmark = pytest.mark.k8s

CRD = "mastertradedeployments.mastertrade.io"


def helm(plane: ControlPlane, *args: str, timeout: float = 300) -> str:
    env = {"KUBECONFIG": str(plane.kubeconfig), "HELM_CACHE_HOME": "/tmp/mastertrade-helm/cache",
           "HELM_CONFIG_HOME": "/tmp/mastertrade-helm/config",
           "HELM_DATA_HOME": "/tmp/mastertrade-helm/data"}  # fmt: skip
    return run([helm_binary(), *args], env=env, timeout=timeout)


def names(plane: ControlPlane, kinds: str, namespace: str) -> set[str]:
    return set(plane.kubectl("get", kinds, "-n", namespace, "-o", "name").split())


def login_as(plane: ControlPlane, namespace: str, account: str, folder: Path) -> Path:
    """A kubeconfig with a token of `account`, as a hook Job's pod would have."""
    token = plane.kubectl("create", "token", account, "-n", namespace).strip()
    admin = yaml.safe_load(plane.kubeconfig.read_text())
    cluster = admin["clusters"][0]["cluster"]
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "hook",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "hook", "context": {"cluster": "c", "user": "u"}}],
    }  # fmt: skip
    path = folder / f"{account}.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def hook_accounts(plane: ControlPlane, namespace: str, sets: list[str], template: str) -> None:
    """Create a template's hook RBAC (not its Job) as helm would before running the hook."""
    args = ["template", "mt", str(CHART), "-n", namespace, "-s", template]
    rendered = [d for d in yaml.safe_load_all(helm(plane, *args, *sets)) if d]
    accounts = [d for d in rendered if d["kind"] != "Job"]
    plane.kubectl("apply", "-f", "-", stdin="\n---\n".join(yaml.safe_dump(d) for d in accounts))


def operator_cli(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(python_bin() / "mastertrade-operator"), *args]
    env = {"KUBECONFIG": str(kubeconfig), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_chart_installs_upgrades_and_uninstalls_keeping_the_data(plane: ControlPlane) -> None:
    helm(plane, "install", "mt", str(CHART), "-n", "chart", "--create-namespace")
    workloads = names(plane, "deploy,sts", "chart")
    assert len(workloads) == 14, workloads
    helm(plane, "upgrade", "mt", str(CHART), "-n", "chart",
         "--set", "workloads.strategyService.replicas=2")  # fmt: skip
    replicas = plane.get("deployment", "mt-mastertrade-strategy-service", "-n", "chart")
    assert replicas["spec"]["replicas"] == 2
    wait_for(lambda: len(names(plane, "pvc", "chart")) == 6, 60, "six volumes bound")
    claims = names(plane, "pvc", "chart")
    helm(plane, "uninstall", "mt", "-n", "chart")
    wait_for(lambda: not names(plane, "deploy,sts", "chart"), 60, "workloads gone")
    assert names(plane, "pvc", "chart") == claims, "volumes are kept on uninstall"


def test_the_credentials_hook_makes_the_secret_once_with_narrow_rights(
    plane: ControlPlane, tmp_path: Path
) -> None:
    plane.kubectl("create", "namespace", "creds")
    hook_accounts(plane, "creds", [], "templates/secrets.yaml")
    kubeconfig = login_as(plane, "creds", "mt-mastertrade-credentials", tmp_path)
    first = operator_cli(kubeconfig, "credentials", "mt-mastertrade-credentials", "-n", "creds")
    assert first.returncode == 0, first.stdout + first.stderr
    made = plane.get("secret", "mt-mastertrade-credentials", "-n", "creds")["data"]
    assert set(made) == {"postgres-password", "rabbitmq-password", "grafana-admin-password"}
    assert all(base64.b64decode(value).isalnum() for value in made.values())
    again = operator_cli(kubeconfig, "credentials", "mt-mastertrade-credentials", "-n", "creds")
    assert again.returncode == 0
    assert plane.get("secret", "mt-mastertrade-credentials", "-n", "creds")["data"] == made
    other = operator_cli(kubeconfig, "credentials", "someone-elses", "-n", "creds")
    assert other.returncode == 1 and "forbidden" in other.stdout, "no rights beyond its Secret"


def crd_absent(plane: ControlPlane) -> bool:
    return CRD not in plane.kubectl("get", "crd", "-o", "name")


@pytest.fixture
def fresh_cluster(plane: ControlPlane) -> None:
    """No MasterTradeDeployment CRD (the tier's other modules install it themselves)."""
    if not crd_absent(plane):
        assert not json.loads(plane.kubectl("get", "mtd", "-A", "-o", "json"))["items"]
        plane.kubectl("delete", "crd", CRD)
        wait_for(lambda: crd_absent(plane), 60, "CRD deleted")


def test_operator_mode_installs_on_a_fresh_cluster_in_one_command(
    plane: ControlPlane, fresh_cluster: None, tmp_path: Path
) -> None:
    sets = ["--set", "operator.enabled=true"]
    helm(plane, "install", "mt", str(CHART), "-n", "opmode", "--create-namespace", *sets)
    resource: dict[str, Any] = plane.get("mtd", "mt", "-n", "opmode")
    assert resource["spec"]["workloads"]["strategyService"]["replicas"] == 1
    assert "mt-mastertrade-operator" in " ".join(names(plane, "deploy", "opmode"))
    helm(plane, "upgrade", "mt", str(CHART), "-n", "opmode", *sets,
         "--set", "workloads.strategyService.replicas=3")  # fmt: skip
    resource = plane.get("mtd", "mt", "-n", "opmode")
    assert resource["spec"]["workloads"]["strategyService"]["replicas"] == 3
    # what the pre-upgrade hook runs, with its account: the CRD applied, and nothing else allowed
    hook_accounts(plane, "opmode", sets, "templates/operator/hooks.yaml")
    upgrade = login_as(plane, "opmode", "mt-mastertrade-crd-upgrade", tmp_path)
    applied = operator_cli(upgrade, "crd", "--apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    # what the pre-delete hook runs: the resource deleted and waited for
    uninstall = login_as(plane, "opmode", "mt-mastertrade-uninstall", tmp_path)
    finished = operator_cli(uninstall, "uninstall", "mt", "--namespace=opmode", "--timeout=60")
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert not json.loads(plane.kubectl("get", "mtd", "-n", "opmode", "-o", "json"))["items"]
    helm(plane, "uninstall", "mt", "-n", "opmode")
    assert not crd_absent(plane), "uninstalling never deletes the CRD"
