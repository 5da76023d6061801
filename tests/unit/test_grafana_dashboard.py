"""Static checks of the provisioned Grafana dashboards (charts/mastertrade/files/grafana).

Each file is mounted as it is, loaded by Grafana 12 from the provisioning directory (or a
kube-prometheus-stack sidecar), and queries a Prometheus chosen by its `datasource` variable:
these tests check the properties each of those needs without a running Grafana, Prometheus or
helm. That every metric queried is exported is checked against the services' registries in
tests/chart/test_monitoring.py.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DASHBOARD_PATHS = sorted((REPO / "charts/mastertrade/files/grafana").glob("mastertrade-*.json"))
OVERVIEW = REPO / "charts/mastertrade/files/grafana/mastertrade-overview.json"
DATASOURCES_PATH = REPO / "charts/mastertrade/files/grafana/datasources.yaml"

DATASOURCE_UID = "mastertrade-prometheus"
GRID_WIDTH = 24

PROMQL_FUNCTIONS = frozenset(
    {
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "topk",
        "bottomk",
        "quantile",
        "group",
        "rate",
        "irate",
        "increase",
        "delta",
        "idelta",
        "histogram_quantile",
        "avg_over_time",
        "max_over_time",
        "min_over_time",
        "sum_over_time",
        "count_over_time",
        "last_over_time",
        "abs",
        "clamp_min",
        "clamp_max",
        "absent",
        "vector",
        "scalar",
        "label_replace",
        "label_join",
        "time",
        "timestamp",
        "round",
        "ceil",
        "floor",
    }
)
PROMQL_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset"})
GROUPING_RE = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"')
MATCHER_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"(\d+)"')
IDENT_RE = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
NUMBER_RE = re.compile(r"\b\d+(\.\d+)?([eE][+-]?\d+)?\b")
# Grafana's built-in variables that may appear in a query.
GRAFANA_BUILTINS = frozenset({"__rate_interval", "__interval", "__range", "__range_s"})


@cache
def raw_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


@cache
def load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(raw_text(path))
    return loaded


def all_panels(path: Path) -> list[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    found: list[dict[str, Any]] = []
    for panel in load(path)["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def data_panels(path: Path) -> list[dict[str, Any]]:
    return [p for p in all_panels(path) if p["type"] != "row"]


def exprs(path: Path) -> list[str]:
    return [t["expr"] for p in data_panels(path) for t in p["targets"]]


ALL_EXPRS = [(path, expr) for path in DASHBOARD_PATHS for expr in exprs(path)]
EXPR_IDS = [f"{path.stem}:{expr}" for path, expr in ALL_EXPRS]
boards = pytest.mark.parametrize("path", DASHBOARD_PATHS, ids=lambda p: p.stem)


def variable_names(path: Path) -> set[str]:
    return {v["name"] for v in load(path)["templating"]["list"]}


def analyse(expr: str) -> tuple[set[str], set[str], set[str], list[tuple[str, str]]]:
    """Split a PromQL expression into (metrics, functions, labels, matchers).

    A deliberately small scanner, enough for the dashboard's queries: label matchers in
    braces, grouping clauses, range selectors and strings are taken out first; what is left
    is function names (followed by a parenthesis), keywords and metric names.
    """
    matchers: list[tuple[str, str]] = []
    labels: set[str] = set()
    strings: list[str] = []

    def park_string(match: re.Match[str]) -> str:
        # Strings go first, so braces or brackets inside them cannot confuse what follows.
        strings.append(match.group(0)[1:-1])
        return f'"{len(strings) - 1}"'

    def take_selector(match: re.Match[str]) -> str:
        for name, _op, index in MATCHER_RE.findall(match.group(0)):
            labels.add(name)
            matchers.append((name, strings[int(index)]))
        return " "

    rest = STRING_RE.sub(park_string, expr)
    rest = re.sub(r"\{[^{}]*\}", take_selector, rest)
    rest = re.sub(r"\[[^\]]*\]", " ", rest)
    rest = STRING_RE.sub(" ", rest)
    for _clause, names in GROUPING_RE.findall(rest):
        labels.update(n.strip() for n in names.split(",") if n.strip())
    rest = GROUPING_RE.sub(" ", rest)
    rest = NUMBER_RE.sub(" ", rest)
    metrics: set[str] = set()
    functions: set[str] = set()
    for match in IDENT_RE.finditer(rest):
        word = match.group(0)
        if word in PROMQL_KEYWORDS:
            continue
        if rest[match.end() :].lstrip().startswith("("):
            functions.add(word)
        else:
            metrics.add(word)
    return metrics, functions, labels, matchers


@boards
def test_file_is_valid_json_indented_by_two_spaces(path: Path) -> None:
    assert raw_text(path) == json.dumps(load(path), indent=2, ensure_ascii=False) + "\n"


@boards
def test_identity_and_schema(path: Path) -> None:
    board = load(path)
    assert board["uid"] == path.stem
    assert board["title"].startswith("MasterTrade — ")
    assert board["schemaVersion"] >= 39
    assert board.get("id") is None  # provisioned: Grafana assigns the id


def test_the_default_datasource_is_the_provisioned_prometheus() -> None:
    text = DATASOURCES_PATH.read_text(encoding="utf-8")
    assert f"uid: {DATASOURCE_UID}" in text and "isDefault: true" in text


def _is_our_datasource(ref: Any) -> bool:
    return (
        isinstance(ref, dict)
        and ref.get("type") == "prometheus"
        and ref.get("uid") == "${datasource}"
    )


@boards
def test_every_panel_and_target_uses_the_datasource_variable(path: Path) -> None:
    (variable,) = [v for v in load(path)["templating"]["list"] if v["name"] == "datasource"]
    assert variable["type"] == "datasource" and variable["query"] == "prometheus"
    panels = data_panels(path)
    assert panels
    for panel in panels:
        assert _is_our_datasource(panel.get("datasource")), panel["title"]
        assert panel.get("targets"), f"{panel['title']}: no queries"
        for target in panel["targets"]:
            assert _is_our_datasource(target.get("datasource", panel["datasource"])), panel["title"]


def test_service_variable() -> None:
    (variable,) = [v for v in load(OVERVIEW)["templating"]["list"] if v["name"] == "service"]
    assert variable["type"] == "query"
    assert _is_our_datasource(variable["datasource"])
    query = variable["query"]
    text = query["query"] if isinstance(query, dict) else query
    assert re.sub(r"\s+", "", text) == "label_values(mastertrade_service_info,service)"


@boards
def test_panel_ids_are_unique(path: Path) -> None:
    ids = [p["id"] for p in all_panels(path)]
    assert all(isinstance(i, int) for i in ids)
    assert len(ids) == len(set(ids))


@boards
def test_ref_ids_are_unique_within_each_panel(path: Path) -> None:
    for panel in data_panels(path):
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]


@boards
def test_grid_positions_are_present_in_bounds_and_do_not_overlap(path: Path) -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in all_panels(path):
        grid = panel.get("gridPos")
        assert grid is not None, panel["title"]
        assert {"h", "w", "x", "y"} <= grid.keys(), panel["title"]
        assert grid["h"] > 0
        assert grid["w"] > 0
        assert grid["x"] >= 0
        assert grid["y"] >= 0
        assert grid["x"] + grid["w"] <= GRID_WIDTH, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells.get((x, y))}"
                cells[(x, y)] = panel["title"]


def test_scanner_sees_through_a_query() -> None:
    metrics, functions, labels, matchers = analyse(
        "histogram_quantile(0.99, sum by (service, le) "
        '(rate(foo_bucket{service=~"$service", x!="a{b}"}[5m]))) or up * 0'
    )
    assert metrics == {"foo_bucket", "up"}
    assert functions == {"histogram_quantile", "sum", "rate"}
    assert labels == {"service", "le", "x"}
    assert matchers == [("service", "$service"), ("x", "a{b}")]


@pytest.mark.parametrize(("path", "expr"), ALL_EXPRS, ids=EXPR_IDS)
def test_expr_selects_a_metric_with_known_functions(path: Path, expr: str) -> None:
    metrics, functions, _, _ = analyse(expr)
    assert metrics, "no metric selected"
    assert functions <= PROMQL_FUNCTIONS, functions - PROMQL_FUNCTIONS


@pytest.mark.parametrize(("path", "expr"), ALL_EXPRS, ids=EXPR_IDS)
def test_expr_is_balanced_and_its_variables_are_defined(path: Path, expr: str) -> None:
    depth = 0
    for char in STRING_RE.sub('""', expr):
        depth += {"(": 1, ")": -1}.get(char, 0)
        assert depth >= 0
    assert depth == 0
    for name in re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", expr):
        assert name in variable_names(path) | GRAFANA_BUILTINS, name


@pytest.mark.parametrize("expr", exprs(OVERVIEW))
def test_http_metrics_follow_the_service_variable(expr: str) -> None:
    # Every selector of a service's HTTP series or info is narrowed by the $service picker
    for selector in re.finditer(r"(mastertrade_(?:http|service)_[a-z_]+)\s*(\{[^{}]*\})?", expr):
        assert selector.group(2), f"{selector.group(1)} has no label matchers"
        assert ("service", "$service") in analyse(selector.group(0))[3], selector.group(0)


@pytest.mark.parametrize(
    ("path", "expr"),
    [(p, e) for p, e in ALL_EXPRS if "histogram_quantile" in e],
    ids=[i for (p, e), i in zip(ALL_EXPRS, EXPR_IDS, strict=True) if "histogram_quantile" in e],
)
def test_quantiles_aggregate_buckets_by_le(path: Path, expr: str) -> None:
    metrics, _, labels, _ = analyse(expr)
    (metric,) = metrics
    assert metric.endswith("_duration_seconds_bucket")
    assert "le" in labels
    assert "rate(" in expr
