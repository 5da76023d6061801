"""Fixtures of the chart tests: renders of the chart with the real helm binary."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helm import CHART, Manifest, render, run_helm, template_args

CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
VALUES_PROFILES = [*CI_VALUES, CHART / "values-kind.yaml"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/chart/" in str(item.fspath):
            item.add_marker(pytest.mark.chart)


@pytest.fixture(scope="session")
def default_render() -> list[Manifest]:
    return render()


@pytest.fixture(scope="session", params=VALUES_PROFILES, ids=lambda p: Path(p).name)
def profile_render(request: pytest.FixtureRequest) -> list[Manifest]:
    return render([request.param])


@pytest.fixture(scope="session", params=VALUES_PROFILES, ids=lambda p: Path(p).name)
def profile_text(request: pytest.FixtureRequest) -> str:
    result = run_helm(*template_args([request.param], [], "mastertrade", "trading"))
    assert result.returncode == 0, result.stderr
    return result.stdout
