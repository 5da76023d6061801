"""Prometheus, its alerting rules and Grafana as the chart ships them.

Prometheus finds every pod of every workload with metrics through the Kubernetes API, allowed
no more than reading pods in the release's namespace; its config and rules pass promtool, the
rules pass their unit tests (and fail them when a rule is broken); alerts go to the alert
system; every metric a rule or a dashboard reads is one a MasterTrade service or the operator
exports (their registries say which); the Prometheus Operator's objects render when its API is
there, valid for its types; the dashboards load in the release's Grafana and a sidecar's.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from cloudcoil.models.prometheus_operator import v1 as monitoring
from prometheus_client import CollectorRegistry

from mastertrade.arbitrage.service import ArbitrageMetrics
from mastertrade.core.metrics import ServiceMetrics
from mastertrade.market_data.metrics import MarketMetrics
from mastertrade.risk.portfolio_metrics import PortfolioMetrics
from mastertrade.strategy.generation import GenerationMetrics
from mastertrade.strategy.live import LiveMetrics
from mastertrade_model import load_default_values
from mastertrade_operator.kube import OWNED
from mastertrade_operator.metrics import build_metrics
from mastertrade_operator.render import build_helm_values
from mastertrade_operator.resource import parse_resource
from tests.chart.test_config_files import files_of, required_tool
from tests.chart.test_render import validation_problem
from tests.helm import CHART, REPO, Manifest, by_kind_and_name, of_kind, render

CATALOG = load_default_values().workloads
PREFIX = "mastertrade-"
RULES = CHART / "files" / "prometheus" / "mastertrade-rules.yml"
RULES_TEST = Path(__file__).with_name("prometheus-rules-test.yml")
DASHBOARDS = sorted((CHART / "files" / "grafana").glob("mastertrade-*.json"))
# Series Prometheus makes itself, not a service
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "ALERTS"}


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [required_tool("promtool"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
    )


# --- Prometheus: discovery, its RBAC, where alerts go --------------------------------------


def test_prometheus_alone_reads_pods_of_its_namespace(default_render: list[Manifest]) -> None:
    objects = by_kind_and_name(default_render)
    name = PREFIX + "prometheus"
    role = objects[("Role", name)]
    assert role["metadata"]["namespace"] == "trading"
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}
    ]
    binding = objects[("RoleBinding", name)]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": name,
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": "trading"}]
    assert ("ServiceAccount", name) in objects
    assert not of_kind(default_render, "ClusterRole") and not of_kind(
        default_render, "ClusterRoleBinding"
    )
    users = {
        w["metadata"]["name"]
        for w in of_kind(default_render, "Deployment") + of_kind(default_render, "StatefulSet")
        if w["spec"]["template"]["spec"]["serviceAccountName"] == name
    }
    assert users == {name}
    pod = objects[("Deployment", name)]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is True
    # every scrape job discovers pods of this namespace only: what the Role allows
    config = yaml.safe_load(files_of(default_render, "prometheus")["prometheus.yml"])
    for job in config["scrape_configs"]:
        (sd,) = job["kubernetes_sd_configs"]
        assert sd["role"] == "pod" and sd["namespaces"] == {"names": ["trading"]}


def test_alerts_go_to_the_alert_systems_alertmanager_api(default_render: list[Manifest]) -> None:
    config = yaml.safe_load(files_of(default_render, "prometheus")["prometheus.yml"])
    (manager,) = config["alerting"]["alertmanagers"]
    alert_system = CATALOG["alertSystem"]
    assert manager["api_version"] == "v2"
    assert manager["static_configs"] == [
        {"targets": [f"{PREFIX}{alert_system.name}:{alert_system.ports[0].port}"]}
    ]
    # the alert system admits Prometheus: Prometheus' pods carry its "uses" label
    pods = by_kind_and_name(default_render)[("Deployment", PREFIX + "prometheus")]
    labels = pods["spec"]["template"]["metadata"]["labels"]
    assert labels[f"mastertrade.io/uses-{alert_system.name}"] == "true"


def test_without_the_alert_system_prometheus_sends_alerts_nowhere() -> None:
    gateway = [k for k in CATALOG["apiGateway"].dependsOn if k != "alertSystem"]
    workloads = {
        "alertSystem": {"enabled": False},
        "apiGateway": {"dependsOn": gateway},
        "prometheus": {"dependsOn": []},
    }
    objects = render(values={"workloads": workloads})
    config = yaml.safe_load(files_of(objects, "prometheus")["prometheus.yml"])
    assert "alerting" not in config
    assert "alert-system" not in {job["job_name"] for job in config["scrape_configs"]}


def test_prometheus_keeps_the_seeds_figures(default_render: list[Manifest]) -> None:
    objects = by_kind_and_name(default_render)
    config = yaml.safe_load(files_of(default_render, "prometheus")["prometheus.yml"])
    assert config["global"]["scrape_interval"] == "15s"
    container = objects[("Deployment", PREFIX + "prometheus")]["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert "--storage.tsdb.retention.time=30d" in container["args"]
    assert (
        objects[("PersistentVolumeClaim", PREFIX + "prometheus-data")]["spec"]["resources"][
            "requests"
        ]["storage"]
        == "5Gi"
    )
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/etc/prometheus/prometheus.yml", "/etc/prometheus/mastertrade-rules.yml"} <= mounts


# --- Alerting rules ------------------------------------------------------------------------


def test_rules_pass_their_unit_tests() -> None:
    result = promtool("test", "rules", RULES_TEST.name, cwd=RULES_TEST.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def rules_by_alert() -> dict[str, dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


def test_every_rule_has_a_unit_test_and_a_severity() -> None:
    tested = {
        case["alertname"]
        for test in yaml.safe_load(RULES_TEST.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    rules = rules_by_alert()
    assert set(rules) == tested
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name


BREAKS = {
    "a threshold moved": ("MasterTradeHighErrorRate", "> 0.05", "> 0.5"),
    "a wait lengthened": ("MasterTradeWorkloadDown", "2m", "10m"),
    "a metric renamed": (
        "MasterTradeCircuitBreakerTripped",
        "circuit_breaker_open",
        "breaker_open",
    ),
    "a guard dropped": ("MasterTradeDrawdownNearLimit", "unless", "or"),
    "an aggregation lost": ("MasterTradeDependencyDown", "max by (service, dependency) ", ""),
}


@pytest.mark.parametrize("change", list(BREAKS), ids=list(BREAKS))
def test_a_broken_rule_fails_its_unit_tests(change: str, tmp_path: Path) -> None:
    alert, old, new = BREAKS[change]
    groups = yaml.safe_load(RULES.read_text())
    for group in groups["groups"]:
        for rule in group["rules"]:
            if rule["alert"] == alert:
                field = "for" if old.endswith("m") and rule.get("for") == old else "expr"
                assert old in rule[field], (alert, old)
                rule[field] = rule[field].replace(old, new)
    broken = tmp_path / "charts" / "mastertrade" / "files" / "prometheus" / RULES.name
    broken.parent.mkdir(parents=True)
    broken.write_text(yaml.safe_dump(groups))
    tests = tmp_path / "tests" / "chart" / RULES_TEST.name
    tests.parent.mkdir(parents=True)
    tests.write_text(RULES_TEST.read_text())
    result = promtool("test", "rules", tests.name, cwd=tests.parent)
    assert result.returncode != 0, result.stdout
    assert alert in result.stdout + result.stderr


# --- Metric names: every one read is exported ---------------------------------------------


def exported_metric_names() -> set[str]:
    """Every sample name the services' and the operator's registries can expose."""
    registry = CollectorRegistry()
    service = ServiceMetrics("any", "0", registry=registry)
    MarketMetrics(registry, "any")
    ArbitrageMetrics(service)
    PortfolioMetrics(registry, "paper", Decimal("0.15"))
    GenerationMetrics(service)
    LiveMetrics(service)
    registries = [registry, build_metrics().registry]
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("_sum", "_count", "_created"),
        "gauge": ("",),
        "info": ("_info",),
    }
    names: set[str] = set()
    for each in registries:
        for family in each.collect():
            names.update(f"{family.name}{suffix}" for suffix in suffixes.get(family.type, ("",)))
    return names


PROMQL_WORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "inf",
    "nan",
}


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads (functions, labels, keywords left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$\w+", "", text)  # Grafana variables
    found = re.findall(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(?!\s*\()", text)
    return {name for name in found if name.lower() not in PROMQL_WORDS}


def test_the_name_extraction_finds_names_and_only_names() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (service, le) (rate(a_bucket{route!~"/x|y"}[5m]))) > 1 '
        "unless on (environment) max by (environment) (b_open offset $__range) == 1 and c"
    )
    assert metric_names(expr) == {"a_bucket", "b_open", "c"}


def dashboard_queries(path: Path) -> list[str]:
    board = json.loads(path.read_text())
    queries = [target["expr"] for panel in board["panels"] for target in panel.get("targets", [])]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            label_values = re.match(r"label_values\((\w+)", variable["definition"])
            assert label_values, variable["definition"]
            queries.append(label_values.group(1))
    return queries


def test_every_metric_read_is_exported() -> None:
    exported = exported_metric_names() | PROMETHEUS_SERIES
    assert "mastertrade_http_requests_total" in exported  # the registries were read
    read: dict[str, set[str]] = {}
    for rule in rules_by_alert().values():
        read.setdefault(RULES.name, set()).update(metric_names(rule["expr"]))
    for path in DASHBOARDS:
        for query in dashboard_queries(path):
            read.setdefault(path.name, set()).update(metric_names(query))
    unknown = {where: sorted(names - exported) for where, names in read.items() if names - exported}
    assert unknown == {}
    assert len(read) == 1 + len(DASHBOARDS)


# --- Grafana -------------------------------------------------------------------------------


def load_generator() -> Any:
    spec = importlib.util.spec_from_file_location(
        "grafana_dashboards", REPO / "scripts" / "grafana_dashboards.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_dashboards_are_what_their_generator_writes() -> None:
    generator = load_generator()
    assert sorted(generator.BOARDS) == [p.name for p in DASHBOARDS]
    for path in DASHBOARDS:
        assert path.read_text() == generator.render(generator.BOARDS[path.name]), (
            f"{path.name} differs: run python scripts/grafana_dashboards.py"
        )


def test_dashboards_cover_system_trading_market_data_and_operator() -> None:
    boards = {json.loads(p.read_text())["uid"]: json.loads(p.read_text()) for p in DASHBOARDS}
    assert set(boards) == {
        "mastertrade-overview",
        "mastertrade-trading",
        "mastertrade-market-data",
        "mastertrade-operator",
    }
    for uid, board in boards.items():
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource", uid
        for panel in board["panels"]:
            position = panel["gridPos"]
            assert position["x"] + position["w"] <= 24, (uid, panel["title"])
            if panel["type"] != "row":
                assert panel["targets"], (uid, panel["title"])
                assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    trading = " ".join(
        t["expr"] for p in boards["mastertrade-trading"]["panels"] for t in p.get("targets", [])
    )
    for metric in (
        "mastertrade_equity_usdt",
        "mastertrade_circuit_breaker_open",
        "mastertrade_position_quantity",
        "mastertrade_orders",
        "mastertrade_fills",
        "mastertrade_strategies",
        "mastertrade_strategy_goal_achieved",
    ):
        assert metric in trading


def test_grafana_provisions_every_dashboard(default_render: list[Manifest]) -> None:
    files = files_of(default_render, "grafana")
    for path in DASHBOARDS:
        assert json.loads(files[path.name]) == json.loads(path.read_text())
    objects = by_kind_and_name(default_render)
    container = objects[("Deployment", PREFIX + "grafana")]["spec"]["template"]["spec"][
        "containers"
    ][0]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    for path in DASHBOARDS:
        assert f"/etc/grafana/provisioning/dashboards/json/{path.name}" in mounts
    # the admin password comes from the credentials Secret, never from a value
    env = {e["name"]: e for e in container["env"]}
    assert env["GF_SECURITY_ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": PREFIX + "credentials",
        "key": "grafana-admin-password",
    }
    assert ("ConfigMap", PREFIX + "grafana-dashboards") not in objects


def test_a_sidecar_grafana_gets_the_dashboards_by_label() -> None:
    objects = by_kind_and_name(
        render(sets=["grafana.dashboards.sidecar=true", "grafana.dashboards.sidecarFolder=Trading"])
    )
    config_map = objects[("ConfigMap", PREFIX + "grafana-dashboards")]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"]["grafana_folder"] == "Trading"
    assert sorted(config_map["data"]) == [p.name for p in DASHBOARDS]
    for path in DASHBOARDS:
        assert json.loads(config_map["data"][path.name]) == json.loads(path.read_text())


# --- The Prometheus Operator's objects -----------------------------------------------------


def strictly_valid(manifest: Manifest) -> list[str]:
    """Validate against the operator's types; a field they do not know is an error too."""
    model = getattr(monitoring, manifest["kind"]).model_validate(manifest)
    known = model.model_dump(by_alias=True, exclude_none=True, mode="json")
    return unknown_fields(manifest, known, manifest["kind"])


