"""Parity: the operator's render equals `helm template` with the same values, object for object.

After normalising only what names the tool (the `helm.sh/chart` and `managed-by` labels, Helm's
hook and resource-policy annotations), the `helm test` pods and the Secret's random passwords.
The config checksum annotations are compared as they are: they prove the config files and the
environment are the same text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mastertrade_operator.model import load_values
from mastertrade_operator.model.resource import parse_resource
from mastertrade_operator.render import render_all
from tests.helm import CHART, REPO, render
from tests.operator.parity import differences
from tests.operator.specs import EXTRA_SPECS, random_spec

pytestmark = pytest.mark.chart

VALUES_FILES = [*sorted((CHART / "ci").glob("*-values.yaml")), CHART / "values-kind.yaml"]
SAMPLES = sorted((REPO / "manifests" / "samples").glob("*.yaml"))


def assert_parity(
    spec: dict[str, Any], release: str, namespace: str, values_file: Path | None = None
) -> None:
    """helm reads the values file itself when there is one, else `spec` written out as YAML.

    The chart renders the workloads itself (operator mode off): that is what the operator must
    produce from the same values."""
    workloads_mode = ["operator.enabled=false"]
    if values_file is None:
        helm = render(values=spec, sets=workloads_mode, release=release, namespace=namespace)
    else:
        helm = render([values_file], workloads_mode, release=release, namespace=namespace)
    python = render_all(load_values(spec), release, namespace)
    report = differences(helm, python)
    assert report == "", f"operator render differs from helm template:\n{report}"


@pytest.mark.parametrize("path", VALUES_FILES, ids=lambda path: path.name)
def test_values_profiles_render_as_helm_does(path: Path) -> None:
    assert_parity(yaml.safe_load(path.read_text()) or {}, "mastertrade", "trading", path)


@pytest.mark.parametrize("path", SAMPLES, ids=lambda path: path.name)
def test_samples_render_as_helm_does(path: Path) -> None:
    resource = yaml.safe_load(path.read_text())
    metadata = resource["metadata"]
    assert_parity(resource.get("spec") or {}, metadata["name"], metadata["namespace"])


@pytest.mark.parametrize(("release", "spec"), EXTRA_SPECS.values(), ids=list(EXTRA_SPECS))
def test_specs_render_as_helm_does(release: str, spec: dict[str, Any]) -> None:
    assert_parity(spec, release, "desk-7")


@pytest.mark.parametrize("seed", range(12))
def test_random_specs_render_as_helm_does(seed: int) -> None:
    assert_parity(random_spec(seed), f"seed-{seed}", "fuzz")


def test_samples_exist() -> None:
    assert len(SAMPLES) >= 3


def test_operator_mode_installs_what_the_chart_would() -> None:
    """The one switch: the chart's MasterTradeDeployment, rendered by the operator, is exactly
    what the chart renders with operator mode off."""
    values_file = CHART / "ci" / "operator-values.yaml"
    chart_objects = render([values_file], release="desk", namespace="trading")
    (resource,) = [m for m in chart_objects if m["kind"] == "MasterTradeDeployment"]
    parsed = parse_resource(resource)
    python = render_all(parsed.values, parsed.name, parsed.namespace)
    helm = render([values_file], ["operator.enabled=false"], release="desk", namespace="trading")
    report = differences(helm, python)
    assert report == "", f"operator mode differs from the chart's own render:\n{report}"
    assert not [m for m in chart_objects if m["kind"] in {"StatefulSet", "ConfigMap", "Job"}]
