"""The real test node of the `node` tier: control plane + cluster DNS + node + images + volumes.

`NodeCluster.start` runs the shared kit (`ADVERTISE=IP control-plane up DIR`), starts the
cluster DNS (tests/node/dns.py) on IP:53, then `CLUSTER_DNS=IP control-plane node DIR` (real
containerd, kubelet, kube-proxy and bridge CNI), imports the images scripts/node-images.py built,
and creates hostPath PersistentVolumes for the chart's claims (there is no provisioner).
`stop` is the kit's `down DIR` (which takes the node down first) and stops the resolver.

Helpers: `kubectl`/`helm` as the admin, `wait_for`, the figures the tier reports (`timings`),
and `diagnostics()`: events, `kubectl describe` and container logs of every Pod that is not
Ready or not Succeeded, as the kind workflow uploads them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.helm import helm_binary
from tests.k8s.controlplane import KUBECTL, REPO, find_kit, run, wait_for

IMAGES_SCRIPT = REPO / "scripts" / "node-images.py"
# Pods run these; the base and the python/node stand-ins are only built on
NOT_IMPORTED = (
    "localhost/debian:bookworm",
    "docker.io/library/python:3.11-slim",
    "docker.io/library/node:20-slim",
)
PERSISTENT_VOLUMES = 20  # the claims of three releases (6 each) side by side


def advertise_address() -> str:
    """MASTERTRADE_NODE_ADVERTISE, else the first global IPv4 address of this machine."""
    chosen = os.environ.get("MASTERTRADE_NODE_ADVERTISE")
    if chosen:
        return chosen
    listing = run(["ip", "-4", "-o", "addr", "show", "scope", "global"])
    found = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/", listing)
    if found is None:
        raise RuntimeError(
            "no global IPv4 address on this machine for the node: set MASTERTRADE_NODE_ADVERTISE"
        )
    return found.group(1)


def build_images(log: Path) -> list[dict[str, Any]]:
    """scripts/node-images.py build: one record per image (cached or built, seconds)."""
    output = run([sys.executable, IMAGES_SCRIPT, "build", "--log", log], timeout=7200)
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def leftover_node_folders() -> list[Path]:
    """Folders of a node a dead run left up (the kit marks /etc/hosts with its folder)."""
    hosts = Path("/etc/hosts").read_text()
    return [Path(m) for m in re.findall(r"# mastertrade-k8s (\S+)", hosts)]


@dataclass
class NodeCluster:
    """A running control plane with one real node, its DNS, its images and volumes."""

    folder: Path
    kit: Path
    address: str
    dns: subprocess.Popen[bytes] | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def kubeconfig(self) -> Path:
        return self.folder / "kubeconfig"

    def env(self) -> dict[str, str]:
        return {"KUBECTL": str(KUBECTL), "ADVERTISE": self.address}

    @classmethod
    def start(cls, folder: Path, images: list[str]) -> NodeCluster:
        kit = find_kit()
        if kit is None:
            raise RuntimeError("the node tier needs ../shared/k8s/control-plane beside the repo")
        if os.geteuid() != 0:
            raise RuntimeError("the node tier runs a real node: it needs root")
        for stale in leftover_node_folders():
            run([kit, "down", stale], env={"KUBECTL": str(KUBECTL)}, timeout=300)
        if folder.exists():
            run([kit, "down", folder], env={"KUBECTL": str(KUBECTL)}, timeout=300)
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        cluster = cls(folder, kit, advertise_address())
        try:
            cluster._start(images)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _start(self, images: list[str]) -> None:
        started = time.monotonic()
        run([self.kit, "up", self.folder], env=self.env(), timeout=300)
        self.timings["control_plane_up_s"] = time.monotonic() - started
        self.start_dns()
        started = time.monotonic()
        run([self.kit, "node", self.folder], env={**self.env(), "CLUSTER_DNS": self.address},
            timeout=300)  # fmt: skip
        self.timings["node_ready_s"] = time.monotonic() - started
        started = time.monotonic()
        wanted = [image for image in images if image not in NOT_IMPORTED]
        run([self.kit, "image-import", self.folder, *wanted], env=self.env(), timeout=1800)
        self.timings["image_import_s"] = time.monotonic() - started
        self.create_volumes()

    def start_dns(self) -> None:
        # The child keeps its own copy of the log's descriptor; ours is closed at once
        with (self.folder / "logs" / "cluster-dns.log").open("ab") as log:
            self.dns = subprocess.Popen(
                [sys.executable, "-m", "tests.node.dns", "--kubeconfig", str(self.kubeconfig),
                 "--listen", f"{self.address}:53"],
                cwd=REPO, stdout=log, stderr=log,
            )  # fmt: skip
        wait_for(lambda: "answering" in self.dns_log(), 30, "the cluster DNS to listen")

    def dns_log(self) -> str:
        path = self.folder / "logs" / "cluster-dns.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def create_volumes(self) -> None:
        """hostPath PersistentVolumes for the claims (no provisioner on the node). The folders
        are world-writable: hostPath volumes ignore fsGroup, and each image runs as its own uid."""
        documents = []
        for index in range(PERSISTENT_VOLUMES):
            path = self.folder / "volumes" / f"pv-{index:02d}"
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o777)
            documents.append({
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": f"node-pv-{index:02d}"},
                "spec": {
                    "capacity": {"storage": "100Gi"},
                    "accessModes": ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "hostPath": {"path": str(path), "type": "Directory"},
                },
            })  # fmt: skip
        self.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                                                            "items": documents}))  # fmt: skip

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            run([self.kit, "down", self.folder], env={"KUBECTL": str(KUBECTL)}, timeout=300)
        if self.dns is not None and self.dns.poll() is None:
            self.dns.send_signal(signal.SIGTERM)
            self.dns.wait(timeout=10)

    def kubectl(self, *args: str, stdin: str | None = None, timeout: float = 120) -> str:
        return run([KUBECTL, "--kubeconfig", self.kubeconfig, *args], input=stdin,
                   timeout=timeout)  # fmt: skip

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def helm(self, *args: str, timeout: float = 900) -> str:
        home = self.folder / "helm"
        env = {
            "KUBECONFIG": str(self.kubeconfig),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }
        return run([helm_binary(), *args], env=env, timeout=timeout)  # fmt: skip

    def diagnostics(self, namespace: str) -> str:
        """Events, describe and logs of every Pod in `namespace` that is not Ready/Succeeded."""
        parts = [f"===== diagnostics of namespace {namespace} ====="]

        def attempt(*args: str) -> str:
            try:
                return self.kubectl(*args, timeout=60)
            except Exception as error:
                return f"({' '.join(args)} failed: {error})"

        parts.append(attempt("get", "all,pvc,jobs", "-n", namespace, "-o", "wide"))
        parts.append(attempt("get", "events", "-n", namespace, "--sort-by=.lastTimestamp"))
        try:
            pods = self.get("pods", "-n", namespace)["items"]
        except Exception as error:
            pods = []
            parts.append(f"(listing pods failed: {error})")
        for pod in pods:
            name = pod["metadata"]["name"]
            if pod_ready(pod) or pod["status"].get("phase") == "Succeeded":
                continue
            parts.append(f"----- pod {name} (not Ready) -----")
            parts.append(attempt("describe", "pod", name, "-n", namespace))
            for container in pod["spec"].get("containers", []):
                for previous in ("", "--previous"):
                    args = ["logs", name, "-n", namespace, "-c", container["name"], "--tail=80"]
                    parts.append(f"--- logs {container['name']} {previous} ---")
                    parts.append(attempt(*args, *([previous] if previous else [])))
        return "\n".join(parts)


def pod_ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


__all__ = ["NodeCluster", "build_images", "pod_ready", "wait_for"]
