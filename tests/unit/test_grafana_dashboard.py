"""Static checks of the provisioned Grafana dashboard (charts/mastertrade/files/grafana).

The file is rendered through Helm's ``tpl``, is loaded by Grafana 12 from the provisioning
directory, and queries the release's Prometheus: these tests check the properties each of
those needs without a running Grafana, Prometheus or helm.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DASHBOARD_PATH = REPO / "charts/mastertrade/files/grafana/mastertrade-overview.json"
DATASOURCES_PATH = REPO / "charts/mastertrade/files/grafana/datasources.yaml"

DATASOURCE_UID = "mastertrade-prometheus"
GRID_WIDTH = 24

# The series the MasterTrade services expose, plus Prometheus's own per-target `up`.
KNOWN_METRICS = frozenset(
    {
        "mastertrade_http_requests_total",
        "mastertrade_http_request_duration_seconds_bucket",
        "mastertrade_http_request_duration_seconds_sum",
        "mastertrade_http_request_duration_seconds_count",
        "mastertrade_dependency_up",
        "mastertrade_service_info",
        "up",
    }
)
KNOWN_LABELS = frozenset(
    {
        "service",
        "method",
        "route",
        "status",
        "dependency",
        "version",
        "le",
        "job",
        "tier",
        "instance",
    }
)
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
def raw_text() -> str:
    return DASHBOARD_PATH.read_text(encoding="utf-8")


@cache
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(raw_text())
    return loaded


def all_panels() -> list[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    found: list[dict[str, Any]] = []
    for panel in dashboard()["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def data_panels() -> list[dict[str, Any]]:
    return [p for p in all_panels() if p["type"] != "row"]


def exprs() -> list[str]:
    return [t["expr"] for p in data_panels() for t in p["targets"]]


def variable_names() -> set[str]:
    return {v["name"] for v in dashboard()["templating"]["list"]}


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


def test_file_is_valid_json_indented_by_two_spaces() -> None:
    assert raw_text() == json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


def test_file_has_no_template_delimiters() -> None:
    # The chart renders the file through `tpl`: `{{`/`}}` would be taken as template actions.
    assert "{{" not in raw_text()
    assert "}}" not in raw_text()


def test_identity_and_schema() -> None:
    board = dashboard()
    assert board["uid"] == "mastertrade-overview"
    assert board["title"] == "MasterTrade overview"
    assert board["schemaVersion"] >= 39
    assert board.get("id") is None  # provisioned: Grafana assigns the id


def test_datasource_uid_matches_the_provisioned_datasource() -> None:
    assert f"uid: {DATASOURCE_UID}" in DATASOURCES_PATH.read_text(encoding="utf-8")


def _is_our_datasource(ref: Any) -> bool:
    return (
        isinstance(ref, dict)
        and ref.get("type") == "prometheus"
        and ref.get("uid") in {DATASOURCE_UID, "${datasource}", "$datasource"}
    )


def test_every_panel_and_target_uses_the_prometheus_datasource() -> None:
    panels = data_panels()
    assert panels
    for panel in panels:
        assert _is_our_datasource(panel.get("datasource")), panel["title"]
        assert panel.get("targets"), f"{panel['title']}: no queries"
        for target in panel["targets"]:
            assert _is_our_datasource(target.get("datasource", panel["datasource"])), panel["title"]


def test_service_variable() -> None:
    (variable,) = [v for v in dashboard()["templating"]["list"] if v["name"] == "service"]
    assert variable["type"] == "query"
    assert _is_our_datasource(variable["datasource"])
    query = variable["query"]
    text = query["query"] if isinstance(query, dict) else query
    assert re.sub(r"\s+", "", text) == "label_values(mastertrade_service_info,service)"


def test_panel_ids_are_unique() -> None:
    ids = [p["id"] for p in all_panels()]
    assert all(isinstance(i, int) for i in ids)
    assert len(ids) == len(set(ids))


def test_ref_ids_are_unique_within_each_panel() -> None:
    for panel in data_panels():
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]


def test_grid_positions_are_present_in_bounds_and_do_not_overlap() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in all_panels():
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


@pytest.mark.parametrize("expr", exprs())
def test_expr_uses_only_known_metrics_labels_and_functions(expr: str) -> None:
    metrics, functions, labels, _ = analyse(expr)
    assert metrics, "no metric selected"
    assert metrics <= KNOWN_METRICS, metrics - KNOWN_METRICS
    assert functions <= PROMQL_FUNCTIONS, functions - PROMQL_FUNCTIONS
    assert labels <= KNOWN_LABELS, labels - KNOWN_LABELS


@pytest.mark.parametrize("expr", exprs())
def test_expr_is_balanced_and_its_variables_are_defined(expr: str) -> None:
    depth = 0
    for char in STRING_RE.sub('""', expr):
        depth += {"(": 1, ")": -1}.get(char, 0)
        assert depth >= 0
    assert depth == 0
    for name in re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", expr):
        assert name in variable_names() | GRAFANA_BUILTINS, name


@pytest.mark.parametrize("expr", exprs())
def test_service_metrics_follow_the_service_variable(expr: str) -> None:
    # Every selector of a mastertrade_* series is narrowed by the $service picker.
    for selector in re.finditer(r"(mastertrade_[a-z_]+)\s*(\{[^{}]*\})?", expr):
        assert selector.group(2), f"{selector.group(1)} has no label matchers"
        assert ("service", "$service") in analyse(selector.group(0))[3], selector.group(0)


@pytest.mark.parametrize("expr", [e for e in exprs() if "histogram_quantile" in e])
def test_quantiles_aggregate_buckets_by_le(expr: str) -> None:
    metrics, _, labels, _ = analyse(expr)
    assert metrics == {"mastertrade_http_request_duration_seconds_bucket"}
    assert "le" in labels
    assert "rate(" in expr


def test_series_names_come_from_labels_not_legend_templates() -> None:
    for panel in data_panels():
        for target in panel["targets"]:
            legend = target.get("legendFormat", "__auto")
            assert legend == "__auto" or "{" not in legend, panel["title"]
