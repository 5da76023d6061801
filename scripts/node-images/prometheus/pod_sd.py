#!/usr/bin/python3
"""Entrypoint of the Prometheus stand-in: Kubernetes pod discovery for a prometheus built without
it (Debian's 2.42 leaves it out).

It reads the mounted config (--config.file), replaces every `kubernetes_sd_configs` entry (role
pod) by a `file_sd_configs` file, writes that config to a writable folder (/tmp), then runs
prometheus with the same flags but the new --config.file. A child process lists the pods through
the API server with the Pod's ServiceAccount token and CA, as Prometheus would, and rewrites the
files: one target per container port, with the `__meta_kubernetes_*` labels Prometheus sets, so
the config's relabelling runs unchanged. An API error (a 403 from RBAC) is logged and the last
good targets stay.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PROMETHEUS = "/usr/bin/prometheus"
DEFAULT_CONFIG = "prometheus.yml"  # prometheus' own default, relative to its working folder
OUT = Path(os.environ.get("POD_SD_DIR", "/tmp/pod-sd"))
ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
REFRESH_SECONDS = 5.0


@dataclass(frozen=True)
class Discovery:
    """One `kubernetes_sd_configs` entry: the pods to list and the file their targets go to."""

    file: Path
    namespaces: tuple[str, ...]  # empty: the Pod's own namespace
    label_selector: str
    field_selector: str


def translate(config: dict[str, Any], config_dir: Path, out: Path) -> list[Discovery]:
    """Rewrites `config` in place for file discovery under `out`; relative rule files are made
    absolute (prometheus reads them relative to the config file, which moves)."""
    config["rule_files"] = [str(config_dir / p) for p in config.get("rule_files") or []]
    found: list[Discovery] = []
    for job in config.get("scrape_configs") or []:
        files = []
        for index, sd in enumerate(job.pop("kubernetes_sd_configs", None) or []):
            found.append(discovery(sd, out / f"{job['job_name']}-{index}.json"))
            files.append(str(found[-1].file))
        if files:
            job.setdefault("file_sd_configs", []).append(
                {"files": files, "refresh_interval": f"{int(REFRESH_SECONDS)}s"}
            )
    return found


def discovery(sd: dict[str, Any], file: Path) -> Discovery:
    if sd.get("role") != "pod":
        raise SystemExit(f"pod_sd: only role pod is supported, the config has {sd.get('role')}")
    unsupported = set(sd) - {"role", "namespaces", "selectors"}
    if unsupported:
        raise SystemExit(f"pod_sd: kubernetes_sd_configs fields not supported: {unsupported}")
    namespaces = sd.get("namespaces") or {}
    names = tuple(namespaces.get("names") or [])
    if namespaces.get("own_namespace"):
        names = (*names, "")
    labels = [s.get("label", "") for s in sd.get("selectors") or [] if s.get("role") == "pod"]
    fields = [s.get("field", "") for s in sd.get("selectors") or [] if s.get("role") == "pod"]
    return Discovery(file, names or ("",), ",".join(filter(None, labels)),
                     ",".join(filter(None, fields)))  # fmt: skip


def sanitize(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def pod_groups(pod: dict[str, Any]) -> list[dict[str, Any]]:
    """The file_sd groups of one pod: one per container port (one without a port for a container
    that has none), as Prometheus' pod role builds them. A pod without an IP has none."""
    meta, spec, status = pod["metadata"], pod.get("spec", {}), pod.get("status", {})
    ip = status.get("podIP", "")
    if not ip:
        return []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                for c in status.get("conditions") or [])  # fmt: skip
    common = {
        "__meta_kubernetes_namespace": meta["namespace"],
        "__meta_kubernetes_pod_name": meta["name"],
        "__meta_kubernetes_pod_ip": ip,
        "__meta_kubernetes_pod_uid": meta.get("uid", ""),
        "__meta_kubernetes_pod_node_name": spec.get("nodeName", ""),
        "__meta_kubernetes_pod_host_ip": status.get("hostIP", ""),
        "__meta_kubernetes_pod_phase": status.get("phase", ""),
        "__meta_kubernetes_pod_ready": str(ready).lower(),
    }
    for kind, values in (("label", meta.get("labels")), ("annotation", meta.get("annotations"))):
        for key, value in (values or {}).items():
            common[f"__meta_kubernetes_pod_{kind}_{sanitize(key)}"] = value
            common[f"__meta_kubernetes_pod_{kind}present_{sanitize(key)}"] = "true"
    for owner in meta.get("ownerReferences") or []:
        if owner.get("controller"):
            common["__meta_kubernetes_pod_controller_kind"] = owner["kind"]
            common["__meta_kubernetes_pod_controller_name"] = owner["name"]
    groups = []
    for container in spec.get("containers") or []:
        labels = {**common, "__meta_kubernetes_pod_container_name": container["name"],
                  "__meta_kubernetes_pod_container_image": container.get("image", ""),
                  "__meta_kubernetes_pod_container_init": "false"}  # fmt: skip
        ports = container.get("ports") or []
        if not ports:
            groups.append({"targets": [ip], "labels": labels})
        for port in ports:
            number = str(port["containerPort"])
            groups.append({"targets": [f"{ip}:{number}"], "labels": {
                **labels,
                "__meta_kubernetes_pod_container_port_name": port.get("name", ""),
                "__meta_kubernetes_pod_container_port_number": number,
                "__meta_kubernetes_pod_container_port_protocol": port.get("protocol", "TCP"),
            }})  # fmt: skip
    return groups


