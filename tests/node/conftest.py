"""Fixtures of the `node` tier: the images (built or taken from the cache), one real node for the
session, and diagnostics printed after every failed test. The figures the tier measures are
printed at the end of the run and written to /tmp/mastertrade-node-figures.json."""

from __future__ import annotations

import json
import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.node.cluster import NodeCluster, build_images

FIGURES: dict[str, Any] = {}
FIGURES_FILE = Path("/tmp/mastertrade-node-figures.json")
# Namespaces whose Pods the diagnostics describe
NAMESPACES = ("mastertrade-node", "mastertrade-operated", "mastertrade-system")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the test, for `diagnostics_on_failure`."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("node tier figures")
        for key, value in FIGURES.items():
            terminalreporter.write_line(f"{key}: {value}")
        FIGURES_FILE.write_text(json.dumps(FIGURES, indent=2))


@pytest.fixture(scope="session")
def node_images(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    log = Path(tmp_path_factory.mktemp("images")) / "build.log"
    records = build_images(log)
    images = [r for r in records if "image" in r]
    FIGURES["images"] = {
        str(r["image"]): "cached" if r["cached"] else f"built in {r['seconds']} s" for r in images
    }
    FIGURES["image_build_total_s"] = next(
        r["total_seconds"] for r in records if "total_seconds" in r
    )
    return images


@pytest.fixture(scope="session")
def cluster(node_images: list[dict[str, Any]]) -> Iterator[NodeCluster]:
    # A fixed folder, not pytest's temporary one: pytest removes old temporary folders, and
    # another pytest run on the machine must never remove a running node's state
    folder = Path(os.environ.get("MASTERTRADE_NODE_DIR", "/tmp/mt-node"))
    started = NodeCluster.start(folder, [str(r["image"]) for r in node_images])
    FIGURES.update({k: round(v, 1) for k, v in started.timings.items()})
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(autouse=True)
def diagnostics_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a failed test: events, describe and logs of every Pod not Ready (printed into the
    test's report, as the kind workflow uploads them)."""
    yield
    report = getattr(request.node, "report_call", None)
    if report is None or not report.failed or "cluster" not in request.fixturenames:
        return
    cluster: NodeCluster = request.getfixturevalue("cluster")
    for namespace in NAMESPACES:
        print(cluster.diagnostics(namespace))
