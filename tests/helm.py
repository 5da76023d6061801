"""Runs the real helm binary on the chart and returns what it rendered, as Python objects."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mastertrade_operator.reconcile.credentials import credentials_secret_name
from mastertrade_operator.render import Renderer
from mastertrade_operator.render.helm import find_helm
from mastertrade_operator.resource import parse_resource

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "mastertrade"
TOOLS_BIN = REPO / ".tools" / "bin"

Manifest = dict[str, Any]


def helm_binary() -> str:
    """The project's helm (make tools), else one on PATH; a clear error when there is none."""
    local = TOOLS_BIN / "helm"
    if local.exists():
        return str(local)
    found = shutil.which("helm")
    if found is None:
        raise RuntimeError("helm not found: run `make tools` to install it into .tools/bin")
    return found


@dataclass
class HelmResult:
    returncode: int
    stdout: str
    stderr: str


def run_helm(*args: str, cwd: Path = REPO) -> HelmResult:
    env = {
        **os.environ,
        "HELM_CACHE_HOME": "/tmp/mastertrade-helm/cache",
        "HELM_CONFIG_HOME": "/tmp/mastertrade-helm/config",
        "HELM_DATA_HOME": "/tmp/mastertrade-helm/data",
    }
    done = subprocess.run(
        [helm_binary(), *args], capture_output=True, text=True, cwd=cwd, env=env, check=False
    )
    return HelmResult(done.returncode, done.stdout, done.stderr)


def template_args(
    values_files: list[Path], sets: list[str], release: str, namespace: str
) -> list[str]:
    args = ["template", release, str(CHART), "--namespace", namespace]
    for values_file in values_files:
        args += ["--values", str(values_file)]
    for assignment in sets:
        args += ["--set", assignment]
    return args


def render(
    values_files: list[Path] | None = None,
    sets: list[str] | None = None,
    *,
    values: dict[str, Any] | None = None,
    release: str = "mastertrade",
    namespace: str = "trading",
    hooks: bool = True,
    api_versions: list[str] | None = None,
) -> list[Manifest]:
    """`helm template` with values files, `--set`s and a values dict (typed, unlike --set);
    `api_versions` are APIs the cluster is said to serve (`.Capabilities.APIVersions`)."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as extra:
        # JSON is YAML that helm cannot read differently (PyYAML leaves `y` or `1e3` unquoted)
        json.dump(values or {}, extra)
        extra.flush()
        args = template_args(
            [*(values_files or []), Path(extra.name)], sets or [], release, namespace
        )
        if not hooks:
            args.append("--no-hooks")
        for api in api_versions or []:
            args += ["--api-versions", api]
        result = run_helm(*args)
    if result.returncode != 0:
        raise RenderError(result.stderr)
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def render_failure(values_files: list[Path] | None = None, sets: list[str] | None = None) -> str:
    """helm's error message for values that must be rejected; fails if helm accepted them."""
    result = run_helm(*template_args(values_files or [], sets or [], "mastertrade", "trading"))
    if result.returncode == 0:
        raise AssertionError("helm accepted values that should have been rejected")
    return result.stderr


class RenderError(RuntimeError):
    pass


def by_kind_and_name(manifests: list[Manifest]) -> dict[tuple[str, str], Manifest]:
    return {(m["kind"], m["metadata"]["name"]): m for m in manifests}


def of_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def operator_render(
    spec: dict[str, Any] | None = None, release: str = "mt", namespace: str = "trading"
) -> list[Manifest]:
    """What the operator applies for a resource with this spec (the bundled chart by helm),
    through the operator's own renderer."""
    resource = parse_resource(
        {
            "apiVersion": "mastertrade.io/v1alpha1",
            "kind": "MasterTradeDeployment",
            "metadata": {"name": release, "namespace": namespace},
            "spec": spec or {},
        }
    )
    return Renderer(find_helm(helm_binary())).render_now(
        resource, credentials_secret_name(resource)
    )
