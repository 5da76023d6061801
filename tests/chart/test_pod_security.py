"""Every pod the chart renders meets the Kubernetes "restricted" Pod Security Standard.

The rules are those of the standard (kubernetes.io/docs/concepts/security/pod-security-standards),
checked on the rendered objects, so the namespace can enforce `pod-security.kubernetes.io/
enforce: restricted`.
"""

from __future__ import annotations

from typing import Any

from tests.chart.test_behaviour import pods_of
from tests.helm import Manifest

ALLOWED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def restricted_violations(name: str, pod: dict[str, Any]) -> list[str]:
    spec = pod["spec"]
    pod_context = spec.get("securityContext", {})
    problems = [
        f"{name}: host namespace {key}"
        for key in ("hostNetwork", "hostPID", "hostIPC")
        if spec.get(key)
    ]
    problems += [
        f"{name}: volume {volume['name']} of a forbidden type"
        for volume in spec.get("volumes", [])
        if not set(volume) - {"name"} <= ALLOWED_VOLUME_TYPES
    ]
    if pod_context.get("seccompProfile", {}).get("type") not in {"RuntimeDefault", "Localhost"}:
        problems.append(f"{name}: no RuntimeDefault seccomp profile")
    for container in [*spec.get("initContainers", []), *spec["containers"]]:
        context = container.get("securityContext", {})
        label = f"{name}/{container['name']}"
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{label}: privilege escalation not disabled")
        if context.get("capabilities", {}).get("drop") != ["ALL"]:
            problems.append(f"{label}: capabilities not dropped")
        if context.get("privileged"):
            problems.append(f"{label}: privileged")
        if not (context.get("runAsNonRoot") or pod_context.get("runAsNonRoot")):
            problems.append(f"{label}: may run as root")
        if 0 in {context.get("runAsUser"), pod_context.get("runAsUser")}:
            problems.append(f"{label}: runs as UID 0")
        if any("hostPort" in port for port in container.get("ports", [])):
            problems.append(f"{label}: host port")
    return problems


def test_pods_meet_the_restricted_profile(profile_render: list[Manifest]) -> None:
    problems = [
        p for name, pod in pods_of(profile_render) for p in restricted_violations(name, pod)
    ]
    assert problems == []


def test_the_checker_finds_a_violation() -> None:
    pod = {"spec": {"hostNetwork": True, "containers": [{"name": "c"}]}}
    assert len(restricted_violations("bad", pod)) >= 4


def test_root_filesystems_are_read_only(profile_render: list[Manifest]) -> None:
    for name, pod in pods_of(profile_render):
        for container in pod["spec"]["containers"]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
        # Only the operator, its hook Jobs and Prometheus (pod discovery) talk to the Kubernetes
        # API (each with an account of its own, allowed what it does), so only their pods get a
        # token
        component = pod["metadata"]["labels"].get("app.kubernetes.io/component")
        talks_to_the_api = component in ("operator", "operator-hook", "prometheus")
        assert pod["spec"]["automountServiceAccountToken"] is talks_to_the_api, name
