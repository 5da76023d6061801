"""Generates the chart's README.md from values.yaml, so the documentation cannot drift.

Descriptions come from the `# --` comments in values.yaml (the helm-docs convention), figures
from the catalog itself.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from mastertrade_model import Values, load_default_values
from mastertrade_model.catalog import SOURCE_CHART

KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][A-Za-z0-9_]*):")


def documented_keys(values_yaml: str) -> dict[str, str]:
    """Dotted key -> description, from `# --` comments (continued by plain `#` lines)."""
    found: dict[str, str] = {}
    parents: list[tuple[int, str]] = []
    pending: list[str] = []
    for line in values_yaml.splitlines():
        stripped = line.strip()
        if stripped.startswith("# --"):
            pending = [stripped.removeprefix("# --").strip()]
        elif stripped.startswith("#") and pending:
            pending.append(stripped.removeprefix("#").strip())
        elif match := KEY_LINE.match(line):
            depth = len(match["indent"])
            parents = [(d, k) for d, k in parents if d < depth] + [(depth, match["key"])]
            if pending:
                found[".".join(k for _, k in parents)] = " ".join(pending)
            pending = []
        elif not stripped:
            pending = []
    return found


def lookup(data: dict[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        node = node[part]
    return node


def values_table(values_yaml: str) -> list[str]:
    data = yaml.safe_load(values_yaml)
    rows = ["| Key | Default | Description |", "|---|---|---|"]
    for key, description in documented_keys(values_yaml).items():
        default = json.dumps(lookup(data, key))
        if len(default) > 60:
            default = "see values.yaml"
        rows.append(f"| `{key}` | `{default}` | {description} |")
    return rows


def catalog_table(values: Values) -> list[str]:
    rows = [
        "| Key | Name | Kind | Ports | CPU limit/request | Memory limit/request | Volume |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, w in values.workloads.items():
        ports = ", ".join(str(p.port) for p in w.ports)
        volume = f"{w.persistence.size} at `{w.persistence.mountPath}`" if w.persistence else ""
        limits, requests = w.resources.limits, w.resources.requests
        rows.append(
            f"| `{key}` | {w.name} | {w.kind} | {ports} | {limits.cpu} / {requests.cpu} | "
            f"{limits.memory} / {requests.memory} | {volume} |"
        )
    return rows


def render_chart_readme(chart_dir: Path = SOURCE_CHART) -> str:
    template = (chart_dir / "README.md.gotmpl").read_text()
    values_yaml = (chart_dir / "values.yaml").read_text()
    return template.replace(
        "{{ catalog }}", "\n".join(catalog_table(load_default_values(chart_dir)))
    ).replace("{{ values }}", "\n".join(values_table(values_yaml)))