def unknown_fields(given: Any, known: Any, path: str) -> list[str]:
    if isinstance(given, dict):
        if not isinstance(known, dict):
            return [path]
        return [
            problem
            for key, value in given.items()
            for problem in (
                [f"{path}.{key}"]
                if key not in known
                else unknown_fields(value, known[key], f"{path}.{key}")
            )
        ]
    if isinstance(given, list):
        return [
            p
            for i, item in enumerate(given)
            for p in unknown_fields(item, known[i], f"{path}[{i}]")
        ]
    return []


def test_the_strict_check_catches_an_unknown_field() -> None:
    monitor = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": {"name": "x"},
        "spec": {"selector": {}, "podMetricsEndpoints": [{"port": "http", "paht": "/m"}]},
    }
    assert strictly_valid(monitor) == ["PodMonitor.spec.podMetricsEndpoints[0].paht"]


def operator_objects(sets: list[str], api: bool) -> list[Manifest]:
    return [
        m
        for m in render(sets=sets, api_versions=["monitoring.coreos.com/v1"] if api else [])
        if m["apiVersion"] == "monitoring.coreos.com/v1"
    ]


def test_prometheus_operator_objects_render_when_its_api_is_served() -> None:
    objects = operator_objects(["prometheus.operatorLabels.release=kube-prometheus-stack"], True)
    monitors = {m["metadata"]["name"]: m for m in objects if m["kind"] == "PodMonitor"}
    expected = {PREFIX + w.name: w for w in CATALOG.values() if w.metrics}
    assert set(monitors) == set(expected)
    for name, workload in expected.items():
        spec = monitors[name]["spec"]
        assert spec["selector"]["matchLabels"]["app.kubernetes.io/component"] == workload.name
        assert spec["namespaceSelector"] == {"matchNames": ["trading"]}
        assert spec["podMetricsEndpoints"][0]["port"] == workload.ports[0].name
        assert spec["jobLabel"] == "app.kubernetes.io/component"
        assert monitors[name]["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (rule,) = [m for m in objects if m["kind"] == "PrometheusRule"]
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]
    assert [problem for m in objects for problem in strictly_valid(m)] == []


