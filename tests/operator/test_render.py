"""The operator's render: the bundled chart through the real helm binary, plus the steps only an
operator adds. What must hold: it is the chart's own output (hooks and test pods aside), the
objects are valid Kubernetes objects the operator can find again, passwords are kept once made,
and a bad spec or a missing helm is a clear error."""

from __future__ import annotations

import asyncio
import io
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from mastertrade_operator.cli import main
from mastertrade_operator.render import Renderer
from mastertrade_operator.render.helm import HelmNotUsableError, RenderError, find_helm
from mastertrade_operator.render.objects import MANAGED_BY, MANAGED_BY_LABEL
from mastertrade_operator.resource import parse_resource
from tests.helm import REPO, by_kind_and_name, helm_binary, render

pytestmark = pytest.mark.chart

SAMPLES = sorted((REPO / "manifests" / "samples").glob("*.yaml"))
DEFAULT_SAMPLE = REPO / "manifests" / "samples" / "paper-default.yaml"


def resource_of(spec: dict[str, Any], name: str = "mt", namespace: str = "ns") -> Any:
    return parse_resource(
        {
            "apiVersion": "mastertrade.io/v1alpha1",
            "kind": "MasterTradeDeployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }
    )


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(find_helm(helm_binary()))


def test_make_render_and_the_operator_render_give_the_same_objects() -> None:
    """`make render` (helm template) and `mastertrade-operator render` are one render: the same
    objects, once hooks, test pods, helm's annotations and the managed-by label are set aside."""
    document = yaml.safe_load(DEFAULT_SAMPLE.read_text())
    out = io.StringIO()
    assert main(["render", "-f", str(DEFAULT_SAMPLE), "--helm", helm_binary()], stdout=out) == 0
    operator = by_kind_and_name([o for o in yaml.safe_load_all(out.getvalue()) if o])
    name, namespace = document["metadata"]["name"], document["metadata"]["namespace"]
    # the operator names its own credentials Secret to the chart, as a user may
    values = {"auth": {"existingSecret": f"{name}-credentials"}}
    chart = by_kind_and_name(render(values=values, release=name, namespace=namespace))
    chart = {k: o for k, o in chart.items() if "test" not in _hook(o)}
    assert set(operator) == set(chart)
    for key, manifest in chart.items():
        assert _comparable(operator[key]) == _comparable(manifest), key


def _hook(manifest: dict[str, Any]) -> str:
    return str((manifest["metadata"].get("annotations") or {}).get("helm.sh/hook", ""))


def _comparable(manifest: dict[str, Any]) -> str:
    """The object as YAML text without what names the tool that manages it."""
    meta = dict(manifest["metadata"])
    annotations = {
        key: value
        for key, value in (meta.pop("annotations", None) or {}).items()
        if not key.startswith("helm.sh/")
    }
    text = yaml.safe_dump({**manifest, "metadata": {**meta, "annotations": annotations}})
    for word in ("Helm", MANAGED_BY):
        text = text.replace(f"{MANAGED_BY_LABEL}: {word}", "")
    return text


def test_objects_carry_the_operator_label_and_no_helm_lifecycle(renderer: Renderer) -> None:
    objects = asyncio.run(renderer.render(resource_of({}), "mt-credentials"))
    for manifest in objects:
        meta = manifest["metadata"]
        assert meta["labels"][MANAGED_BY_LABEL] == MANAGED_BY
        assert meta["namespace"] == "ns"
        assert not any(key.startswith("helm.sh/hook") for key in meta.get("annotations") or {})
    assert not [o for o in objects if o["kind"] == "Pod"], "helm test pods are left out"
    assert {o["metadata"]["name"] for o in objects if o["kind"] == "Job"} == {
        "mt-mastertrade-migrate"
    }


def secret_references(objects: list[dict[str, Any]]) -> set[str]:
    """The Secrets every env entry of every pod template reads."""
    text = yaml.safe_dump(objects)
    return set(re.findall(r"secretKeyRef:\s*\n?\s*key: [\w-]+\s*\n\s*name: ([\w-]+)", text))


def test_no_password_is_rendered_and_pods_read_the_operators_secret(renderer: Renderer) -> None:
    objects = asyncio.run(renderer.render(resource_of({}), "mt-credentials"))
    assert [o for o in objects if o["kind"] == "Secret"] == []
    assert secret_references(objects) == {"mt-credentials"}
    renders = renderer.renders
    again = asyncio.run(renderer.render(resource_of({}), "mt-credentials"))
    assert again == objects and renderer.renders == renders, "a repeated render is cached"


def test_a_secret_named_in_the_spec_is_the_one_pods_read(renderer: Renderer) -> None:
    spec = {"auth": {"existingSecret": "mine"}}
    objects = asyncio.run(renderer.render(resource_of(spec), "mt-credentials"))
    assert secret_references(objects) == {"mine"}


def test_a_rule_of_the_chart_is_a_render_error_naming_the_value(renderer: Renderer) -> None:
    spec = {"settings": {"trading": {"TRADING_ENVIRONMENT": "live"}}}
    with pytest.raises(RenderError, match=r"apiKeys\.existingSecret"):
        asyncio.run(renderer.render(resource_of(spec), "mt-credentials"))


def test_helm_missing_or_not_helm_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(HelmNotUsableError, match="helm not found"):
        find_helm(str(tmp_path / "nothing"))
    fake = tmp_path / "helm"
    fake.write_text("#!/bin/sh\necho v2.17.0\n")
    fake.chmod(0o755)
    with pytest.raises(HelmNotUsableError, match=r"needs helm 3\.14 or newer"):
        find_helm(str(fake))


@pytest.mark.parametrize("path", SAMPLES, ids=lambda path: path.name)
def test_rendered_objects_are_valid_kubernetes_objects(renderer: Renderer, path: Path) -> None:
    resource = parse_resource(yaml.safe_load(path.read_text()))
    for manifest in asyncio.run(renderer.render(resource, f"{resource.name}-credentials")):
        kubernetes_validate.validate(manifest, "1.35.0", strict=True)
