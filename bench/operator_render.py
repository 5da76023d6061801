"""Benchmark: the operator's render of a MasterTradeDeployment, beside `helm template` of the same
values in the same run (the chart is the reference the render must equal).

Three figures per spec: parsing the CR into typed values (merge over values.yaml), rendering the
objects, and the whole `helm template` process. Run with `make bench`.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helm import CHART, helm_binary  # noqa: E402

from mastertrade_operator.model.resource import parse_resource  # noqa: E402
from mastertrade_operator.render import render_all  # noqa: E402

RUNS = 30
SAMPLES = sorted((REPO / "manifests" / "samples").glob("*.yaml"))


def median_ms(action: Callable[[], object], runs: int = RUNS) -> float:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def helm_template_ms(document: dict[str, object]) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as values:
        yaml.safe_dump(document.get("spec") or {}, values)
        values.flush()
        command = [helm_binary(), "template", "bench", str(CHART), "-f", values.name]
        return median_ms(lambda: subprocess.run(command, capture_output=True, check=True), 10)


def main() -> None:
    print(f"operator render vs helm template, median of {RUNS} runs (helm: 10 processes)")
    print(f"{'sample':22} {'parse ms':>9} {'render ms':>10} {'objects':>8} {'helm ms':>8}")
    for sample in SAMPLES:
        document = yaml.safe_load(sample.read_text())
        resource = parse_resource(document)
        objects = render_all(resource.values, resource.name, resource.namespace)
        parse = median_ms(partial(parse_resource, document))
        render = median_ms(partial(render_all, resource.values, resource.name, resource.namespace))
        helm = helm_template_ms(document)
        print(f"{sample.stem:22} {parse:9.1f} {render:10.1f} {len(objects):8d} {helm:8.1f}")


if __name__ == "__main__":
    main()
