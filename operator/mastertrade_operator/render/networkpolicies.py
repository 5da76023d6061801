"""NetworkPolicies: a default deny of ingress, then per workload ingress only from the workloads
that depend on it (pods labelled `mastertrade.io/uses-<name>`), from Prometheus on the metrics
port and, for entry points (`exposed`), from anywhere. Egress stays open."""

from __future__ import annotations

from mastertrade_operator.model.values import Workload
from mastertrade_operator.render.context import Manifest, Release, uses_label


def build_default_deny(release: Release) -> Manifest:
    """No ingress to any pod of the release unless a policy below admits it."""
    name = f"{release.fullname}-default-deny-ingress"
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": release.metadata(name, release.labels()),
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/instance": release.name}},
            "policyTypes": ["Ingress"],
        },
    }


def _ingress_rules(release: Release, key: str, workload: Workload) -> list[Manifest]:
    first_port = [{"port": workload.ports[0].name, "protocol": "TCP"}]
    rules: list[Manifest] = []
    if workload.exposed:
        rules.append({"ports": first_port})
    if workload.service is not None and workload.service.nodePorts:
        # NodePorts: traffic arrives from the node (kube-proxy rewrites the source)
        node_ports = sorted(workload.service.nodePorts)
        rules.append({"ports": [{"port": name, "protocol": "TCP"} for name in node_ports]})
    rules.append(
        {
            "from": [{"podSelector": {"matchLabels": {uses_label(workload.name): "true"}}}],
            "ports": [{"port": port.name, "protocol": "TCP"} for port in workload.ports],
        }
    )
    prometheus = release.values.workloads.get("prometheus")
    if workload.metrics and prometheus is not None and prometheus.enabled and key != "prometheus":
        scraper = {"matchLabels": release.selector_labels(prometheus.name)}
        rules.append({"from": [{"podSelector": scraper}], "ports": first_port})
    return rules


def build_network_policy(release: Release, key: str, workload: Workload) -> Manifest:
    labels = release.workload_labels(workload.name, workload.component)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": release.metadata(release.workload_name(workload), labels),
        "spec": {
            "podSelector": {"matchLabels": release.selector_labels(workload.name)},
            "policyTypes": ["Ingress"],
            "ingress": _ingress_rules(release, key, workload),
        },
    }


def build_network_policies(release: Release) -> list[Manifest]:
    if not release.values.networkPolicy.enabled:
        return []
    policies = [build_default_deny(release)]
    policies += [build_network_policy(release, k, w) for k, w in release.enabled_workloads()]
    return policies
