"""Where the workload catalog lives and how it is read.

The catalog and every default are data in the chart's `values.yaml`; the operator and the tests
read that same file, so there is no second list of workloads anywhere.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from mastertrade_operator.model.values import Values

CHART_DIR = Path(
    os.environ.get(
        "MASTERTRADE_CHART_DIR", Path(__file__).resolve().parents[3] / "charts/mastertrade"
    )
)


def read_default_values(chart_dir: Path = CHART_DIR) -> dict[str, Any]:
    """The chart's values.yaml as plain data."""
    with (chart_dir / "values.yaml").open() as stream:
        data: dict[str, Any] = yaml.safe_load(stream)
    return data


def merge_values(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Merge `override` over `base` the way Helm coalesces values files.

    Maps merge key by key; anything else (lists included) is replaced; a `null` deletes the key.
    """
    merged = dict(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_values(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_values(override: dict[str, Any] | None = None, chart_dir: Path = CHART_DIR) -> Values:
    """The typed values: the chart's defaults with `override` merged over them."""
    return Values.model_validate(merge_values(read_default_values(chart_dir), override or {}))


def load_default_values(chart_dir: Path = CHART_DIR) -> Values:
    """The typed default values, i.e. the catalog as the chart ships it."""
    return load_values(None, chart_dir)
