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

from mastertrade_model import load_default_values
from mastertrade_model.catalog import SOURCE_CHART
from mastertrade_model.schema import build_values_schema
from mastertrade_model.settings import SETTING_GROUPS, plain_default
from mastertrade_model.topology import definitions_document
from mastertrade_operator.chartdocs import render_chart_readme
from mastertrade_operator.chartoperator import (
    CRD_SUBCHART_FILE,
    OPERATOR_TEMPLATES,
    render_crd_subchart_file,
    render_role_template,
)
from mastertrade_operator.crd import CRD_PATH, render_crd_yaml


def render_values_schema() -> str:
    catalog = load_default_values()
    return json.dumps(build_values_schema(list(catalog.workloads)), indent=2) + "\n"


SETTINGS_BEGIN = (
    "# >>> generated settings (make generate, from mastertrade_model.settings): do not edit\n"
)
SETTINGS_END = "# <<< generated settings\n"


def render_settings_block() -> str:
    """values.yaml's `settings:` block: every group's defaults, each documented."""
    lines = ["settings:"]
    for group, model in SETTING_GROUPS.items():
        lines.append(f"  {group}:")
        for info in model.model_fields.values():
            lines.append(f"    # -- {info.description}")
            lines.append(f"    {info.alias}: {yaml_scalar(plain_default(info.default))}")
    return "\n".join(lines) + "\n"


def yaml_scalar(value: object) -> str:
    """Strings quoted (so `03:00` is never read as a number), others as YAML writes them."""
    if isinstance(value, str):
        return json.dumps(value)
    return str(yaml.safe_dump(value)).removesuffix("\n...\n").strip()


def render_values_yaml() -> str:
    """values.yaml with its generated settings block brought up to date."""
    text = (SOURCE_CHART / "values.yaml").read_text()
    head, _, rest = text.partition(SETTINGS_BEGIN)
    _, _, tail = rest.partition(SETTINGS_END)
    return head + SETTINGS_BEGIN + render_settings_block() + SETTINGS_END + tail


SERVICES_README = SOURCE_CHART.parents[1] / "services" / "README.md"
TABLE_BEGIN = "<!-- generated from the workload catalog by `make generate`: do not edit -->\n"
TABLE_END = "<!-- end of generated table -->\n"


def render_services_table() -> str:
    """The services (workloads running MasterTrade's image) as the catalog describes them."""
    rows = [
        "| service (seed name) | Kubernetes name | port | needs | health |",
        "|---|---|---|---|---|",
    ]
    for workload in load_default_values().workloads.values():
        if workload.image is not None:
            continue
        check = workload.healthCheck.httpGet
        needs = ", ".join(workload.connections) or "(none)"
        rows.append(
            f"| {workload.name.replace('-', '_')} | {workload.name} | {workload.ports[0].port} "
            f"| {needs} | `{check.path if check else '-'}` |"
        )
    return "\n".join(rows) + "\n"


def render_services_readme() -> str:
    text = SERVICES_README.read_text()
    head, _, rest = text.partition(TABLE_BEGIN)
    _, _, tail = rest.partition(TABLE_END)
    return head + TABLE_BEGIN + render_services_table() + TABLE_END + tail


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
    spec = yaml.safe_load((SOURCE_CHART / "values-kind.yaml").read_text())
    resource = {
        "apiVersion": "mastertrade.io/v1alpha1",
        "kind": "MasterTradeDeployment",
        "metadata": {"name": "mastertrade", "namespace": "mastertrade"},
        "spec": spec,
    }
    return KIND_SAMPLE_HEADER + yaml.safe_dump(resource, sort_keys=False, width=100)


GENERATED: dict[Path, Callable[[], str]] = {
    SOURCE_CHART / "values.yaml": render_values_yaml,
    SERVICES_README: render_services_readme,
    SOURCE_CHART / "values.schema.json": render_values_schema,
    SOURCE_CHART / "files/rabbitmq/definitions.json": render_rabbitmq_definitions,
    SOURCE_CHART / "README.md": render_chart_readme,
    CRD_PATH: render_crd_yaml,
    KIND_SAMPLE: render_kind_sample,
    CRD_SUBCHART_FILE: render_crd_subchart_file,
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