def test_prometheus_operator_objects_follow_the_value() -> None:
    assert operator_objects([], api=False) == []
    assert operator_objects(["prometheus.operatorResources=never"], api=True) == []
    assert len(operator_objects(["prometheus.operatorResources=always"], api=False)) == 12
    with_operator = operator_objects(["operator.enabled=true"], api=True)
    names = {m["metadata"]["name"] for m in with_operator if m["kind"] == "PodMonitor"}
    assert PREFIX + "operator" in names


def test_the_operator_never_renders_prometheus_operator_objects() -> None:
    """MasterTrade's operator applies only the kinds it owns: Helm renders the monitors."""
    body = {
        "apiVersion": "mastertrade.io/v1alpha1",
        "kind": "MasterTradeDeployment",
        "metadata": {"name": "mt", "namespace": "trading"},
        "spec": {"prometheus": {"scrapeInterval": "15s", "operatorResources": "always"}},
    }
    values = build_helm_values(parse_resource(copy.deepcopy(body)), "secret")
    assert values["prometheus"] == {"scrapeInterval": "15s", "operatorResources": "never"}
    assert {"Role", "RoleBinding"} <= set(OWNED)


def test_other_scrapers_may_be_let_in_on_every_metrics_port() -> None:
    peer = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    }
    for operator_mode in (False, True):
        values = {"networkPolicy": {"metricsFrom": [peer]}, "operator": {"enabled": operator_mode}}
        objects = by_kind_and_name(render(values=values))
        admitted = {
            name: [
                rule["ports"]
                for rule in policy["spec"].get("ingress", [])
                if rule.get("from") == [peer]
            ]
            for (kind, name), policy in objects.items()
            if kind == "NetworkPolicy"
        }
        if operator_mode:  # the operator renders the workloads' policies; Helm the operator's
            assert admitted[PREFIX + "operator"] == [[{"port": "metrics", "protocol": "TCP"}]]
            continue
        for workload in CATALOG.values():
            expected = (
                [[{"port": workload.ports[0].name, "protocol": "TCP"}]] if workload.metrics else []
            )
            assert admitted[PREFIX + workload.name] == expected, workload.name
        assert [problem for m in objects.values() if (problem := validation_problem(m))] == []


def test_every_job_named_in_a_rule_or_dashboard_is_a_scrape_job(
    default_render: list[Manifest],
) -> None:
    config = yaml.safe_load(files_of(default_render, "prometheus")["prometheus.yml"])
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    queries = [rule["expr"] for rule in rules_by_alert().values()]
    queries += [query for path in DASHBOARDS for query in dashboard_queries(path)]
    named = {name for query in queries for name in re.findall(r'job="([^"]+)"', query)}
    assert named  # the rules do name jobs
    assert named <= jobs, named - jobs
