"""The kind, skaffold, chart-testing and GitHub Actions files: schema-valid, typed, consistent.

None of them can run here (no container engine, no cluster, no GitHub), so they are checked
against their schemas (skaffold's own, GitHub's workflow schema through check-jsonschema, a typed
model of kind's v1alpha4 Cluster) and against the repository: every file, script, Makefile target,
Service and port they name exists.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yaml"))
SKAFFOLD_SCHEMA = Path(__file__).parent / "schemas" / "skaffold-v4beta14.json"
CHART = REPO / "charts" / "mastertrade"
RELEASE_PREFIX = "mastertrade-"
# The seed's host ports of the entry points (monitoring UI, Grafana, Prometheus, RabbitMQ
# management, API gateway)
SEED_HOST_PORTS = {3000, 3001, 9090, 15672, 8080}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PortMapping(Strict):
    containerPort: int = Field(ge=1, le=65535)  # noqa: N815 - kind's field names
    hostPort: int = Field(ge=1, le=65535)  # noqa: N815
    listenAddress: str = "0.0.0.0"  # noqa: N815
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"


class Node(Strict):
    role: Literal["control-plane", "worker"]
    image: str | None = None
    extraPortMappings: list[PortMapping] = []  # noqa: N815


class Cluster(Strict):
    """The fields of kind's v1alpha4 Cluster that kind-config.yaml uses (kind rejects others)."""

    kind: Literal["Cluster"]
    apiVersion: Literal["kind.x-k8s.io/v1alpha4"]  # noqa: N815
    name: str | None = None
    nodes: list[Node] = Field(min_length=1)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def check_jsonschema(*args: str) -> subprocess.CompletedProcess[str]:
    tool = Path(sys.executable).parent / "check-jsonschema"
    return subprocess.run(
        [str(tool), *args], capture_output=True, text=True, check=False, timeout=120
    )


def kind_cluster() -> Cluster:
    return Cluster.model_validate(load_yaml(REPO / "kind-config.yaml"))


def kind_port_map() -> dict[int, int]:
    """host port -> nodePort, as kind-config.yaml publishes them."""
    mappings = [m for node in kind_cluster().nodes for m in node.extraPortMappings]
    return {m.hostPort: m.containerPort for m in mappings}


def kind_up_entry_points() -> list[tuple[str, int, int, int]]:
    """(workload, Service port, host port, nodePort) from scripts/kind-up.sh's ENTRY_POINTS."""
    text = (REPO / "scripts" / "kind-up.sh").read_text()
    block = re.search(r"^ENTRY_POINTS=\((.*?)^\)", text, re.MULTILINE | re.DOTALL)
    assert block is not None
    rows = re.findall(r'"([a-z-]+) (\d+) (\d+) (\d+) \S+"', block.group(1))
    return [(name, int(port), int(host), int(node)) for name, port, host, node in rows]


def catalog_ports() -> dict[str, set[int]]:
    """Kubernetes workload name -> its Service ports, from the workload catalog."""
    workloads = load_yaml(CHART / "values.yaml")["workloads"]
    return {w["name"]: {p["port"] for p in w["ports"]} for w in workloads.values()}


# kind


def test_kind_config_is_a_valid_v1alpha4_cluster() -> None:
    cluster = kind_cluster()
    assert [node.role for node in cluster.nodes].count("control-plane") == 1
    assert cluster.name == "mastertrade"


def test_kind_publishes_the_seed_host_ports_on_localhost_to_node_ports() -> None:
    mappings = [m for node in kind_cluster().nodes for m in node.extraPortMappings]
    assert {m.hostPort for m in mappings} == SEED_HOST_PORTS
    assert len(mappings) == len(SEED_HOST_PORTS)
    for mapping in mappings:
        assert ipaddress.ip_address(mapping.listenAddress).is_loopback
        assert 30000 <= mapping.containerPort <= 32767, "kind maps host ports to NodePorts"
    assert len({m.containerPort for m in mappings}) == len(mappings)


def test_kind_up_entry_points_match_kind_config_and_the_catalog() -> None:
    entries = kind_up_entry_points()
    ports = catalog_ports()
    assert {host: node for _, _, host, node in entries} == kind_port_map()
    for name, port, _, _ in entries:
        assert port in ports[name], f"{name} has no port {port} in the catalog"


# skaffold


