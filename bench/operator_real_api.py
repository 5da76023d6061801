"""Benchmark: the operator on a real API server (../shared/k8s: kube-apiserver, controllers and
the kubelet stand-in), as a local process with its ServiceAccount's token, beside a reference in
the same run: `kubectl apply --server-side` of the same rendered objects into another namespace
(what a plain GitOps apply does, without phases, status or drift repair).

Figures, with writes counted from the API server's audit log (which records writes only, so
reads are not counted): a new resource -> every object applied, and -> Ready (with how long
after the last Pod was marked ready, at the one-second resolution of Pod conditions); a spec
change -> applied; drift (a deleted Deployment, an edited limit) -> repaired; writes in a steady
minute (target 0); the operator's RSS. Run with `.venv/bin/python bench/operator_real_api.py`
(about 3 minutes on 2 cores).
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.k8s.controlplane import (  # noqa: E402
    ControlPlane,
    build_identity,
    install_operator_rbac,
    python_bin,
    run,
    wait_for,
)
from tests.k8s.operator_process import OperatorProcess  # noqa: E402

SAMPLE = REPO / "manifests/samples/paper-default.yaml"
NS = ["-n", "mastertrade"]
ADMIN = "admin"
Row = tuple[str, str, str]


def timed(action: Callable[[], Any], check: Callable[[], Any], timeout: float = 180) -> float:
    started = time.monotonic()
    action()
    wait_for(check, timeout, every=0.05)
    return time.monotonic() - started


def rendered(namespace: str) -> list[dict[str, Any]]:
    text = SAMPLE.read_text().replace("namespace: mastertrade", f"namespace: {namespace}")
    source = Path(tempfile.mkdtemp()) / "sample.yaml"
    source.write_text(text)
    out = run([python_bin() / "mastertrade-operator", "render", "-f", source])
    return [doc for doc in yaml.safe_load_all(out) if doc]


def workloads_ready(plane: ControlPlane, ns: str) -> bool:
    listed = plane.get("deploy,sts", "-n", ns)["items"]
    return bool(listed) and all(
        (w.get("status") or {}).get("readyReplicas", 0) >= w["spec"].get("replicas", 1)
        for w in listed
    )


def last_pod_ready(plane: ControlPlane, ns: str) -> datetime.datetime:
    moments = [
        c["lastTransitionTime"]
        for pod in plane.get("pods", "-n", ns)["items"]
        for c in (pod.get("status") or {}).get("conditions") or []
        if c["type"] == "Ready" and c["status"] == "True"
    ]
    return datetime.datetime.fromisoformat(max(moments).replace("Z", "+00:00"))


def mtd_ready(plane: ControlPlane) -> bool:
    found = plane.get("mtd", "mastertrade", *NS)
    status = found.get("status") or {}
    current = status.get("observedGeneration") == found["metadata"]["generation"]
    return bool(status.get("phase") == "Ready" and current)


def applied_count(plane: ControlPlane, mark: int) -> int:
    return len(
        {
            (w["objectRef"].get("resource"), w["objectRef"].get("name"))
            for w in plane.writes_since(mark)
            if w["verb"] == "patch"
            and w["objectRef"].get("resource") != "mastertradedeployments"
            and "fieldManager=mastertrade-operator" in w.get("requestURI", "")
        }
    )


def measure_operator(plane: ControlPlane, operator: OperatorProcess, objects: int) -> list[Row]:
    rows: list[Row] = []
    mark = plane.audit_mark()
    started = time.monotonic()
    plane.kubectl("apply", "-f", str(SAMPLE))
    wait_for(lambda: applied_count(plane, mark) >= objects, 180, every=0.05)
    applied = time.monotonic() - started
    wait_for(lambda: mtd_ready(plane), 180, every=0.05)
    ready_at = datetime.datetime.now(datetime.UTC)
    ready, writes = time.monotonic() - started, len(plane.writes_since(mark))
    after_pod = (ready_at - last_pod_ready(plane, "mastertrade")).total_seconds()
    rows.append(("new resource -> every object applied", f"{applied:.1f} s", f"{objects} objects"))
    rows.append(("new resource -> Ready", f"{ready:.1f} s", f"{writes} writes"))
    rows.append(("  Ready after the last Pod ready", f"{after_pod:.1f} s", "(1 s resolution)"))
    mark = plane.audit_mark()
    target = "mastertrade-strategy-service"
    patch = '{"spec":{"workloads":{"strategyService":{"replicas":2}}}}'
    took = timed(
        lambda: plane.kubectl("patch", "mtd", "mastertrade", *NS, "--type=merge", "-p", patch),
        lambda: plane.get("deploy", target, *NS)["spec"]["replicas"] == 2,
    )
    wait_for(lambda: mtd_ready(plane), 120)
    deploys = [w for w in plane.writes_since(mark) if w["objectRef"].get("resource") != "events"]
    rows.append(("spec change -> applied", f"{took:.2f} s", f"{len(deploys)} writes to Ready"))
    rows += measure_drift(plane)
    wait_for(lambda: mtd_ready(plane), 120)  # the reverted edit rolls the Deployment out
    time.sleep(5)
    mark = plane.audit_mark()
    time.sleep(60)
    steady = plane.writes_since(mark)
    which = ", ".join(sorted({f"{w['verb']} {w['objectRef'].get('resource')}" for w in steady}))
    rows.append(("steady minute", "60 s", f"{len(steady)} writes {which}".rstrip()))
    rows.append(("operator RSS", f"{operator.rss_kib() / 1024:.0f} MiB", ""))
    return rows


def measure_drift(plane: ControlPlane) -> list[Row]:
    grafana = "mastertrade-grafana"
    mark = plane.audit_mark()
    back = timed(
        lambda: plane.kubectl("delete", "deploy", grafana, *NS, "--wait=false"),
        lambda: (
            grafana in plane.kubectl("get", "deploy", *NS, "-o", "name")
            and not plane.get("deploy", grafana, *NS)["metadata"].get("deletionTimestamp")
        ),
    )
    path = "/spec/template/spec/containers/0/resources/limits/cpu"
    edit = json.dumps([{"op": "replace", "path": path, "value": "3"}])

    def cpu() -> str:
        spec = plane.get("deploy", grafana, *NS)["spec"]["template"]["spec"]
        return str(spec["containers"][0]["resources"]["limits"]["cpu"])

    wait_for(lambda: mtd_ready(plane), 60)
    reverted = timed(
        lambda: plane.kubectl("patch", "deploy", grafana, *NS, "--type=json", "-p", edit),
        lambda: cpu() != "3",
    )
    applies = [
        w for w in plane.writes_since(mark) if w["objectRef"].get("resource") == "deployments"
    ]
    return [
        ("drift: deleted Deployment -> back", f"{back:.2f} s", ""),
        ("drift: edited limits.cpu -> reverted", f"{reverted:.2f} s", f"{len(applies)} applies"),
    ]


def measure_reference(plane: ControlPlane, objects: list[dict[str, Any]]) -> list[Row]:
    plane.kubectl("create", "namespace", "reference")
    stream = "\n---\n".join(json.dumps(o) for o in objects)
    mark = plane.audit_mark()
    started = time.monotonic()
    plane.kubectl("apply", "--server-side", "--field-manager=reference", "-f", "-", stdin=stream)
    applied = time.monotonic() - started
    writes = len(plane.writes_since(mark, user=ADMIN))
    wait_for(lambda: workloads_ready(plane, "reference"), 180, every=0.05)
    ready = time.monotonic() - started
    mark = plane.audit_mark()
    plane.kubectl("apply", "--server-side", "--field-manager=reference", "-f", "-", stdin=stream)
    again = len(plane.writes_since(mark, user=ADMIN))
    return [
        ("kubectl apply --server-side -> applied", f"{applied:.1f} s", f"{writes} writes"),
        ("  -> workloads ready (no phases)", f"{ready:.1f} s", ""),
        ("  the same apply again", "", f"{again} writes"),
    ]


def print_table(title: str, rows: list[Row]) -> None:
    print(f"\n{title}")
    width = max(len(r[0]) for r in rows)
    for what, time_taken, note in rows:
        print(f"  {what.ljust(width)}  {time_taken:>9}  {note}")


def main() -> None:
    # room on the stand-in node for two installations (the operator's and the reference)
    os.environ.setdefault("NODE_CPU", "64")
    os.environ.setdefault("NODE_MEMORY", "256Gi")
    folder = Path(tempfile.mkdtemp(prefix="mt-bench-k8s-"))
    plane = ControlPlane.start(folder)
    operator = None
    try:
        install_operator_rbac(plane)
        identity = build_identity(plane, folder / "identity")
        operator = OperatorProcess(identity.embedded, folder / "operator.log")
        healthy = operator.wait_healthy()
        objects = rendered("reference")
        rows = [("operator start -> healthy", f"{healthy:.1f} s", "")]
        rows += measure_operator(plane, operator, len(objects))
        print_table("operator (namespaced RBAC, ServiceAccount token)", rows)
        print_table("reference: the same objects by kubectl", measure_reference(plane, objects))
    finally:
        if operator is not None:
            operator.stop()
        plane.stop()


if __name__ == "__main__":
    main()
