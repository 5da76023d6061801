"""The paper trading loop in the cluster (issue 14's last check): a fresh release on the real
node, with a history small enough for the first batch to finish in minutes (values-trading.yaml),
runs candles -> strategies -> signals -> risk decisions -> orders -> paper fills by itself, within
a bounded time; every fill has its order and its risk decision, the paper ledger adds up, and
Prometheus in the cluster has the trading series of the Pods. The node's CPU and memory (the
kubelet's /stats/summary) are figures: with no release (idle) and while trading.

Its own namespace and volumes: it runs before or after test_chart and test_operator."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helm import CHART
from tests.node.cluster import NodeCluster, wait_for
from tests.node.conftest import FIGURES
from tests.node.test_chart import VALUES, WORKLOADS, restricted_namespace, wait_all_ready

pytestmark = pytest.mark.node

NAMESPACE = "mastertrade-trading"
RELEASE = "mt"
PREFIX = f"{RELEASE}-mastertrade"
TRADING_VALUES = Path(__file__).with_name("values-trading.yaml")
LOOP_TIMEOUT = 900  # install Ready to the first fill, on a loaded 2-CPU node


def node_usage(cluster: NodeCluster, samples: int = 5, every: float = 10.0) -> dict[str, Any]:
    """The node's CPU (cores, mean of `samples` readings of the kubelet's rate) and memory
    (working set, GiB) from its /stats/summary, read through the API server."""
    (node,) = cluster.get("nodes")["items"]
    path = f"/api/v1/nodes/{node['metadata']['name']}/proxy/stats/summary"
    cpu, memory = [], []
    for index in range(samples):
        summary = json.loads(cluster.kubectl("get", "--raw", path))["node"]
        cpu.append(summary["cpu"]["usageNanoCores"] / 1e9)
        memory.append(summary["memory"]["workingSetBytes"] / 2**30)
        if index < samples - 1:
            time.sleep(every)
    return {"cpu_cores": round(sum(cpu) / len(cpu), 2), "cpu_cores_max": round(max(cpu), 2),
            "memory_gib": round(max(memory), 2)}  # fmt: skip


def psql(cluster: NodeCluster, sql: str) -> str:
    return cluster.kubectl("exec", "-n", NAMESPACE, f"{PREFIX}-postgres-0", "-c", "postgres",
                           "--", "psql", "-v", "ON_ERROR_STOP=1", "-U", "mastertrade", "-d",
                           "mastertrade", "-tAc", sql).strip()  # fmt: skip


def count(cluster: NodeCluster, sql: str) -> int:
    try:
        return int(psql(cluster, sql) or 0)
    except RuntimeError:  # PostgreSQL restarting, a table not there yet
        return 0


@pytest.fixture(scope="module")
def trading(cluster: NodeCluster) -> Iterator[NodeCluster]:
    FIGURES["node_idle_no_release"] = node_usage(cluster)
    restricted_namespace(cluster, NAMESPACE)
    started = time.monotonic()
    cluster.helm("install", RELEASE, str(CHART), "-n", NAMESPACE, "-f", str(VALUES),
                 "-f", str(TRADING_VALUES), "--timeout", "15m")  # fmt: skip
    wait_all_ready(cluster, NAMESPACE, WORKLOADS)
    FIGURES["trading_install_to_all_ready_s"] = round(time.monotonic() - started, 1)
    try:
        yield cluster
    finally:
        cluster.helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout", "10m")


def test_the_paper_trading_loop_runs_in_the_cluster(trading: NodeCluster) -> None:
    started = time.monotonic()
    stages = {
        "candles": "SELECT count(*) FROM candles",
        "active_strategies": "SELECT count(*) FROM strategies WHERE status = 'active'",
        "risk_decisions": "SELECT count(*) FROM risk_decisions",
        "fills": "SELECT count(*) FROM fills",
    }
    reached: dict[str, float] = {}
    FIGURES["trading_first_row_after_ready_s"] = reached  # filled in as the stages pass
    for stage, sql in stages.items():
        wait_for(lambda sql=sql: count(trading, sql) > 0,
                 max(1.0, LOOP_TIMEOUT - (time.monotonic() - started)),
                 f"{stage} in PostgreSQL", every=5)  # fmt: skip
        reached[stage] = round(time.monotonic() - started, 1)

    # One statement, one snapshot: every fill with its order and an approving decision
    orphans = psql(
        trading,
        """
        SELECT count(*) FROM fills f
        LEFT JOIN orders o ON o.client_order_id = f.client_order_id
        LEFT JOIN risk_decisions d ON d.client_order_id = f.client_order_id
        WHERE o.client_order_id IS NULL OR o.environment <> 'paper'
           OR d.outcome NOT IN ('approved', 'resized') OR d.outcome IS NULL""",
    )
    assert orphans == "0", "fills without an order or an approving risk decision"

    # The paper ledger in one snapshot: cash is the initial balance plus what sells brought,
    # minus what buys cost and the fees (in the quote asset); a position is what was bought
    # minus what was sold
    ledger = psql(
        trading,
        """
        WITH flows AS (
            SELECT o.symbol,
                   sum(CASE o.side WHEN 'buy' THEN f.quantity ELSE -f.quantity END) AS net,
                   sum(CASE o.side WHEN 'buy' THEN -f.price * f.quantity
                                   ELSE f.price * f.quantity END) AS cash_flow,
                   sum(f.fee) AS fees, count(DISTINCT f.fee_asset) AS fee_assets,
                   min(f.fee_asset) AS fee_asset
            FROM fills f JOIN orders o USING (client_order_id) GROUP BY o.symbol)
        SELECT json_build_object(
            'flows', (SELECT json_agg(flows) FROM flows),
            'positions', (SELECT json_object_agg(symbol, quantity) FROM positions
                          WHERE environment = 'paper'),
            'cash', (SELECT free + locked FROM balances
                     WHERE environment = 'paper' AND asset = 'USDT'),
            'locked_orders', (SELECT count(*) FROM orders WHERE environment = 'paper'
                              AND status IN ('submitted', 'partially_filled')))""",
    )
    found = json.loads(ledger, parse_float=Decimal)  # exact: NUMERIC as JSON numbers
    settings = yaml.safe_load((CHART / "values.yaml").read_text())["settings"]
    initial = Decimal(str(settings["trading"]["PAPER_TRADING_INITIAL_BALANCE"]))
    flows = found["flows"]
    assert all(f["fee_assets"] == 1 and f["fee_asset"] == "USDT" for f in flows), flows
    expected_cash = initial + sum(Decimal(str(f["cash_flow"])) - Decimal(str(f["fees"]))
                                  for f in flows)  # fmt: skip
    assert found["locked_orders"] == 0, found  # market orders only: nothing rests
    assert Decimal(str(found["cash"])) == expected_cash, found
    positions = {k: Decimal(str(v)) for k, v in (found["positions"] or {}).items()}
    for flow in flows:
        assert positions.get(flow["symbol"], Decimal(0)) == Decimal(str(flow["net"])), found

    FIGURES["trading_fills_checked"] = count(trading, "SELECT count(*) FROM fills")
    FIGURES["node_while_trading"] = node_usage(trading)


def prometheus_query(cluster: NodeCluster, query: str) -> list[dict[str, Any]]:
    service = cluster.get("service", f"{PREFIX}-prometheus", "-n", NAMESPACE)
    url = (f"http://{service['spec']['clusterIP']}:9090/api/v1/query?"
           + urllib.parse.urlencode({"query": query}))  # fmt: skip
    with urllib.request.urlopen(url, timeout=10) as response:
        result: list[dict[str, Any]] = json.load(response)["data"]["result"]
    return result


def test_prometheus_in_the_cluster_has_the_trading_series(trading: NodeCluster) -> None:
    """The series of the loop, scraped from the Pods Prometheus found itself: signals from the
    strategy service, decisions, fills and equity from the risk manager, each from a real Pod."""
    pods = {p["metadata"]["name"] for p in trading.get("pods", "-n", NAMESPACE)["items"]}
    queries = {
        "mastertrade_strategy_signals_total": "strategy-service",
        "mastertrade_risk_decisions": "risk-manager",
        'mastertrade_fills{side="buy"}': "risk-manager",
        "mastertrade_equity_usdt": "risk-manager",
    }

    def present() -> bool:
        for query, job in queries.items():
            series = prometheus_query(trading, query)
            if not any(s["metric"].get("job") == job and s["metric"].get("pod") in pods
                       and Decimal(s["value"][1]) > 0 for s in series):  # fmt: skip
                return False
        return True

    try:
        wait_for(present, 180, "the trading series in Prometheus", every=5)
    except AssertionError:
        raise AssertionError({q: prometheus_query(trading, q) for q in queries}) from None


def test_prometheus_discovers_pods_only_as_its_role_allows(trading: NodeCluster) -> None:
    """Pod discovery goes through the chart's Role: without its RoleBinding the API server
    answers 403, which Prometheus' log shows (the stand-in keeps the last targets meanwhile)."""
    binding = f"{PREFIX}-prometheus"
    saved = trading.get("rolebinding", binding, "-n", NAMESPACE)
    trading.kubectl("delete", "rolebinding", binding, "-n", NAMESPACE)

    def logged_403() -> bool:
        log = trading.kubectl("logs", f"deployment/{PREFIX}-prometheus", "-n", NAMESPACE)
        return "403" in log and "forbidden" in log.lower()

    try:
        wait_for(logged_403, 120, "a 403 from pod discovery in Prometheus' log", every=3)
    finally:
        for key in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
            saved["metadata"].pop(key, None)
        trading.kubectl("apply", "-f", "-", stdin=json.dumps(saved))
