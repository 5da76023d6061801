"""Writes MasterTrade's Grafana dashboards (charts/mastertrade/files/grafana/*.json).

The dashboards are data; this script is where they are written, so that the four share one
layout, one datasource variable (any Prometheus: the release's own, or a kube-prometheus-stack
one through the sidecar) and only the metric names the services export (the chart tests check
every query against the services' registries). Run `python scripts/grafana_dashboards.py` after
changing it and commit the JSON it writes.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "charts" / "mastertrade" / "files" / "grafana"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"


@dataclass
class Board:
    """One dashboard being laid out, panels placed left to right in rows of 24 columns."""

    uid: str
    title: str
    description: str
    tags: list[str]
    variables: list[dict[str, Any]] = field(default_factory=list)
    panels: list[dict[str, Any]] = field(default_factory=list)
    x: int = 0
    y: int = 0
    row_height: int = 0

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append(
            {"id": len(self.panels) + 1, "type": "row", "title": title, "collapsed": False,
             "panels": [], "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}}
        )  # fmt: skip
        self.y += 1

    def _newline(self) -> None:
        if self.x:
            self.y += self.row_height
            self.x, self.row_height = 0, 0

    def panel(
        self,
        kind: str,
        title: str,
        description: str,
        targets: list[tuple[str, str]],
        *,
        width: int = 12,
        height: int = 8,
        unit: str = "short",
        instant: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> None:
        if self.x + width > 24:
            self._newline()
        panel: dict[str, Any] = {
            "id": len(self.panels) + 1,
            "type": kind,
            "title": title,
            "description": description,
            "datasource": DATASOURCE,
            "gridPos": {"h": height, "w": width, "x": self.x, "y": self.y},
            "targets": [
                {
                    "datasource": DATASOURCE,
                    "refId": chr(ord("A") + i),
                    "expr": expr,
                    "legendFormat": legend,
                    "editorMode": "code",
                    "range": not instant,
                    "instant": instant,
                }
                for i, (expr, legend) in enumerate(targets)
            ],
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {},
        }
        if kind == "timeseries":
            panel["options"] = {"legend": {"displayMode": "list", "placement": "bottom"}}
        if kind == "table":
            panel["transformations"] = [{"id": "merge", "options": {}}]
        panel.update(extra or {})
        self.panels.append(panel)
        self.x += width
        self.row_height = max(self.row_height, height)

    def json(self) -> dict[str, Any]:
        datasource = {
            "name": "datasource", "label": "Prometheus", "type": "datasource",
            "query": "prometheus", "current": {}, "hide": 0, "refresh": 1,
            "regex": "", "skipUrlSync": False,
        }  # fmt: skip
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": ["mastertrade", *self.tags],
            "editable": False,
            "graphTooltip": 1,
            "id": None,
            "links": [
                {
                    "type": "dashboards",
                    "tags": ["mastertrade"],
                    "asDropdown": True,
                    "title": "MasterTrade",
                    "includeVars": False,
                    "keepTime": True,
                }
            ],
            "panels": self.panels,
            "refresh": "30s",
            "schemaVersion": 39,
            "time": {"from": "now-6h", "to": "now"},
            "timezone": "utc",
            "templating": {"list": [datasource, *self.variables]},
            "annotations": {"list": []},
            "version": 1,
        }


def up_mapping() -> dict[str, Any]:
    """Stat and state panels show 1/0 as UP/DOWN in green/red."""
    return {
        "fieldConfig": {
            "defaults": {
                "mappings": [
                    {"type": "value", "options": {
                        "0": {"text": "DOWN", "color": "red"}, "1": {"text": "UP", "color": "green"}
                    }}
                ],
                "thresholds": {"mode": "absolute", "steps": [
                    {"color": "red", "value": None}, {"color": "green", "value": 1}
                ]},
                "color": {"mode": "thresholds"},
            },
            "overrides": [],
        }
    }  # fmt: skip


def overview() -> Board:
    board = Board(
        "mastertrade-overview",
        "MasterTrade — System overview",
        "The 14 workloads' health, HTTP traffic, latency, resources and the broker backlog.",
        ["overview"],
        variables=[
            {"name": "service", "label": "Service", "type": "query", "datasource": DATASOURCE,
             "definition": "label_values(mastertrade_service_info, service)",
             "query": {"qryType": 1, "query": "label_values(mastertrade_service_info, service)",
                       "refId": "PrometheusVariableQueryEditor-VariableQuery"},
             "refresh": 2, "regex": "", "sort": 1, "multi": True, "includeAll": True,
             "allValue": ".*", "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
             "options": [], "hide": 0, "skipUrlSync": False}
        ],
    )  # fmt: skip
    service = 'service=~"$service"'
    board.row("Health")
    board.panel(
        "stat", "Pods answering, by workload",
        "Every scraped pod of each workload with metrics (services, Prometheus, Grafana, the "
        "operator): how many answer /metrics, and how many were found.",
        [("sum by (job) (up)", "{{job}} answering"), ("count by (job) (up)", "{{job}} found")],
        width=12, instant=True,
    )  # fmt: skip
    board.panel(
        "stat", "Infrastructure reachable",
        "PostgreSQL, RabbitMQ and Redis, as the services that use them see them (the lowest "
        "over all services).",
        [("min by (dependency) (mastertrade_dependency_up)", "{{dependency}}")],
        width=12, instant=True, extra=up_mapping(),
    )  # fmt: skip
    board.panel(
        "state-timeline", "Scrape health by workload", "1 when a workload's pods all answer.",
        [("min by (job) (up)", "{{job}}")], width=24, extra=up_mapping(),
    )  # fmt: skip
    board.panel(
        "table", "Service versions", "Version each service reports.",
        [(f"max by (service, version) (mastertrade_service_info{{{service}}})", "")],
        width=24, height=6, instant=True,
    )  # fmt: skip
    board.row("HTTP")
    requests = f"mastertrade_http_requests_total{{{service}}}"
    board.panel(
        "timeseries", "Request rate by service", "Requests answered per second.",
        [(f"sum by (service) (rate({requests}[{RATE}]))", "{{service}}")], unit="reqps",
    )  # fmt: skip
    errors = f'mastertrade_http_requests_total{{{service}, status=~"5.."}}'
    board.panel(
        "timeseries", "Error ratio (5xx) by service", "Share of answers that were server errors.",
        [(f"sum by (service) (rate({errors}[{RATE}])) / sum by (service) "
          f"(rate({requests}[{RATE}]))", "{{service}}")],
        unit="percentunit",
    )  # fmt: skip
    for quantile in ("0.5", "0.99"):
        board.panel(
            "timeseries", f"Latency p{float(quantile) * 100:g} by service",
            "Time to answer, health and metrics routes included.",
            [(f"histogram_quantile({quantile}, sum by (service, le) (rate("
              f"mastertrade_http_request_duration_seconds_bucket{{{service}}}[{RATE}])))",
              "{{service}}")],
            unit="s",
        )  # fmt: skip
    board.row("Resources")
    board.panel(
        "timeseries", "CPU by workload", "CPU seconds per second used, summed over its pods.",
        [(f"sum by (job) (rate(process_cpu_seconds_total[{RATE}]))", "{{job}}")], unit="short",
    )  # fmt: skip
    board.panel(
        "timeseries", "Memory by workload", "Resident memory, summed over its pods.",
        [("sum by (job) (process_resident_memory_bytes)", "{{job}}")], unit="bytes",
    )  # fmt: skip
    board.panel(
        "timeseries", "Open file descriptors by pod", "Sockets and files each pod holds open.",
        [("max by (job, pod) (process_open_fds)", "{{pod}}")],
    )  # fmt: skip
    board.panel(
        "timeseries", "Broker backlog by queue",
        "Messages ready in each queue a service consumes (measured at each scrape).",
        [("max by (queue) (mastertrade_queue_messages)", "{{queue}}")],
    )  # fmt: skip
    board.row("Dependencies")
    board.panel(
        "state-timeline", "Dependency status over time",
        "1 when the service reaches the dependency.",
        [(f"max by (service, dependency) (mastertrade_dependency_up{{{service}}})",
          "{{service}} → {{dependency}}")],
        width=24, height=10, extra=up_mapping(),
    )  # fmt: skip
    return board


def trading() -> Board:
    board = Board(
        "mastertrade-trading",
        "MasterTrade — Trading",
        "Equity curve, P&L, drawdown against its limit, circuit breaker, positions, orders, fills, "
        "risk decisions and strategies (from the risk manager's view of PostgreSQL).",
        ["trading"],
    )
    equity = "max by (environment) (mastertrade_equity_usdt)"
    board.row("Account")
    board.panel(
        "stat",
        "Equity",
        "Cash plus positions at market.",
        [(equity, "{{environment}}")],
        width=6,
        unit="currencyUSD",
        instant=True,
    )
    board.panel("stat", "P&L over the time range", "Equity now minus equity at the range start.",
                [(f"{equity} - max by (environment) (mastertrade_equity_usdt offset $__range)",
                  "{{environment}}")], width=6, unit="currencyUSD", instant=True)  # fmt: skip
    board.panel(
        "stat", "Drawdown / limit",
        "Drawdown from the equity peak as a share of MAX_PORTFOLIO_DRAWDOWN_PCT: at 100% the "
        "circuit breaker trips.",
        [("max by (environment) (mastertrade_drawdown_ratio) / max by (environment) "
          "(mastertrade_drawdown_limit_ratio)", "{{environment}}")],
        width=6, unit="percentunit", instant=True,
    )  # fmt: skip
    breaker = {
        "fieldConfig": {"defaults": {
            "mappings": [{"type": "value", "options": {
                "0": {"text": "closed", "color": "green"}, "1": {"text": "TRIPPED", "color": "red"}
            }}],
            "color": {"mode": "thresholds"},
            "thresholds": {"mode": "absolute", "steps": [
                {"color": "green", "value": None}, {"color": "red", "value": 1}]},
        }, "overrides": []}
    }  # fmt: skip
    board.panel("stat", "Circuit breaker", "Tripped: only reducing orders pass until reset.",
                [("max by (environment) (mastertrade_circuit_breaker_open)", "{{environment}}")],
                width=6, instant=True, extra=breaker)  # fmt: skip
    board.panel(
        "timeseries", "Equity curve", "Equity, cash, positions at market and the equity peak.",
        [(equity, "equity {{environment}}"),
         ("max by (environment) (mastertrade_cash_usdt)", "cash {{environment}}"),
         ("max by (environment) (mastertrade_positions_value_usdt)", "positions {{environment}}"),
         ("max by (environment) (mastertrade_equity_peak_usdt)", "peak {{environment}}")],
        width=16, height=9, unit="currencyUSD",
    )  # fmt: skip
    board.panel(
        "timeseries", "Drawdown and its limit", "The breaker trips where the two lines meet.",
        [("max by (environment) (mastertrade_drawdown_ratio)", "drawdown {{environment}}"),
         ("max by (environment) (mastertrade_drawdown_limit_ratio)", "limit {{environment}}")],
        width=8, height=9, unit="percentunit",
    )  # fmt: skip
    board.row("Positions")
    board.panel(
        "table", "Open positions", "Quantity held and its cost (quantity x average price).",
        [("max by (environment, symbol) (mastertrade_position_quantity)", "quantity"),
         ("max by (environment, symbol) (mastertrade_position_cost_usdt)", "cost")],
        width=16, instant=True,
    )  # fmt: skip
    board.panel("stat", "Symbols held", "Open positions (MAX_OPEN_POSITIONS caps them).",
                [("max by (environment) (mastertrade_open_positions)", "{{environment}}")],
                width=8, instant=True)  # fmt: skip
    board.row("Orders and fills")
    board.panel(
        "timeseries",
        "Orders by status",
        "Orders stored, by status.",
        [("max by (status) (mastertrade_orders)", "{{status}}")],
    )
    board.panel(
        "timeseries",
        "Orders per 5 minutes by status",
        "New orders in each status.",
        [("max by (status) (delta(mastertrade_orders[5m]))", "{{status}}")],
    )
    board.panel(
        "timeseries",
        "Fills per 5 minutes by side",
        "Fills recorded.",
        [("max by (side) (delta(mastertrade_fills[5m]))", "{{side}}")],
    )
    board.panel("timeseries", "Traded notional per 5 minutes", "Price x quantity filled.",
                [("max by (side) (delta(mastertrade_fill_notional_usdt[5m]))", "{{side}}")],
                unit="currencyUSD")  # fmt: skip
    board.row("Risk and strategies")
    board.panel(
        "timeseries",
        "Risk decisions per 5 minutes",
        "Approved, resized and rejected.",
        [("max by (outcome) (delta(mastertrade_risk_decisions[5m]))", "{{outcome}}")],
    )
    board.panel(
        "timeseries", "Strategies by status",
        "Generated, backtested, active, paused and retired strategies.",
        [("max by (status) (mastertrade_strategies)", "{{status}}")],
    )  # fmt: skip
    board.row("Strategy performance")
    board.panel(
        "table", "Goals: target and achieved",
        "What the active strategies achieve in their backtests against each goal (monthly "
        "return, max drawdown, win rate); met is 1 when the goal is met.",
        [("max by (goal) (mastertrade_strategy_goal_target)", "target"),
         ("max by (goal) (mastertrade_strategy_goal_achieved)", "achieved"),
         ("max by (goal) (mastertrade_strategy_goal_met)", "met")],
        width=12, instant=True,
    )  # fmt: skip
    board.panel(
        "timeseries", "Signals per minute by side", "Signals the active strategies published.",
        [(f"sum by (side) (rate(mastertrade_strategy_signals_total[{RATE}])) * 60", "{{side}}")],
        width=12,
    )  # fmt: skip
    board.panel(
        "timeseries", "Generation", "Share of the current run's shards done; active strategies.",
        [("min(mastertrade_strategy_run_progress_ratio)", "run progress"),
         ("max(mastertrade_strategy_active)", "active strategies")],
        width=12,
    )  # fmt: skip
    board.panel(
        "timeseries", "Candidates backtested per hour", "Stored by the generation runs.",
        [(f"sum(rate(mastertrade_strategy_candidates_backtested_total[{RATE}])) * 3600",
          "candidates/h")], width=12,
    )  # fmt: skip
    return board


def market_data() -> Board:
    board = Board(
        "mastertrade-market-data",
        "MasterTrade — Market data",
        "What the market data service takes in, from which sources, how fresh, and what it "
        "writes; the arbitrage service's quotes and opportunities.",
        ["market-data"],
    )
    board.row("Ingest")
    board.panel(
        "timeseries", "Events accepted per second", "Candles, trades and tickers, by source.",
        [(f"sum by (source, kind) (rate(mastertrade_market_data_events_total[{RATE}]))",
          "{{source}} {{kind}}")], unit="ops",
    )  # fmt: skip
    board.panel(
        "timeseries", "Lag: seconds since the last event", "Over 5 minutes fires an alert.",
        [("time() - max by (source, kind) "
          "(mastertrade_market_data_last_event_timestamp_seconds)", "{{source}} {{kind}}")],
        unit="s",
    )  # fmt: skip
    board.panel(
        "timeseries", "Messages rejected per second", "Malformed, duplicate or out of order.",
        [(f"sum by (source, reason) (rate(mastertrade_market_data_rejected_total[{RATE}]))",
          "{{source}} {{reason}}")], unit="ops",
    )  # fmt: skip
    board.panel(
        "timeseries", "Rows written per second", "Inserted or changed in PostgreSQL, by table.",
        [(f"sum by (table) (rate(mastertrade_market_data_rows_written_total[{RATE}]))",
          "{{table}}")], unit="ops",
    )  # fmt: skip
    board.row("Sources")
    board.panel(
        "table", "Sources and collectors", "Which are on (1) or off (0), and which are connected.",
        [("max by (collector) (mastertrade_market_data_collector_enabled)", "enabled"),
         ("max by (source) (mastertrade_market_data_source_connected)", "connected")],
        width=8, instant=True,
    )  # fmt: skip
    board.panel(
        "timeseries", "Reconnects", "Live-stream reconnections, by source and reason.",
        [("sum by (source, reason) (increase(mastertrade_market_data_reconnects_total"
          f"[{RATE}]))", "{{source}} {{reason}}")], width=8,
    )  # fmt: skip
    board.panel(
        "timeseries", "Binance request weight (1 min)", "X-MBX-USED-WEIGHT-1M; Binance caps it.",
        [("max(mastertrade_binance_used_weight_1m)", "used weight")], width=8,
    )  # fmt: skip
    board.panel(
        "timeseries", "Write errors and backfills", "Batches kept for retry; candles backfilled.",
        [(f"sum(rate(mastertrade_market_data_write_errors_total[{RATE}]))", "write errors/s"),
         (f"sum by (source) (rate(mastertrade_market_data_backfilled_candles_total[{RATE}]))",
          "backfilled/s {{source}}")], width=24,
    )  # fmt: skip
    board.row("Arbitrage")
    board.panel(
        "timeseries", "Quotes per second", "Book tickers the arbitrage service took, by outcome.",
        [(f"sum by (outcome) (rate(mastertrade_arbitrage_quotes_total[{RATE}]))",
          "{{outcome}}")], unit="ops",
    )  # fmt: skip
    board.panel(
        "timeseries", "Opportunities per minute", "Found and reported, by kind.",
        [(f"sum by (kind) (rate(mastertrade_arbitrage_opportunities_total[{RATE}])) * 60",
          "{{kind}}")],
    )  # fmt: skip
    return board


def operator() -> Board:
    board = Board(
        "mastertrade-operator",
        "MasterTrade — Operator",
        "The operator's reconciles, their time, errors, the objects it keeps and the applies it "
        "makes (drift corrections among them).",
        ["operator"],
    )
    board.row("Reconciles")
    board.panel(
        "timeseries", "Reconciles per minute", "By trigger and result.",
        [(f"sum by (trigger, result) (rate(mastertrade_operator_reconciles_total[{RATE}])) * 60",
          "{{trigger}} {{result}}")],
    )  # fmt: skip
    board.panel(
        "timeseries", "Reconcile time", "p50 and p99 of one reconcile.",
        [(f"histogram_quantile({q}, sum by (le) (rate("
          f"mastertrade_operator_reconcile_duration_seconds_bucket[{RATE}])))", f"p{p}")
         for q, p in (("0.5", "50"), ("0.99", "99"))],
        unit="s",
    )  # fmt: skip
    board.panel(
        "timeseries", "Errors per minute", "Failed reconciles, by reason.",
        [(f"sum by (reason) (rate(mastertrade_operator_errors_total[{RATE}])) * 60",
          "{{reason}}")],
    )  # fmt: skip
    board.panel(
        "stat", "Objects kept", "Objects the operator keeps for each MasterTradeDeployment.",
        [("max by (namespace, name) (mastertrade_operator_managed_objects)",
          "{{namespace}}/{{name}}")], instant=True,
    )  # fmt: skip
    board.row("Applies")
    board.panel(
        "timeseries", "Drift corrections", "Objects re-applied because someone changed them.",
        [('sum by (kind) (increase(mastertrade_operator_applies_total{reason="drifted"}'
          f"[{RATE}]))", "{{kind}}")],
    )  # fmt: skip
    board.panel(
        "timeseries", "Applies by reason", "missing (created), changed (spec) or drifted.",
        [(f"sum by (reason) (increase(mastertrade_operator_applies_total[{RATE}]))",
          "{{reason}}")],
    )  # fmt: skip
    board.panel(
        "state-timeline", "Operator up", "The operator pod answers /metrics.",
        [('max(up{job="mastertrade-operator"})', "operator")], width=24, height=5,
        extra=up_mapping(),
    )  # fmt: skip
    return board


BOARDS = {
    "mastertrade-overview.json": overview,
    "mastertrade-trading.json": trading,
    "mastertrade-market-data.json": market_data,
    "mastertrade-operator.json": operator,
}


def render(build: Any) -> str:
    return json.dumps(build().json(), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    for name, build in BOARDS.items():
        (OUT / name).write_text(render(build))
        print(f"wrote {OUT / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
