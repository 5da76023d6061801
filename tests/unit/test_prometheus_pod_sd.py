"""The Prometheus stand-in's pod discovery (scripts/node-images/prometheus/pod_sd.py) against the
chart's rendered prometheus.yml: Debian's prometheus refuses the chart's kubernetes_sd_configs,
accepts the translated config, and the chart's relabelling of the targets the stand-in writes
keeps exactly the metrics port of running pods (the real promtool and prometheus)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.helm import REPO, by_kind_and_name, render

POD_SD = REPO / "scripts" / "node-images" / "prometheus" / "pod_sd.py"
PREFIX = "mt-mastertrade-"


def load_pod_sd() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pod_sd", POD_SD)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["pod_sd"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


pod_sd = load_pod_sd()


def promtool() -> str:
    return required("promtool")


def prometheus() -> str:
    return required("prometheus")


def required(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise RuntimeError(f"{tool} not found: install the Debian package prometheus")
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The chart's Prometheus files as the Pod mounts them (release mt, namespace node)."""
    objects = by_kind_and_name(render(release="mt", namespace="node"))
    folder = tmp_path_factory.mktemp("etc-prometheus")
    for name, text in objects[("ConfigMap", PREFIX + "prometheus-files")]["data"].items():
        (folder / name).write_text(text)
    return folder


def translated(files: Path, out: Path) -> tuple[dict[str, Any], list[Any]]:
    config = yaml.safe_load((files / "prometheus.yml").read_text())
    discoveries = pod_sd.translate(config, files, out)
    return config, discoveries


def test_debian_prometheus_refuses_the_chart_config_and_accepts_the_translation(
    files: Path, tmp_path: Path
) -> None:
    refused = subprocess.run([promtool(), "check", "config", str(files / "prometheus.yml")],
                             capture_output=True, text=True, check=False)  # fmt: skip
    assert refused.returncode != 0, refused.stdout
    config, discoveries = translated(files, tmp_path)
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    for sd in discoveries:
        pod_sd.write_atomically(sd.file, [])
    # from another folder: the rule file is found where the chart mounts it
    accepted = subprocess.run([promtool(), "check", "config", "prometheus.yml"], cwd=tmp_path,
                              capture_output=True, text=True, check=False)  # fmt: skip
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert "mastertrade-rules.yml" in accepted.stdout


def test_every_job_reads_one_file_per_discovery_of_its_own_namespace_and_pods(
    files: Path, tmp_path: Path
) -> None:
    original = yaml.safe_load((files / "prometheus.yml").read_text())
    config, discoveries = translated(files, tmp_path)
    assert len(discoveries) == len(original["scrape_configs"]) > 10
    for before, after, sd in zip(original["scrape_configs"], config["scrape_configs"],
                                 discoveries, strict=True):  # fmt: skip
        assert "kubernetes_sd_configs" not in after
        assert after["file_sd_configs"][0]["files"] == [str(sd.file)]
        # everything else (relabelling, path) is the chart's
        assert {k: v for k, v in after.items() if k != "file_sd_configs"} == {
            k: v for k, v in before.items() if k != "kubernetes_sd_configs"
        }
        (chart_sd,) = before["kubernetes_sd_configs"]
        assert sd.namespaces == ("node",)
        assert sd.label_selector == chart_sd["selectors"][0]["label"]
        assert "app.kubernetes.io/instance=mt" in sd.label_selector


def pod(name: str, component: str, phase: str, ports: list[dict[str, Any]]) -> dict[str, Any]:
    """A pod as the API server lists it (the fields discovery reads)."""
    return {
        "metadata": {"name": name, "namespace": "node", "uid": f"uid-{name}",
                     "labels": {"app.kubernetes.io/component": component,
                                "app.kubernetes.io/instance": "mt"},
                     "ownerReferences": [{"kind": "ReplicaSet", "name": name[:-6],
                                          "controller": True}]},
        "spec": {"nodeName": "node-1", "containers": [
            {"name": component, "image": "img", "ports": ports},
            {"name": "sidecar", "image": "img"},
        ]},
        "status": {"phase": phase, "podIP": f"10.0.0.{len(name)}", "hostIP": "192.0.2.1",
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def active_targets(url: str) -> list[dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return list(json.load(response)["data"]["activeTargets"])
    except OSError:
        return []


def test_the_charts_relabelling_keeps_the_metrics_port_of_running_pods_only(
    files: Path, tmp_path: Path
) -> None:
    """The real prometheus (Debian's, as in the stand-in) runs the chart's relabel_configs on
    the targets the stand-in writes (the labels Prometheus' own pod discovery sets): one target
    per running risk manager pod, on its metrics port, with the pod's name and namespace."""
    config, discoveries = translated(files, tmp_path)
    config.pop("alerting")  # no alert system here
    ports = [{"name": "http", "containerPort": 8003, "protocol": "TCP"},
             {"name": "other", "containerPort": 9999, "protocol": "TCP"}]  # fmt: skip
    pods = [pod("risk-abcdef", "risk-manager", "Running", ports),
            pod("risk-ghijkl", "risk-manager", "Running", ports),
            pod("risk-mnopqr", "risk-manager", "Pending", ports)]  # fmt: skip
    groups = [g for p in pods for g in pod_sd.pod_groups(p)]
    assert len(groups) == 3 * 3  # two ports and a container without any, per pod
    for sd in discoveries:
        pod_sd.write_atomically(sd.file, groups if "risk-manager" in sd.file.name else [])
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    server = subprocess.Popen([prometheus(), f"--config.file={tmp_path / 'prometheus.yml'}",
                               f"--storage.tsdb.path={tmp_path / 'data'}",
                               f"--web.listen-address=127.0.0.1:{port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}/api/v1/targets"
    try:
        for _ in range(300):  # until discovery has run (bounded; a time is asserted nowhere)
            found = active_targets(url)
            if found:
                break
            time.sleep(0.1)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert sorted((t["labels"]["job"], t["discoveredLabels"]["__address__"], t["labels"]["pod"],
                   t["labels"]["namespace"], t["labels"]["tier"]) for t in found) == [
        ("risk-manager", "10.0.0.11:8003", "risk-abcdef", "node", "core"),
        ("risk-manager", "10.0.0.11:8003", "risk-ghijkl", "node", "core"),
    ]  # fmt: skip
