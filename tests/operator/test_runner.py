"""`mastertrade-operator run` wiring, without a cluster: what kopf is started with, the metrics
server, and the boundaries that keep the operator testable (only kube.py talks to the API;
render/ and status/ are pure)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import kopf
import pytest

import mastertrade_operator
from mastertrade_operator import runner
from mastertrade_operator.reconcile import FINALIZER, Timing
from mastertrade_operator.render.helm import find_helm
from mastertrade_operator.runner import Options, build_operator
from tests.helm import helm_binary

PACKAGE = Path(mastertrade_operator.__file__).parent


def test_run_starts_kopf_with_liveness_peering_and_metrics(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started: dict[str, Any] = {}
    monkeypatch.setattr(kopf, "run", lambda **kwargs: started.update(kwargs))
    monkeypatch.setattr(
        runner, "start_http_server", lambda port, registry: started.update(metrics=port)
    )
    runner.run(Options(clusterwide=True, priority=7, metrics_port=9191))
    assert started["clusterwide"] is True and started["namespaces"] == []
    assert (started["peering_name"], started["priority"]) == ("mastertrade-operator", 7)
    assert started["standalone"] is False
    assert started["liveness_endpoint"] == "http://0.0.0.0:8080/healthz"
    assert started["metrics"] == 9191
    assert started["memo"].runtime.metrics.registry is not None
    settings: kopf.OperatorSettings = started["settings"]
    assert settings.persistence.finalizer == FINALIZER


def test_standalone_runs_without_peering(monkeypatch: pytest.MonkeyPatch) -> None:
    started: dict[str, Any] = {}
    monkeypatch.setattr(kopf, "run", lambda **kwargs: started.update(kwargs))
    runner.run(Options(namespaces=["trading"], standalone=True, metrics_port=0, helm=helm_binary()))
    assert started["standalone"] is True and started["peering_name"] is None
    assert started["namespaces"] == ["trading"]


def test_kopf_keeps_its_state_out_of_the_status() -> None:
    settings = build_operator(Timing(), find_helm(helm_binary())).settings
    assert isinstance(settings.persistence.progress_storage, kopf.AnnotationsProgressStorage)
    assert isinstance(settings.persistence.diffbase_storage, kopf.AnnotationsDiffBaseStorage)


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("package", ["render", "status", "model"])
def test_the_pure_packages_do_no_io(package: str) -> None:
    for path in sorted((PACKAGE / package).glob("*.py")):
        found = imports_of(path)
        assert not {"kopf", "aiohttp", "mastertrade_operator.kube"} & found, path.name


def test_only_kube_opens_connections() -> None:
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name != "kube.py":
            assert "ClientSession" not in path.read_text(), path.relative_to(PACKAGE)
