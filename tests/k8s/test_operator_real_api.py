"""The operator on a real API server (kube-apiserver + controllers + the kubelet stand-in), as a
local process with its own ServiceAccount's token and the namespaced RBAC of manifests/.

The tests share one installation of the default sample and run in file order: each leaves it
Ready. Writes are counted from the API server's audit log; steady windows are short (10-20 s)
to keep the tier's time reasonable.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from tests.k8s.controlplane import REPO, ControlPlane, Identity, python_bin, wait_for
from tests.k8s.operator_process import OperatorProcess

pytestmark = pytest.mark.k8s

NS = ["-n", "mastertrade"]
NAME = "mastertrade"
SAMPLE = REPO / "manifests/samples/paper-default.yaml"
GATEWAY = "mastertrade-api-gateway"
STEADY_WINDOW = 20.0
CPU_TARGET = {"type": "Utilization", "averageUtilization": 80}


def resource(plane: ControlPlane) -> dict[str, Any]:
    found: dict[str, Any] = plane.get("mtd", NAME, *NS)
    return found


def is_ready(plane: ControlPlane) -> bool:
    found = resource(plane)
    status = found.get("status") or {}
    current = status.get("observedGeneration") == found["metadata"]["generation"]
    return status.get("phase") == "Ready" and current


def summary(writes: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [
        (e["verb"], e["objectRef"].get("resource", ""), e["objectRef"].get("name", ""))
        for e in writes
    ]


def gateway(plane: ControlPlane) -> dict[str, Any]:
    found: dict[str, Any] = plane.get("deployment", GATEWAY, *NS)
    return found


@pytest.fixture(scope="module")
def installed(plane: ControlPlane, operator: OperatorProcess) -> Iterator[float]:
    """The default sample applied and Ready; seconds it took."""
    started = time.monotonic()
    plane.kubectl("apply", "-f", str(SAMPLE))
    wait_for(lambda: is_ready(plane), 180, "the sample Ready")
    yield time.monotonic() - started


def test_the_default_sample_becomes_ready_with_every_object_owned(
    plane: ControlPlane, operator: OperatorProcess, installed: float
) -> None:
    print(f"\nReady {installed:.1f}s after apply; operator healthy after start")
    found = resource(plane)
    uid = found["metadata"]["uid"]
    assert found["status"]["readyWorkloads"] == "14/14"
    kinds = "deployments,statefulsets,services,configmaps,networkpolicies,poddisruptionbudgets"
    listed = plane.get(kinds + ",serviceaccounts,persistentvolumeclaims,jobs,cronjobs", *NS)
    ours = [
        item
        for item in listed["items"]
        if item["metadata"].get("labels", {}).get("app.kubernetes.io/managed-by")
        == "mastertrade-operator"
        and item["kind"] != "PersistentVolumeClaim"  # StatefulSets' claims are the controller's
    ]
    assert len(ours) > 50
    for item in ours:
        (owner,) = item["metadata"]["ownerReferences"]
        assert owner["uid"] == uid and owner["controller"], item["metadata"]["name"]
    secret = plane.get("secret", "mastertrade-credentials", *NS)
    assert not secret["metadata"].get("ownerReferences")  # kept with the PVCs on deletion
    log = operator.log()
    assert " ERROR " not in log, log[-5000:]  # waiting phases are ordinary progress
    assert "namespaces is forbidden" not in log and "Not enough permissions" not in log


def test_a_steady_installation_writes_nothing(
    plane: ControlPlane, operator: OperatorProcess, installed: float
) -> None:
    mark = plane.audit_mark()
    time.sleep(STEADY_WINDOW)
    assert summary(plane.writes_since(mark)) == []


def test_fields_of_other_managers_are_left_alone(plane: ControlPlane, installed: float) -> None:
    mark = plane.audit_mark()
    plane.kubectl("annotate", "deployment", GATEWAY, *NS, "team.example/owner=ops")
    plane.kubectl("set", "env", f"deployment/{GATEWAY}", *NS, "EXTRA_FLAG=1")
    time.sleep(10)
    # the env var rolls the Deployment out: status and Events follow it, but nothing is applied
    writes = summary(plane.writes_since(mark))
    assert [w for w in writes if w[1] != "mastertradedeployments" and w[1] != "events"] == []
    live = gateway(plane)
    assert live["metadata"]["annotations"]["team.example/owner"] == "ops"
    env = live["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "EXTRA_FLAG", "value": "1"} in env


def test_replicas_under_an_hpa_are_left_to_it(plane: ControlPlane, installed: float) -> None:
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "gateway", "namespace": "mastertrade"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": GATEWAY},
            "minReplicas": 2,
            "maxReplicas": 3,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 80},
                    },
                }
            ],
        },
    }
    plane.kubectl("apply", "-f", "-", stdin=json.dumps(hpa))
    # the HPA controller raises replicas to minReplicas (no metrics needed for that)
    wait_for(lambda: gateway(plane)["spec"]["replicas"] == 2, 60, "the HPA scaling to 2")
    time.sleep(3)  # the operator sees the change (a child event) and leaves it
    mark = plane.audit_mark()
    time.sleep(10)
    assert [w for w in summary(plane.writes_since(mark)) if w[1] == "deployments"] == []
    assert gateway(plane)["spec"]["replicas"] == 2
    plane.kubectl("delete", "hpa", "gateway", *NS)


def cpu_limit(plane: ControlPlane) -> str:
    return str(
        gateway(plane)["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"]
    )


def test_a_deleted_or_edited_child_is_restored(plane: ControlPlane, installed: float) -> None:
    path = "/spec/template/spec/containers/0/resources/limits/cpu"
    patch = json.dumps([{"op": "replace", "path": path, "value": "3"}])
    started = time.monotonic()
    plane.kubectl("patch", "deployment", GATEWAY, *NS, "--type=json", "-p", patch)
    wait_for(
        lambda: (
            gateway(plane)["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"][
                "cpu"
            ]
            != "3"
        ),
        15,
        "limits.cpu reverted",
    )
    reverted = time.monotonic() - started
    plane.kubectl("delete", "deployment", "mastertrade-grafana", *NS, "--wait=false")
    started = time.monotonic()
    wait_for(lambda: "mastertrade-grafana" in plane.kubectl("get", "deploy", *NS, "-o", "name"), 15)
    print(
        f"\nlimits.cpu reverted in {reverted:.1f}s, deleted Deployment back in "
        f"{time.monotonic() - started:.1f}s"
    )
    wait_for(lambda: is_ready(plane), 60, "Ready again")


def test_pause_stops_corrections_and_status_tells_the_truth(
    plane: ControlPlane, installed: float
) -> None:
    plane.kubectl("patch", "mtd", NAME, *NS, "--type=merge", "-p", '{"spec":{"paused":true}}')
    wait_for(lambda: resource(plane)["status"]["phase"] == "Paused", 30, "Paused")
    plane.kubectl("delete", "deployment", "mastertrade-grafana", *NS)
    wait_for(lambda: resource(plane)["status"]["readyWorkloads"] == "13/14", 30, "13/14")
    time.sleep(5)
    assert "mastertrade-grafana" not in plane.kubectl("get", "deploy", *NS, "-o", "name")
    plane.kubectl("patch", "mtd", NAME, *NS, "--type=merge", "-p", '{"spec":{"paused":false}}')
    wait_for(lambda: is_ready(plane), 60, "Ready after unpausing")


def status_command(kubeconfig: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python_bin() / "mastertrade-operator"), "status", NAME],
        capture_output=True,
        text=True,
        env={"KUBECONFIG": kubeconfig, "PATH": "/usr/bin:/bin"},
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("kind", ["embedded", "relative", "exec_plugin"])
def test_status_logs_in_as_kubectl_does(identity: Identity, installed: float, kind: str) -> None:
    done = status_command(str(getattr(identity, kind)))
    assert done.returncode == 0, done.stderr
    assert "phase:        Ready" in done.stdout
    assert "StatefulSet  mastertrade-postgres" in done.stdout


def test_an_invalid_resource_is_refused_with_the_crds_message(plane: ControlPlane) -> None:
    bad = {
        "apiVersion": "mastertrade.io/v1alpha1",
        "kind": "MasterTradeDeployment",
        "metadata": {"name": "bad", "namespace": "mastertrade"},
        "spec": {"settings": {"trading": {"TRADING_ENVIRONMENT": "casino"}}},
    }
    with pytest.raises(RuntimeError) as refused:
        plane.kubectl("apply", "-f", "-", stdin=json.dumps(bad))
    assert "TRADING_ENVIRONMENT" in str(refused.value)
    assert "Unsupported value" in str(refused.value) or "should be" in str(refused.value)


def uid_of(plane: ControlPlane, kind: str, name: str) -> str:
    return str(plane.get(kind, name, *NS)["metadata"]["uid"])


def recreated(plane: ControlPlane, name: str, old_uid: str) -> bool:
    try:
        return uid_of(plane, "statefulset", name) != old_uid
    except RuntimeError:  # between the deletion and the creation
        return False


def test_an_immutable_field_change_recreates_the_statefulset_keeping_pods_and_claims(
    plane: ControlPlane, installed: float
) -> None:
    redis = "mastertrade-redis"
    before = {
        kind: uid_of(plane, kind, name)
        for kind, name in [
            ("statefulset", redis),
            ("pod", f"{redis}-0"),
            ("pvc", f"data-{redis}-0"),
        ]
    }
    size = '{"spec":{"workloads":{"redis":{"persistence":{"size":"3Gi"}}}}}'
    plane.kubectl("patch", "mtd", NAME, *NS, "--type=merge", "-p", size)
    wait_for(lambda: recreated(plane, redis, before["statefulset"]), 60, "a new StatefulSet")
    wait_for(lambda: is_ready(plane), 60, "Ready after the re-creation")
    claims = plane.get("statefulset", redis, *NS)["spec"]["volumeClaimTemplates"]
    assert claims[0]["spec"]["resources"]["requests"]["storage"] == "3Gi"
    assert uid_of(plane, "pod", f"{redis}-0") == before["pod"]  # orphaned, then adopted
    assert uid_of(plane, "pvc", f"data-{redis}-0") == before["pvc"]
    mark = plane.audit_mark()
    time.sleep(10)  # never retried forever
    assert [w for w in summary(plane.writes_since(mark)) if w[1] == "statefulsets"] == []


def test_a_refused_change_is_degraded_by_name_and_blocks_nothing_else(
    plane: ControlPlane, installed: float
) -> None:
    # A bound claim cannot shrink: the API server refuses; the other change still goes through
    change = {
        "grafana": {"persistence": {"size": "50Mi"}},
        "strategyService": {"replicas": 2},
    }
    patch = json.dumps({"spec": {"workloads": change}})
    plane.kubectl("patch", "mtd", NAME, *NS, "--type=merge", "-p", patch)
    wait_for(lambda: resource(plane)["status"]["phase"] == "Degraded", 60, "Degraded")
    ready = {c["type"]: c for c in resource(plane)["status"]["conditions"]}["Ready"]
    assert ready["reason"] == "ApplyRefused"
    assert "PersistentVolumeClaim/mastertrade-grafana-data" in ready["message"]
    assert "storage" in ready["message"]
    strategy = plane.get("deployment", "mastertrade-strategy-service", *NS)
    assert strategy["spec"]["replicas"] == 2
    mark = plane.audit_mark()
    time.sleep(8)  # the refusal is not retried until the spec changes
    assert [w for w in summary(plane.writes_since(mark)) if w[1] == "persistentvolumeclaims"] == []
    back = {"grafana": {"persistence": {"size": "100Mi"}}, "strategyService": {"replicas": 1}}
    patch = json.dumps({"spec": {"workloads": back}})
    plane.kubectl("patch", "mtd", NAME, *NS, "--type=merge", "-p", patch)
    wait_for(lambda: is_ready(plane), 60, "Ready after the change is undone")


def refused_reconciles(plane: ControlPlane, mark: int) -> list[float]:
    """When the operator's writes were refused (403) since `mark`, in seconds on the API
    server's clock, one time per reconcile: refusals less than half a second after the one
    before are the same reconcile's."""
    stamps = sorted(
        datetime.fromisoformat(write["requestReceivedTimestamp"]).timestamp()
        for write in plane.writes_since(mark)
        if write.get("responseStatus", {}).get("code") == 403
    )
    starts: list[float] = []
    for before, stamp in zip([None, *stamps], stamps, strict=False):
        if before is None or stamp - before > 0.5:
            starts.append(stamp)
    return starts


