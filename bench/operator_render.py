"""Benchmark: how long the operator takes to render a MasterTradeDeployment, beside plain
`helm template` of the same values in the same run.

The operator renders the chart with helm, so the question is what it adds: per sample, a cold
render (`mastertrade-operator render` as a new process: Python start, parsing, helm, the
operator's steps), a warm render in a running operator (helm runs, the process is up), a cached
render (what a resync costs: no helm), and the reference, `helm template` as a process.
Run with `make bench`.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helm import CHART, helm_binary  # noqa: E402

from mastertrade_operator.render import Renderer  # noqa: E402
from mastertrade_operator.render.helm import Helm, find_helm  # noqa: E402
from mastertrade_operator.resource import parse_resource  # noqa: E402

RUNS = 10
SAMPLES = sorted((REPO / "manifests" / "samples").glob("*.yaml"))
OPERATOR = str(Path(sys.executable).with_name("mastertrade-operator"))


def median_ms(action: Callable[[], object], runs: int = RUNS) -> float:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def run(command: list[str]) -> None:
    subprocess.run(command, capture_output=True, check=True)


def measure(helm: Helm, sample: Path) -> str:
    """One table row: the sample's renders and the reference."""
    document = yaml.safe_load(sample.read_text())
    resource = parse_resource(document)
    credentials = f"{resource.name}-credentials"
    objects = Renderer(helm).render_now(resource, credentials)
    cold = median_ms(lambda: run([OPERATOR, "render", "-f", str(sample), "--helm", helm.binary]))
    warm = median_ms(lambda: Renderer(helm).render_now(resource, credentials))
    renderer = Renderer(helm)
    asyncio.run(renderer.render(resource, credentials))
    cached = median_ms(lambda: asyncio.run(renderer.render(resource, credentials)))
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as values:
        yaml.safe_dump(document.get("spec") or {}, values)
        values.flush()
        command = [helm.binary, "template", "bench", str(CHART), "-f", values.name]
        reference = median_ms(lambda: run(command))
    return (
        f"{sample.stem:16} {len(objects):8d} {cold:7.1f} {warm:7.1f} {cached:7.2f} {reference:7.1f}"
    )


def main() -> None:
    helm = find_helm(helm_binary())
    print(f"operator render vs helm template ({helm.version}), median of {RUNS} runs, ms")
    print(f"{'sample':16} {'objects':>8} {'cold':>7} {'warm':>7} {'cached':>7} {'helm':>7}")
    for sample in SAMPLES:
        print(measure(helm, sample))


if __name__ == "__main__":
    main()
