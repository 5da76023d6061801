"""Benchmark: how long `helm template` takes on the MasterTrade chart, and how much it renders.

Side by side in the same run with a reference: the chart `helm create` scaffolds (the common
starting point of upstream charts), so the figures separate helm's own start-up cost from what
our templates add. Run with `make bench` (or `.venv/bin/python bench/chart_render.py`).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helm import CHART, helm_binary  # noqa: E402

RUNS = 15


def time_render(chart: Path, extra: list[str]) -> tuple[float, float, int]:
    """Median and worst wall time in ms over RUNS renders, and the number of objects."""
    command = [helm_binary(), "template", "bench", str(chart), *extra]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    objects = sum(1 for doc in yaml.safe_load_all(output) if doc)
    timings = []
    for _ in range(RUNS):
        started = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings), max(timings), objects


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run(
            [helm_binary(), "create", "reference"], cwd=scratch, check=True, capture_output=True
        )
        cases = [
            ("helm create scaffold (reference)", Path(scratch) / "reference", []),
            ("mastertrade, defaults", CHART, []),
            ("mastertrade, values-kind.yaml", CHART, ["-f", str(CHART / "values-kind.yaml")]),
            ("mastertrade, scaled", CHART, ["-f", str(CHART / "ci" / "scaled-values.yaml")]),
        ]
        print(f"helm template, {RUNS} runs each (wall time, includes process start)")
        print(f"{'chart':36} {'median ms':>10} {'worst ms':>9} {'objects':>8} {'ms/object':>10}")
        for label, chart, extra in cases:
            median, worst, objects = time_render(chart, extra)
            print(f"{label:36} {median:10.1f} {worst:9.1f} {objects:8d} {median / objects:10.2f}")


if __name__ == "__main__":
    main()
