"""The paper trading loop in the cluster (issue 14): a fresh release on the real node, with a
history small enough for the first batch to finish in minutes (values-trading.yaml), runs
candles -> strategies -> signals -> risk decisions -> orders -> paper fills.

The simulated market is a random walk, and a generation activates only candidates that made
money out of sample by more than luck explains (a positive Sharpe ratio and return, and a
deflated Sharpe ratio of at least STRATEGY_MIN_CONFIDENCE), so a first batch should activate
none (a run once failed so, before the deflation, when none made money). Then the test does
what a user would: it activates the backtested strategies that traded most, through the
gateway's Service and the strategy service's admin API, with the admin token whose hashes the
test put in the release's API keys Secret. What it checks is the way from a generated strategy
to a fill, whoever activated it.

Checked in the cluster's PostgreSQL: candles, a finished generation, risk decisions and fills;
after the market is stopped and the books settle, every signal decided once and every approved
one one order and at most one fill, the paper ledger replayed from the initial balance (never
below zero, ending exactly at the stored cash and positions) and the stored equity exactly cash
plus positions at the marks in Redis (tests/e2e/books.py, exact decimals). Checked in
Prometheus (its HTTP API through its Service): the trading series of every trading Pod, and
pod discovery refused (403) without its RoleBinding. The node's CPU and memory (the kubelet's
/stats/summary) with no release, while trading and with the market stopped, and the release's
Pods' own in the last two, are figures.

Its own namespace and volumes: it runs after test_chart and test_operator."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from mastertrade.core.prices import book_key, parse_book
from tests.e2e.books import Books, check_equity, check_ledger, check_orders
from tests.helm import CHART
from tests.node.cluster import NodeCluster, wait_for
from tests.node.conftest import FIGURES
from tests.node.test_chart import VALUES, WORKLOADS, pod_of, restricted_namespace, wait_all_ready

pytestmark = pytest.mark.node

NAMESPACE = "mastertrade-trading"
RELEASE = "mt"
PREFIX = f"{RELEASE}-mastertrade"
TRADING_VALUES = Path(__file__).with_name("values-trading.yaml")
PROFILE = yaml.safe_load(TRADING_VALUES.read_text())
API_KEYS_SECRET = PROFILE["apiKeys"]["existingSecret"]
MAX_ACTIVE = int(PROFILE["settings"]["strategy"]["MAX_ACTIVE_STRATEGIES"])
START = Decimal(
    str(yaml.safe_load((CHART / "values.yaml").read_text())["settings"]["trading"]
        ["PAPER_TRADING_INITIAL_BALANCE"])
)  # fmt: skip
# Generous for a 2-CPU node shared with other work: each stage took 0.2 s to 140 s when measured
GENERATION_TIMEOUT = 900
FILLS_TIMEOUT = 900
SETTLE_TIMEOUT = 300
STRATEGIES = "/api/strategy-service/api/v1/strategies"


def node_usage(
    cluster: NodeCluster, namespace: str | None = None, samples: int = 5, every: float = 10.0
) -> dict[str, Any]:
    """The node's CPU (cores, mean and highest of `samples` readings of the kubelet's rate) and
    memory (highest working set, GiB) from its /stats/summary, read through the API server; with
    `namespace`, the same for the sum of that namespace's Pods (the node's figures are the whole
    machine's here, other work on it included; the Pods' are the release's own)."""
    (node,) = cluster.get("nodes")["items"]
    path = f"/api/v1/nodes/{node['metadata']['name']}/proxy/stats/summary"
    readings: dict[str, list[float]] = {"cpu": [], "memory": [], "pods_cpu": [], "pods_memory": []}
    for index in range(samples):
        summary = json.loads(cluster.kubectl("get", "--raw", path))
        readings["cpu"].append(summary["node"]["cpu"]["usageNanoCores"] / 1e9)
        readings["memory"].append(summary["node"]["memory"]["workingSetBytes"] / 2**30)
        pods = [p for p in summary.get("pods", []) if p["podRef"]["namespace"] == namespace]
        readings["pods_cpu"].append(
            sum(p.get("cpu", {}).get("usageNanoCores", 0) for p in pods) / 1e9
        )
        readings["pods_memory"].append(
            sum(p.get("memory", {}).get("workingSetBytes", 0) for p in pods) / 2**30
        )
        if index < samples - 1:
            time.sleep(every)
    found = {"cpu_cores": mean(readings["cpu"]), "cpu_cores_max": round(max(readings["cpu"]), 2),
             "memory_gib": round(max(readings["memory"]), 2)}  # fmt: skip
    if namespace is not None:
        found |= {"pods_cpu_cores": mean(readings["pods_cpu"]),
                  "pods_cpu_cores_max": round(max(readings["pods_cpu"]), 2),
                  "pods_memory_gib": round(max(readings["pods_memory"]), 2)}  # fmt: skip
    return found


def mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 2)


def psql(cluster: NodeCluster, sql: str) -> str:
    return cluster.kubectl("exec", "-n", NAMESPACE, f"{PREFIX}-postgres-0", "-c", "postgres",
                           "--", "psql", "-v", "ON_ERROR_STOP=1", "-U", "mastertrade", "-d",
                           "mastertrade", "-tAc", sql).strip()  # fmt: skip


def count(cluster: NodeCluster, sql: str) -> int:
    try:
        return int(psql(cluster, sql) or 0)
    except RuntimeError:  # PostgreSQL restarting, a table not there yet
        return 0


class Gateway:
    """Calls through the API gateway's Service with the release's admin key."""

    def __init__(self, cluster: NodeCluster, token: str) -> None:
        service = cluster.get("service", f"{PREFIX}-api-gateway", "-n", NAMESPACE)
        self.base = f"http://{service['spec']['clusterIP']}:8080"
        self.token = token

    def call(self, method: str, path: str) -> tuple[int, Any]:
        request = urllib.request.Request(
            self.base + path, method=method, headers={"Authorization": f"Bearer {self.token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return int(response.status), json.load(response)
        except urllib.error.HTTPError as error:
            with error:
                return int(error.code), json.loads(error.read() or b"null")


@pytest.fixture(scope="module")
def admin_token() -> str:
    return secrets.token_hex(32)


@pytest.fixture(scope="module")
def trading(cluster: NodeCluster, admin_token: str) -> Iterator[NodeCluster]:
    FIGURES["node_idle_no_release"] = node_usage(cluster)
    restricted_namespace(cluster, NAMESPACE)
    # The user's API keys Secret: only hashes of the token, never the token itself
    digest = hashlib.sha256(admin_token.encode()).hexdigest()
    cluster.kubectl("create", "secret", "generic", API_KEYS_SECRET, "-n", NAMESPACE,
                    f"--from-literal=GATEWAY_API_KEYS=node-test:admin:sha256:{digest}",
                    f"--from-literal=STRATEGY_ADMIN_API_KEY_SHA256={digest}")  # fmt: skip
    started = time.monotonic()
    cluster.helm("install", RELEASE, str(CHART), "-n", NAMESPACE, "-f", str(VALUES),
                 "-f", str(TRADING_VALUES), "--timeout", "15m")  # fmt: skip
    wait_all_ready(cluster, NAMESPACE, WORKLOADS)
    FIGURES["trading_install_to_all_ready_s"] = round(time.monotonic() - started, 1)
    try:
        yield cluster
    finally:
        cluster.helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout", "10m")


def first_run_done(cluster: NodeCluster) -> bool:
    statuses = psql(cluster, "SELECT string_agg(status, ',') FROM generation_runs").split(",")
    assert "failed" not in statuses, "the first batch failed"
    return "done" in statuses


def activate_by_hand(gateway: Gateway) -> list[int]:
    """Fill the free places of the active set with the backtested strategies that traded most
    out of sample, through the admin API as a user would; the ids activated."""
    status, active = gateway.call("GET", f"{STRATEGIES}?status=active")
    assert status == 200, active
    status, backtested = gateway.call("GET", f"{STRATEGIES}?status=backtested&limit=500")
    assert status == 200, backtested
    busiest = sorted(backtested, key=lambda s: (-(s["trades"] or 0), s["id"]))
    activated = []
    for strategy in busiest[: MAX_ACTIVE - len(active)]:
        status, answer = gateway.call(
            "POST", f"/api/strategy-service/api/v1/admin/strategies/{strategy['id']}/activate"
        )
        assert status == 200 and answer["outcome"] == "activated", (status, answer)
        activated.append(int(strategy["id"]))
    return activated


def test_the_paper_trading_loop_runs_in_the_cluster(trading: NodeCluster, admin_token: str) -> None:
    started = time.monotonic()
    reached: dict[str, float] = {}
    FIGURES["trading_after_ready_s"] = reached  # filled in as the stages pass

    def stage(name: str, done: Any, timeout: float) -> None:
        wait_for(done, timeout, name, every=5)
        reached[name] = round(time.monotonic() - started, 1)

    stage("candles", lambda: count(trading, "SELECT count(*) FROM candles") > 0, 300)
    stage("first_generation_done", lambda: first_run_done(trading), GENERATION_TIMEOUT)
    chosen = count(trading, "SELECT count(*) FROM strategies WHERE status = 'active'")
    gateway = Gateway(trading, admin_token)
    # Without the admin key the route is refused, whatever the strategy
    anonymous = urllib.request.Request(
        f"{gateway.base}/api/strategy-service/api/v1/admin/strategies/1/activate", method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(anonymous, timeout=30)
    refused.value.close()
    assert refused.value.code == 401
    by_hand = activate_by_hand(gateway)
    FIGURES["trading_strategies_active"] = {"chosen_by_the_batch": chosen, "by_hand": by_hand}
    status, active = gateway.call("GET", f"{STRATEGIES}?status=active")
    assert status == 200 and 1 <= len(active) <= MAX_ACTIVE, active
    assert set(by_hand) <= {s["id"] for s in active}

    stage("risk_decisions", lambda: count(trading, "SELECT count(*) FROM risk_decisions") > 0,
          FILLS_TIMEOUT)  # fmt: skip
    stage("fills", lambda: count(trading, "SELECT count(*) FROM fills") > 0,
          FILLS_TIMEOUT - (time.monotonic() - started) + reached["risk_decisions"])  # fmt: skip
    FIGURES["node_while_trading"] = node_usage(trading, NAMESPACE)


def prometheus_query(cluster: NodeCluster, query: str) -> list[dict[str, Any]]:
    service = cluster.get("service", f"{PREFIX}-prometheus", "-n", NAMESPACE)
    url = (f"http://{service['spec']['clusterIP']}:9090/api/v1/query?"
           + urllib.parse.urlencode({"query": query}))  # fmt: skip
    with urllib.request.urlopen(url, timeout=10) as response:
        result: list[dict[str, Any]] = json.load(response)["data"]["result"]
    return result


def test_prometheus_in_the_cluster_has_the_trading_series_of_every_trading_pod(
    trading: NodeCluster,
) -> None:
    """Each series scraped from the Pod that makes it, which Prometheus found itself: candles
    from the market data service, signals from the strategy service, the executor's backlog,
    decisions, fills and equity from the risk manager."""
    pods = {p["metadata"]["name"] for p in trading.get("pods", "-n", NAMESPACE)["items"]}
    queries = {
        "mastertrade_market_data_rows_written_total": ("market-data-service", True),
        "mastertrade_strategy_signals_total": ("strategy-service", True),
        'mastertrade_queue_messages{service="order_executor"}': ("order-executor", False),
        "mastertrade_risk_decisions": ("risk-manager", True),
        "mastertrade_fills": ("risk-manager", True),
        "mastertrade_equity_usdt": ("risk-manager", True),
    }

    def present(query: str, job: str, positive: bool) -> bool:
        return any(s["metric"].get("job") == job and s["metric"].get("pod") in pods
                   and (Decimal(s["value"][1]) > 0 or not positive)
                   for s in prometheus_query(trading, query))  # fmt: skip

    try:
        wait_for(lambda: all(present(q, *how) for q, how in queries.items()), 180,
                 "the trading series in Prometheus", every=5)  # fmt: skip
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


# One statement, one snapshot of the books, numbers as text so that they stay exact
BOOKS_SQL = """
SELECT json_build_object(
  'decisions', (SELECT coalesce(json_agg(json_build_object(
      'signal_id', signal_id, 'client_order_id', client_order_id,
      'approved_quantity', approved_quantity::text) ORDER BY decided_at), '[]')
      FROM risk_decisions),
  'orders', (SELECT coalesce(json_agg(json_build_object(
      'client_order_id', client_order_id, 'quantity', quantity::text, 'status', status,
      'environment', environment) ORDER BY created_at), '[]') FROM orders),
  'fills', (SELECT coalesce(json_agg(json_build_object(
      'id', f.id, 'client_order_id', f.client_order_id, 'price', f.price::text,
      'quantity', f.quantity::text, 'fee', f.fee::text, 'fee_asset', f.fee_asset,
      'side', o.side, 'symbol', o.symbol) ORDER BY f.id), '[]')
      FROM fills f JOIN orders o USING (client_order_id)),
  'cash', (SELECT (free + locked)::text FROM balances
           WHERE environment = 'paper' AND asset = 'USDT'),
  'positions', (SELECT coalesce(json_object_agg(symbol, quantity::text), '{}') FROM positions
                WHERE environment = 'paper'),
  'equity', (SELECT json_build_object('cash', cash::text, 'positions_value',
             positions_value::text, 'equity', equity::text, 'at', extract(epoch FROM updated_at))
             FROM account_equity WHERE environment = 'paper'),
  'now', extract(epoch FROM clock_timestamp()))
"""
NUMBERS = {"approved_quantity", "quantity", "price", "fee", "cash", "positions_value", "equity"}


def exact(row: dict[str, Any]) -> dict[str, Any]:
    return {k: Decimal(v) if k in NUMBERS and v is not None else v for k, v in row.items()}


def read_books(cluster: NodeCluster) -> tuple[Books, dict[str, Any]]:
    found = json.loads(psql(cluster, BOOKS_SQL))
    books = Books(
        [exact(r) for r in found["decisions"]], [exact(r) for r in found["orders"]],
        [exact(r) for r in found["fills"]], Decimal(found["cash"]),
        {symbol: Decimal(q) for symbol, q in found["positions"].items()},
        exact(found["equity"]) if found["equity"] else None,
    )  # fmt: skip
    return books, found


def settled(cluster: NodeCluster, quiet: float) -> float | None:
    """The database time once no decision came for `quiet` s and every order is finished."""
    row = json.loads(psql(cluster, """
        SELECT json_build_object(
          'last', (SELECT extract(epoch FROM max(decided_at)) FROM risk_decisions),
          'open', (SELECT count(*) FROM orders
                   WHERE status NOT IN ('filled', 'rejected', 'cancelled')),
          'now', extract(epoch FROM clock_timestamp()))"""))  # fmt: skip
    calm = row["last"] is None or row["now"] - row["last"] >= quiet
    return float(row["now"]) if calm and row["open"] == 0 else None


def valued_at(cluster: NodeCluster) -> float:
    """When the executor last stored the paper account's equity (database time, epoch s)."""
    found = psql(cluster, "SELECT extract(epoch FROM updated_at) FROM account_equity "
                 "WHERE environment = 'paper'")  # fmt: skip
    return float(found or 0)


def marks(cluster: NodeCluster, symbols: list[str]) -> dict[str, Decimal]:
    """Mid prices of the last quotes in the release's Redis, as the executor values them."""
    redis = pod_of(cluster, "redis", NAMESPACE)
    found = {}
    for symbol in symbols:
        lines = cluster.kubectl("exec", "-n", NAMESPACE, redis, "--", "redis-cli", "--raw",
                                "HGETALL", book_key(symbol)).split("\n")  # fmt: skip
        values = [line.strip() for line in lines if line.strip()]  # field, value, field, ...
        found[symbol] = parse_book(symbol, dict(zip(values[::2], values[1::2], strict=True))).mid
    return found


def test_the_paper_books_add_up_once_the_market_stops(trading: NodeCluster) -> None:
    """No candles, so no new signals: every signal settles, the executor values the books at the
    last quotes, and the books add up exactly."""
    deployment = f"{PREFIX}-market-data-service"
    trading.kubectl("scale", f"deployment/{deployment}", "-n", NAMESPACE, "--replicas=0")
    wait_for(lambda: not trading.get("pods", "-n", NAMESPACE, "-l",
                                     "app.kubernetes.io/component=market-data-service")["items"],
             300, "the market data Pods gone", every=2)  # fmt: skip
    calm = wait_for(lambda: settled(trading, 20.0), SETTLE_TIMEOUT, "the books settled", every=5)
    wait_for(lambda: valued_at(trading) > calm, 120, "a valuation after the books settled",
             every=2)  # fmt: skip
    books, found = read_books(trading)
    held = sorted(symbol for symbol, quantity in books.positions.items() if quantity)
    prices = marks(trading, held)

    assert books.fills, "no fill to check"
    assert all(f["fee_asset"] == "USDT" for f in books.fills), books.fills
    assert all(o["environment"] == "paper" for o in books.orders)
    check_orders(books, [d["signal_id"] for d in books.decisions])
    check_ledger(books, START)
    check_equity(books, prices)
    FIGURES["node_release_with_the_market_stopped"] = node_usage(trading, NAMESPACE)
    FIGURES["trading_books_checked"] = {
        "decisions": len(books.decisions), "orders": len(books.orders),
        "fills": len(books.fills), "cash": found["cash"], "equity": found["equity"]["equity"],
    }  # fmt: skip
