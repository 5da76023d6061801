"""Writes every generated artifact of the project from its one source.

`python -m mastertrade_operator.generate` (or `make generate`) rewrites them; the unit tests
regenerate them in memory and fail when a committed file is stale.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

from mastertrade.core.topology import definitions_document
from mastertrade_operator.chartdocs import render_chart_readme
from mastertrade_operator.chartoperator import (
    OPERATOR_TEMPLATES,
    render_crd_template,
    render_role_template,
)
from mastertrade_operator.crd import CRD_PATH, render_crd_yaml
from mastertrade_operator.model import CHART_DIR, load_default_values
from mastertrade_operator.model.schema import build_values_schema


def render_values_schema() -> str:
    catalog = load_default_values()
    return json.dumps(build_values_schema(list(catalog.workloads)), indent=2) + "\n"


def render_rabbitmq_definitions() -> str:
    return json.dumps(definitions_document(), indent=2) + "\n"


KIND_SAMPLE = CRD_PATH.parents[1] / "samples" / "kind-small.yaml"
KIND_SAMPLE_HEADER = """\
# Generated from charts/mastertrade/values-kind.yaml by `make generate`; do not edit.
# A laptop profile on kind (4 CPUs, 8 GiB): the chart's kind sizes as a MasterTradeDeployment,
# with MasterTrade's image built locally and loaded into the cluster (`kind load docker-image`).
"""


def render_kind_sample() -> str:
    """The kind profile as a custom resource: a values file is a spec."""
    spec = yaml.safe_load((CHART_DIR / "values-kind.yaml").read_text())
    resource = {
        "apiVersion": "mastertrade.io/v1alpha1",
        "kind": "MasterTradeDeployment",
        "metadata": {"name": "mastertrade", "namespace": "mastertrade"},
        "spec": spec,
    }
    return KIND_SAMPLE_HEADER + yaml.safe_dump(resource, sort_keys=False, width=100)


GENERATED: dict[Path, Callable[[], str]] = {
    CHART_DIR / "values.schema.json": render_values_schema,
    CHART_DIR / "files/rabbitmq/definitions.json": render_rabbitmq_definitions,
    CHART_DIR / "README.md": render_chart_readme,
    CRD_PATH: render_crd_yaml,
    KIND_SAMPLE: render_kind_sample,
    OPERATOR_TEMPLATES / "crd.yaml": render_crd_template,
    OPERATOR_TEMPLATES / "role.yaml": render_role_template,
}


def stale_files() -> list[Path]:
    """Generated files whose committed content differs from what the sources give now."""
    return [
        path
        for path, render in GENERATED.items()
        if not path.exists() or path.read_text() != render()
    ]


def main() -> int:
    for path, render in GENERATED.items():
        path.write_text(render())
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
