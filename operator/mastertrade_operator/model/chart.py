"""The chart's metadata and config files, read once for the operator's renderer.

The renderer is pure: it is handed a `Chart` (name, version, appVersion and the text of every
file under `files/`) instead of reading the chart itself. This module is where that is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from mastertrade_operator.model.catalog import CHART_DIR


@dataclass(frozen=True)
class Chart:
    """What the templates read besides the values: `.Chart` and `.Files`."""

    name: str
    version: str
    app_version: str
    files: Mapping[str, str]
    """Text of each file under files/, by its path there, e.g. `prometheus/prometheus.yml`."""


@cache
def load_chart(chart_dir: Path = CHART_DIR) -> Chart:
    """The chart's Chart.yaml and files/, as the templates see them."""
    meta = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
    files_dir = chart_dir / "files"
    files = {
        path.relative_to(files_dir).as_posix(): path.read_text()
        for path in sorted(files_dir.rglob("*"))
        if path.is_file()
    }
    return Chart(
        name=str(meta["name"]),
        version=str(meta["version"]),
        app_version=str(meta.get("appVersion", "")),
        files=files,
    )
