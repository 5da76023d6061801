"""The chart lints and renders with every values profile, into objects valid for Kubernetes 1.35."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.chart.conftest import VALUES_PROFILES
from tests.helm import CHART, REPO, Manifest, run_helm
from tests.operator.crdcheck import cel_failures, schema_errors, version_schema

KUBERNETES_VERSION = "1.35.0"


@pytest.mark.parametrize("values_file", VALUES_PROFILES, ids=lambda p: Path(p).name)
def test_helm_lint_strict(values_file: Path) -> None:
    result = run_helm("lint", "--strict", str(CHART), "--values", str(values_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


CLUSTER_SCOPED = {"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}
CRD = yaml.safe_load((REPO / "manifests" / "crd" / "mastertradedeployments.yaml").read_text())


def validation_problem(manifest: Manifest) -> str | None:
    """Kubernetes' own schema, or for a MasterTradeDeployment the CRD's."""
    try:
        if manifest["kind"] == "MasterTradeDeployment":
            errors = schema_errors(CRD, manifest) + cel_failures(version_schema(CRD), manifest)
            return "; ".join(errors) or None
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return f"{manifest['kind']}/{manifest['metadata']['name']}: {error.message}"
    return None


def test_every_object_is_valid_kubernetes(profile_render: list[Manifest]) -> None:
    problems = [validation_problem(manifest) for manifest in profile_render]
    assert [problem for problem in problems if problem] == []


def test_every_object_is_namespaced_and_labelled(profile_render: list[Manifest]) -> None:
    for manifest in profile_render:
        metadata = manifest["metadata"]
        if manifest["kind"] not in CLUSTER_SCOPED:
            assert metadata["namespace"] == "trading", metadata["name"]
        labels = metadata["labels"]
        assert labels["app.kubernetes.io/instance"] == "mastertrade"
        assert labels["app.kubernetes.io/name"] == "mastertrade"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"


def test_names_are_unique(profile_render: list[Manifest]) -> None:
    keys = [(m["kind"], m["metadata"]["name"]) for m in profile_render]
    assert len(keys) == len(set(keys))


def test_rendering_is_deterministic_and_renders_no_password() -> None:
    """`helm template` twice (as Argo CD and Flux render) gives the same objects, and none of
    them holds a password: the credentials are made once, inside the cluster."""
    args = ["template", "mastertrade", str(CHART), "--namespace", "trading"]
    first, second = run_helm(*args), run_helm(*args)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    objects = [o for o in yaml.safe_load_all(first.stdout) if o]
    assert [o for o in objects if o["kind"] == "Secret"] == []


def test_output_has_no_blank_lines(profile_text: str) -> None:
    """Whitespace left by template directives shows in `helm template` and in diffs."""
    blank = [n for n, line in enumerate(profile_text.splitlines(), 1) if not line.strip()]
    assert blank == []
