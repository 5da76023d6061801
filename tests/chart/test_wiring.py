"""Wiring follows the catalog: move every infrastructure port, and every URL, policy, scrape
target and backup setting that names it moves too; the services a workload calls are those its
catalog entry's `serviceUrls` names, at those services' Service ports."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from mastertrade_model import load_default_values
from mastertrade_model.values import Role
from tests.helm import CHART, Manifest, by_kind_and_name, of_kind, render

pytestmark = pytest.mark.chart

MOVED_PORTS = {Role.DATABASE: 6543, Role.RABBITMQ: 5673, Role.REDIS: 6380, Role.METRICS: 9091}


def moved_values() -> dict[str, Any]:
    """Every provider's first port moved (and RabbitMQ's management port too)."""
    catalog = load_default_values()
    workloads: dict[str, Any] = {}
    for role, port in MOVED_PORTS.items():
        key = catalog.provider_key(role)
        ports = [p.model_dump(exclude_none=True) for p in catalog.workloads[key].ports]
        ports[0]["port"] = port
        for extra in ports[1:]:
            extra["port"] += 1
        workloads[key] = {"ports": ports}
    return {"workloads": workloads}


@pytest.fixture(scope="module")
def objects() -> list[Manifest]:
    return render(values=moved_values())


def service_ports(objects: list[Manifest]) -> dict[str, dict[str, int]]:
    """Service name -> port name -> port."""
    return {
        s["metadata"]["name"]: {p["name"]: p["port"] for p in s["spec"]["ports"]}
        for s in of_kind(objects, "Service")
    }


def pod_specs(objects: list[Manifest]) -> list[dict[str, Any]]:
    specs = []
    for manifest in objects:
        spec = manifest.get("spec", {})
        template = spec.get("template") or spec.get("jobTemplate", {}).get("spec", {}).get(
            "template"
        )
        if template:
            specs.append(template["spec"])
    return specs


def env_values(objects: list[Manifest]) -> list[tuple[str, str]]:
    """(name, value) of every literal env entry and ConfigMap setting."""
    found = [
        (entry["name"], entry["value"])
        for spec in pod_specs(objects)
        for container in spec["containers"]
        for entry in container.get("env", [])
        if "value" in entry
    ]
    for config in of_kind(objects, "ConfigMap"):
        found += [(k, v) for k, v in (config.get("data") or {}).items() if k.endswith("_URL")]
    return found


def test_every_connection_url_names_a_service_port(objects: list[Manifest]) -> None:
    ports = service_ports(objects)
    urls = [(n, v) for n, v in env_values(objects) if n.endswith("_URL")]
    assert {n for n, _ in urls} >= {"DATABASE_URL", "RABBITMQ_URL", "REDIS_URL", "API_GATEWAY_URL"}
    for name, value in urls:
        parts = urlsplit(value.replace("$(", "").replace(")", ""))
        assert parts.hostname in ports, f"{name}={value}: no Service {parts.hostname}"
        assert parts.port in ports[parts.hostname].values(), f"{name}={value}: no such port"


def test_moved_ports_reach_the_urls_backups_and_grafana(objects: list[Manifest]) -> None:
    values = dict(env_values(objects))
    assert urlsplit(values["DATABASE_URL"].replace("$(", "").replace(")", "")).port == 6543
    assert urlsplit(values["RABBITMQ_URL"].replace("$(", "").replace(")", "")).port == 5673
    assert urlsplit(values["REDIS_URL"]).port == 6380
    assert values["PGPORT"] == "6543"
    assert urlsplit(values["RABBITMQ_MANAGEMENT_URL"]).port == 15673
    grafana = next(c for c in of_kind(objects, "ConfigMap") if "datasources.yaml" in c["data"])
    datasource = yaml.safe_load(grafana["data"]["datasources.yaml"])["datasources"][0]
    assert urlsplit(datasource["url"]).port == 9091


def test_every_scrape_target_is_a_declared_container_port(objects: list[Manifest]) -> None:
    """Prometheus keeps, of each workload's pods, the container port its job names: with ports
    moved, that port must still be declared by the pods the job selects."""
    config = next(c for c in of_kind(objects, "ConfigMap") if "prometheus.yml" in c["data"])
    jobs = yaml.safe_load(config["data"]["prometheus.yml"])["scrape_configs"]
    pods = {
        labels["app.kubernetes.io/component"]: spec
        for workload in of_kind(objects, "Deployment") + of_kind(objects, "StatefulSet")
        for labels, spec in [
            (
                workload["spec"]["template"]["metadata"]["labels"],
                workload["spec"]["template"]["spec"],
            )
        ]
    }
    checked = 0
    for job in jobs:
        selector = job["kubernetes_sd_configs"][0]["selectors"][0]["label"]
        component = dict(term.split("=") for term in selector.split(","))[
            "app.kubernetes.io/component"
        ]
        if component not in pods:  # the operator, absent outside operator mode
            continue
        (keep,) = [r for r in job["relabel_configs"] if r.get("action") == "keep"]
        names = {p["name"] for c in pods[component]["containers"] for p in c["ports"]}
        assert keep["regex"] in names, job["job_name"]
        checked += 1
    assert checked >= 11


def test_policies_admit_ports_the_pods_declare(objects: list[Manifest]) -> None:
    """A NetworkPolicy names ports by name: each must be a container port of the pods it
    selects, so moving a number can never leave a policy behind."""
    named = by_kind_and_name(objects)
    for policy in of_kind(objects, "NetworkPolicy"):
        labels = policy["spec"]["podSelector"]["matchLabels"]
        component = labels.get("app.kubernetes.io/component")
        if component is None:
            continue
        workload = next(
            o
            for (kind, _), o in named.items()
            if kind in ("Deployment", "StatefulSet")
            and o["spec"]["selector"]["matchLabels"].get("app.kubernetes.io/component") == component
        )
        declared = {
            p["name"]
            for c in workload["spec"]["template"]["spec"]["containers"]
            for p in c["ports"]
        }
        for rule in policy["spec"]["ingress"]:
            for port in rule.get("ports", []):
                assert port["port"] in declared, (policy["metadata"]["name"], port)


def test_upstream_urls_are_the_catalogs_service_urls(objects: list[Manifest]) -> None:
    catalog = load_default_values()
    configs = {c["metadata"]["name"]: c["data"] for c in of_kind(objects, "ConfigMap")}
    for workload in catalog.workloads.values():
        data = configs.get(f"mastertrade-{workload.name}-env", {})
        for variable, target in workload.serviceUrls.items():
            host = urlsplit(data[variable]).hostname
            assert host == f"mastertrade-{catalog.workloads[target].name}"


TEMPLATE_FILES = sorted(
    [
        *(CHART / "templates").rglob("*.tpl"),
        *(CHART / "templates").rglob("*.yaml"),
        *(CHART / "files").rglob("*.y*ml"),
    ]
)


@pytest.mark.parametrize("path", TEMPLATE_FILES, ids=lambda p: str(p.relative_to(CHART)))
def test_no_template_names_a_workload_key(path: Path) -> None:
    """Templates find workloads through the catalog (`provides`, `dependsOn`, `serviceUrls`);
    a key written into a template would break when the catalog changes."""
    keys = "|".join(re.escape(key) for key in load_default_values().workloads)
    text = path.read_text()
    assert not re.search(rf"\.Values\.workloads\.({keys})\b", text)
    assert not re.search(rf'"target" "({keys})"', text)