def test_skaffold_config_is_valid_against_skaffold_schema() -> None:
    done = check_jsonschema("--schemafile", str(SKAFFOLD_SCHEMA), str(REPO / "skaffold.yaml"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_skaffold_builds_both_images_from_their_dockerfiles() -> None:
    config = load_yaml(REPO / "skaffold.yaml")
    artifacts = {a["image"]: a for a in config["build"]["artifacts"]}
    assert set(artifacts) == {"mastertrade", "mastertrade-operator"}
    for artifact in artifacts.values():
        assert (REPO / artifact["context"] / artifact["docker"]["dockerfile"]).is_file()
    assert config["build"]["local"]["push"] is False, "kind loads local images; nothing pushed"
    assert config["deploy"]["kubeContext"] == f"kind-{kind_cluster().name}"


def test_skaffold_helm_release_uses_the_chart_values_kind_and_the_built_image() -> None:
    (release,) = load_yaml(REPO / "skaffold.yaml")["deploy"]["helm"]["releases"]
    assert (REPO / release["chartPath"] / "Chart.yaml").is_file()
    assert [REPO / f for f in release["valuesFiles"]] == [CHART / "values-kind.yaml"]
    assert release["setValueTemplates"] == {
        "image.repository": "{{.IMAGE_REPO_mastertrade}}",
        "image.tag": "{{.IMAGE_TAG_mastertrade}}",
    }
    kind_values = load_yaml(CHART / "values-kind.yaml")
    assert kind_values["image"]["registry"] == "", "the repository template carries the registry"


def test_skaffold_profiles_chart_and_operator_name_files_that_exist() -> None:
    config = load_yaml(REPO / "skaffold.yaml")
    profiles = {p["name"]: p for p in config["profiles"]}
    assert set(profiles) == {"chart", "operator"}
    operator = profiles["operator"]
    for path in operator["manifests"]["kustomize"]["paths"]:
        assert (REPO / path / "kustomization.yaml").is_file()
    for path in operator["manifests"]["rawYaml"]:
        assert load_yaml(REPO / path)["kind"] == "MasterTradeDeployment"
    hooks = [h["host"]["command"] for h in operator["deploy"]["kubectl"]["hooks"]["before"]]
    assert all(command[0] == "kubectl" for command in hooks)
    applied, waited = hooks
    files = [REPO / arg for flag, arg in itertools.pairwise(applied) if flag == "-f"]
    assert set(waited) >= {f"crd/{name}" for name in crd_names(files)}
    assert {"op": "remove", "path": "/deploy/helm"} in operator["patches"]


def test_skaffold_port_forwards_match_kind_up_entry_points() -> None:
    forwards = load_yaml(REPO / "skaffold.yaml")["portForward"]
    expected = {(f"{RELEASE_PREFIX}{name}", port, host) for name, port, host, _ in
                kind_up_entry_points()}  # fmt: skip
    assert {(f["resourceName"], f["port"], f["localPort"]) for f in forwards} == expected
    assert {f["address"] for f in forwards} == {"127.0.0.1"}


def crd_names(files: list[Path]) -> set[str]:
    """Names of the CustomResourceDefinitions in the files (which must exist)."""
    names = set()
    for path in files:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] == "CustomResourceDefinition":
                names.add(doc["metadata"]["name"])
    assert names
    return names


def test_operator_path_applies_every_crd_of_manifests_before_the_rest() -> None:
    """Objects of a kind that the same apply defines are refused: kind-up applies CRDs first."""
    every_crd = crd_names(sorted((REPO / "manifests").rglob("*.yaml")))
    script = (REPO / "scripts" / "kind-up.sh").read_text()
    files = [REPO / f for f in re.findall(r'-f "\$REPO/([\w/.-]+\.yaml)"', script)]
    assert crd_names(files) == every_crd
    for name in every_crd:
        assert f"crd/{name}" in script


# deploy/kind (the operator path's overlay)


def test_operator_overlay_points_at_manifests_and_the_sample_namespace() -> None:
    overlay = load_yaml(REPO / "deploy" / "kind" / "kustomization.yaml")
    assert "../../manifests" in overlay["resources"]
    namespace = load_yaml(REPO / "deploy" / "kind" / "namespace.yaml")
    sample = load_yaml(REPO / "manifests" / "samples" / "kind-small.yaml")
    assert namespace["metadata"]["name"] == sample["metadata"]["namespace"]


def test_kind_scripts_use_the_sample_resource_namespace_and_name() -> None:
    """Both paths give the same object names: release name = resource name, same namespace."""
    lib = (REPO / "scripts" / "kind-lib.sh").read_text()
    settings = dict(re.findall(r"^([A-Z_]+)=(\S+)$", lib, re.MULTILINE))
    sample = load_yaml(REPO / "manifests" / "samples" / "kind-small.yaml")
    assert settings["NAMESPACE"] == sample["metadata"]["namespace"]
    assert settings["RELEASE"] == sample["metadata"]["name"] == RELEASE_PREFIX.rstrip("-")
    assert sample["spec"]["image"]["tag"] == settings["IMAGE_TAG"]
    assert load_yaml(CHART / "values-kind.yaml")["image"]["tag"] == settings["IMAGE_TAG"]


def test_operator_overlay_builds_with_the_local_operator_image() -> None:
    kubectl = REPO / ".tools" / "bin" / "kubectl"
    found = str(kubectl) if kubectl.exists() else shutil.which("kubectl")
    assert found is not None, "kubectl not found: run `make tools`"
    done = subprocess.run(
        [found, "kustomize", str(REPO / "deploy" / "kind")],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    objects = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    deployments = [o for o in objects if o["kind"] == "Deployment"]
    assert deployments, "manifests/ has no operator Deployment"
    for deployment in deployments:
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["image"] == "mastertrade-operator:dev"
        assert container["imagePullPolicy"] == "IfNotPresent"


# GitHub Actions


def test_every_workflow_is_valid_against_the_github_workflow_schema() -> None:
    assert {p.name for p in WORKFLOWS} >= {"ci.yaml", "chart.yaml", "e2e-kind.yaml"}
    done = check_jsonschema(
        "--builtin-schema", "vendor.github-workflows", *(str(p) for p in WORKFLOWS)
    )
    assert done.returncode == 0, done.stdout + done.stderr


def run_commands() -> list[str]:
    commands = []
    for path in WORKFLOWS:
        for job in load_yaml(path)["jobs"].values():
            commands += [step["run"] for step in job["steps"] if "run" in step]
    return commands


def makefile_targets() -> set[str]:
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^([a-z][a-z-]*):", text, re.MULTILINE))


def test_workflow_commands_call_make_targets_and_scripts_that_exist() -> None:
    targets = makefile_targets()
    called_targets: set[str] = set()
    for command in run_commands():
        for match in re.finditer(r"^\s*make ((?:[a-z][a-z-]* ?)+)", command, re.MULTILINE):
            called_targets |= set(match.group(1).split())
        for script in re.findall(r"\b(scripts/[\w.-]+\.sh)\b", command):
            path = REPO / script
            assert path.is_file(), f"{script} does not exist"
            assert path.stat().st_mode & 0o111, f"{script} is not executable"
    assert called_targets, "the workflows should run the project's own Makefile targets"
    assert called_targets <= targets, f"unknown make targets: {called_targets - targets}"
    assert {"test", "lint", "kind-up", "tools"} <= called_targets


def test_workflow_files_they_name_exist() -> None:
    for path in WORKFLOWS:
        for job in load_yaml(path)["jobs"].values():
            for step in job["steps"]:
                config = step.get("with", {}).get("config")
                if config:
                    assert (REPO / config).is_file(), f"{path.name}: {config} does not exist"


def test_e2e_covers_two_kubernetes_versions_and_both_paths_with_pinned_node_images() -> None:
    job = load_yaml(REPO / ".github" / "workflows" / "e2e-kind.yaml")["jobs"]["e2e"]
    matrix = job["strategy"]["matrix"]
    assert set(matrix["path"]) == {"helm", "operator"}
    assert len(matrix["kubernetes"]) >= 2
    images = {entry["kubernetes"]: entry["node_image"] for entry in matrix["include"]}
    assert set(images) == set(matrix["kubernetes"])
    for version, image in images.items():
        assert re.fullmatch(rf"kindest/node:v{re.escape(version)}\.\d+@sha256:[0-9a-f]{{64}}",
                            image), image  # fmt: skip
    kind_step = next(s for s in job["steps"] if s.get("uses", "").startswith("helm/kind-action"))
    assert kind_step["with"]["config"] == "kind-config.yaml"
    assert kind_step["with"]["cluster_name"] == "${{ env.KIND_CLUSTER_NAME }}"
    upload = next(
        s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact")
    )
    assert upload["if"] == "failure()"
    steps = " ".join(run_commands())
    for step in ("helm-test", "scale", "upgrade", "delete"):
        assert f"scripts/kind-e2e.sh {step}" in steps


# chart-testing


def test_ct_config_names_the_charts_and_their_ci_scenarios() -> None:
    config = load_yaml(REPO / "ct.yaml")
    for directory in config["chart-dirs"]:
        assert (REPO / directory).is_dir()
    for chart in config["charts"]:
        assert (REPO / chart / "Chart.yaml").is_file()
        assert sorted((REPO / chart / "ci").glob("*-values.yaml")), f"{chart} has no ci scenarios"
    assert (REPO / config["lint-conf"]).is_file()


@pytest.mark.chart
def test_values_kind_node_ports_are_the_ones_kind_config_maps() -> None:
    """values-kind.yaml's NodePorts are exactly the ones kind-config.yaml maps to host ports."""
    from tests.helm import render  # noqa: PLC0415 - only this test needs helm

    services = {
        o["metadata"]["name"]: o
        for o in render([CHART / "values-kind.yaml"], namespace="mastertrade")
        if o["kind"] == "Service"
    }
    node_ports = {}
    for name, port, host, node in kind_up_entry_points():
        spec = services[f"{RELEASE_PREFIX}{name}"]["spec"]
        if spec.get("type") == "NodePort":
            (entry,) = [p for p in spec["ports"] if p["port"] == port]
            node_ports[name] = (entry.get("nodePort"), node, host)
    for name, (rendered, mapped, host) in node_ports.items():
        assert rendered == mapped, f"{name}: nodePort {rendered}, kind maps {host} to {mapped}"
    assert len(node_ports) == len(kind_up_entry_points()), "every entry point is a NodePort"
