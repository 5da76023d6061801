"""Where the workload catalog lives and how it is read, once per process.

The catalog and every default are data in the chart's `values.yaml`. The chart ships inside the
wheel as this package's `chart/` folder (the operator renders it, the services read their ports
from it); in a source checkout it is the repository's `charts/mastertrade`. Nothing is read at
import time: the first call reads and validates the file, later calls share the result.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

from mastertrade_model.values import Values

PACKAGED_CHART = Path(__file__).resolve().parent / "chart"
SOURCE_CHART = Path(__file__).resolve().parents[2] / "charts" / "mastertrade"


class ChartNotFoundError(FileNotFoundError):
    """Neither the packaged chart nor a source checkout's chart is there."""


@cache
def chart_dir() -> Path:
    """The chart folder: the wheel's packaged copy, else the source checkout's."""
    for candidate in (PACKAGED_CHART, SOURCE_CHART):
        if (candidate / "Chart.yaml").is_file():
            return candidate
    raise ChartNotFoundError(
        f"the MasterTrade chart is neither packaged ({PACKAGED_CHART}) nor in a source "
        f"checkout ({SOURCE_CHART}): reinstall the mastertrade package"
    )


@cache
def _read_default_values(path: Path) -> dict[str, Any]:
    with path.open() as stream:
        data: dict[str, Any] = yaml.load(
            stream, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        )
    return data


def read_default_values(chart: Path | None = None) -> dict[str, Any]:
    """The chart's values.yaml as plain data (read once per file; callers get a deep copy)."""
    data = _read_default_values((chart or chart_dir()) / "values.yaml")
    return merge_values(data, {})


def merge_values(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Merge `override` over `base` the way Helm coalesces values files.

    Maps merge key by key; anything else (lists included) is replaced; a `null` deletes the key.
    Neither argument is changed: the result shares no map with them.
    """
    merged = {key: _copy(value) for key, value in base.items()}
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_values(merged[key], value)
        else:
            merged[key] = _copy(value)
    return merged


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


def load_values(override: dict[str, Any] | None = None, chart: Path | None = None) -> Values:
    """The typed values: the chart's defaults with `override` merged over them."""
    if not override:
        return load_default_values(chart)
    return Values.model_validate(merge_values(read_default_values(chart), override))


@cache
def _default_values(path: Path) -> Values:
    return Values.model_validate(read_default_values(path))


def load_default_values(chart: Path | None = None) -> Values:
    """The typed default values, i.e. the catalog as the chart ships it (validated once)."""
    return _default_values(chart or chart_dir())