class ApiServer:
    """The API server as the Pod sees it: its Service address, its CA, the mounted token."""

    def __init__(self) -> None:
        host = os.environ["KUBERNETES_SERVICE_HOST"]
        host = f"[{host}]" if ":" in host else host
        self.base = f"https://{host}:{os.environ.get('KUBERNETES_SERVICE_PORT', '443')}"
        self.context = ssl.create_default_context(cafile=str(ACCOUNT / "ca.crt"))
        self.own_namespace = (ACCOUNT / "namespace").read_text().strip()

    def pods(self, namespace: str, labels: str, fields: str) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode({k: v for k, v in
                                        (("labelSelector", labels), ("fieldSelector", fields))
                                        if v})  # fmt: skip
        path = f"/api/v1/namespaces/{namespace or self.own_namespace}/pods?{query}"
        # The token is re-read each time: the kubelet rotates it
        token = (ACCOUNT / "token").read_text().strip()
        request = urllib.request.Request(self.base + path,
                                         headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        with urllib.request.urlopen(request, context=self.context, timeout=20) as response:
            items: list[dict[str, Any]] = json.load(response)["items"]
        for pod in items:  # a list's items carry no kind; the namespace is in their metadata
            pod["metadata"].setdefault("namespace", namespace or self.own_namespace)
        return items


def write_atomically(file: Path, groups: list[dict[str, Any]]) -> None:
    partial = file.with_suffix(".partial")
    partial.write_text(json.dumps(groups, indent=1))
    partial.replace(file)  # prometheus never reads half a file


def refresh_forever(discoveries: list[Discovery]) -> None:
    api = ApiServer()
    failing: dict[Path, str] = {}
    while True:
        for sd in discoveries:
            try:
                pods = [p for ns in sd.namespaces
                        for p in api.pods(ns, sd.label_selector, sd.field_selector)]  # fmt: skip
            except (OSError, ValueError) as error:
                detail = error.read().decode(errors="replace")[:300] if isinstance(
                    error, urllib.error.HTTPError) else ""  # fmt: skip
                message = f"{error} {detail}".strip()
                if failing.get(sd.file) != message:  # once per new error, not every 5 s
                    print(f"pod_sd: listing pods for {sd.file.name} failed, keeping its last "
                          f"targets: {message}", file=sys.stderr, flush=True)  # fmt: skip
                failing[sd.file] = message
                continue
            if failing.pop(sd.file, None):
                print(f"pod_sd: listing pods for {sd.file.name} works again", file=sys.stderr)
            write_atomically(sd.file, [g for pod in pods for g in pod_groups(pod)])
        time.sleep(REFRESH_SECONDS)


def config_flag(args: list[str]) -> tuple[int, str]:
    """Where --config.file is in prometheus' arguments (-1: absent) and its value."""
    for index, arg in enumerate(args):
        if arg.startswith("--config.file="):
            return index, arg.split("=", 1)[1]
    return -1, DEFAULT_CONFIG


def main(args: list[str]) -> None:
    index, source = config_flag(args)
    config = yaml.safe_load(Path(source).read_text())
    OUT.mkdir(parents=True, exist_ok=True)
    discoveries = translate(config, Path(source).resolve().parent, OUT)
    for sd in discoveries:
        write_atomically(sd.file, [])
    translated = OUT / "prometheus.yml"
    translated.write_text(yaml.safe_dump(config, sort_keys=False))
    flag = f"--config.file={translated}"
    args = [*args[:index], flag, *args[index + 1 :]] if index >= 0 else [flag, *args]
    print(f"pod_sd: {len(discoveries)} pod discoveries from {source} written to {translated}",
          file=sys.stderr, flush=True)  # fmt: skip
    if discoveries and os.fork() == 0:
        refresh_forever(discoveries)  # the child; it ends with the container
    os.execv(PROMETHEUS, [PROMETHEUS, *args])


if __name__ == "__main__":
    main(sys.argv[1:])
