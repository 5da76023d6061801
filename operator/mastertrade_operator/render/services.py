"""A Service per workload (cluster DNS replaces the Compose network); StatefulSets also get
their governing headless Service."""

from __future__ import annotations

from mastertrade_operator.model.values import Workload, WorkloadKind
from mastertrade_operator.render.context import Manifest, Release


def build_service(release: Release, workload: Workload, *, headless: bool = False) -> Manifest:
    """The workload's Service (ClusterIP unless its `service` says NodePort), or its headless
    twin."""
    name = release.workload_name(workload) + ("-headless" if headless else "")
    exposure = None if headless else workload.service
    spec: Manifest = {"type": exposure.type if exposure else "ClusterIP"}
    if headless:
        spec.update({"clusterIP": "None", "publishNotReadyAddresses": True})
    spec["selector"] = release.selector_labels(workload.name)
    node_ports = exposure.nodePorts if exposure else {}
    spec["ports"] = [
        {"name": port.name, "port": port.port, "targetPort": port.name, "protocol": "TCP"}
        | ({"nodePort": node_ports[port.name]} if port.name in node_ports else {})
        for port in workload.ports
    ]
    labels = release.workload_labels(workload.name, workload.component)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": release.metadata(name, labels),
        "spec": spec,
    }


def build_services(release: Release) -> list[Manifest]:
    services: list[Manifest] = []
    for _, workload in release.enabled_workloads():
        services.append(build_service(release, workload))
        if workload.kind == WorkloadKind.STATEFUL_SET:
            services.append(build_service(release, workload, headless=True))
    return services