POKES = 24


def test_reconciles_back_off_while_the_api_refuses(plane: ControlPlane, installed: float) -> None:
    """Child events keep coming while every apply fails (the Role lost `patch` on Deployments):
    reconciles back off exponentially instead of failing on every event; then it recovers."""
    role = plane.get("role", "mastertrade-operator", *NS)
    narrowed = json.loads(json.dumps(role))
    for rule in narrowed["rules"]:
        if rule["apiGroups"] == ["apps"]:
            rule["verbs"] = [v for v in rule["verbs"] if v != "patch"]
    for key in ("resourceVersion", "managedFields", "uid", "creationTimestamp"):
        narrowed["metadata"].pop(key, None)
    plane.kubectl("replace", "-f", "-", stdin=json.dumps(narrowed))
    try:
        mark = plane.audit_mark()
        plane.kubectl("delete", "deployment", "mastertrade-grafana", *NS)
        for poke in range(POKES):  # a child event every half second or so
            plane.kubectl("annotate", "deployment", GATEWAY, *NS, f"poke={poke}", "--overwrite")
            time.sleep(0.5)
        attempts = refused_reconciles(plane, mark)
    finally:  # a failure here must not leave the operator without its rights for the next test
        role["metadata"].pop("resourceVersion", None)
        role["metadata"].pop("managedFields", None)
        plane.kubectl("apply", "-f", "-", stdin=json.dumps(role))
    # phase_retry 1 s: the n-th retry comes no sooner than 2^(n-1) s after the failure before
    # it, however many events arrive meanwhile; without backoff, one reconcile per event
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    assert 2 <= len(attempts) <= POKES // 3, attempts
    assert all(gap >= 0.9 * 2**n for n, gap in enumerate(gaps)), gaps
    wait_for(lambda: is_ready(plane), 60, "Ready once the API accepts again")


def passwords(plane: ControlPlane) -> dict[str, str]:
    data: dict[str, str] = plane.get("secret", "mastertrade-credentials", *NS)["data"]
    return data


def test_deleting_keeps_claims_and_credentials_and_recreating_reuses_them(
    plane: ControlPlane, installed: float
) -> None:
    kept = passwords(plane)
    claims = set(plane.kubectl("get", "pvc", *NS, "-o", "name").split())
    plane.kubectl("delete", "mtd", NAME, *NS, "--timeout=60s")
    wait_for(lambda: not plane.kubectl("get", "deploy,sts", *NS, "-o", "name").strip(), 60)
    assert set(plane.kubectl("get", "pvc", *NS, "-o", "name").split()) == claims
    assert passwords(plane) == kept
    plane.kubectl("apply", "-f", str(SAMPLE))
    wait_for(lambda: is_ready(plane), 180, "Ready again")
    assert passwords(plane) == kept  # the data kept in the PVCs still opens with them
