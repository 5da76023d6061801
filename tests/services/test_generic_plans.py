"""The risk manager's and the order executor's statements, planned as they run them: once per
connection, as generic plans that cannot see a parameter's value (`GENERIC_PLANS`). Each must
read by index what it needs, not a table's history: a generic plan once made the reconcile poll
walk every order ever traded, and the outbox prune every event kept.

Each statement is prepared on a database with a history in the tables the services read, and
its generic plan (EXPLAIN EXECUTE with every parameter unknown) may expect to read at most
MOST_ROWS rows from any scan, except below a LIMIT (a bounded page of the newest rows)."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from mastertrade.core.connections import PostgresConnector
from mastertrade.core.db import GENERIC_PLANS
from mastertrade.migrations.runner import migrate_database
from mastertrade_model.values import Dependency
from tests.services.trading import build_app

pytestmark = pytest.mark.infra

PACKAGES = ("mastertrade.risk", "mastertrade.execution")
SHARED_MODULES = ("mastertrade.core.outbox",)
HISTORY_ROWS = 20_000
MOST_ROWS = 1_000
STATEMENT = re.compile(r"\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\b")
SCANS = {"Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan"}
# The statements of the trading path: if the collector misses them, it collects nothing useful
MUST_FIND = {
    "mastertrade.risk.adapters.store.VIEW", "mastertrade.risk.adapters.store.WRITE",
    "mastertrade.execution.adapters.paper_batch.READ",
    "mastertrade.execution.adapters.paper_batch.WRITE",
    "mastertrade.execution.adapters.orders.IN_FLIGHT", "mastertrade.core.outbox.PRUNE",
    "mastertrade.core.outbox.CLAIM",
}  # fmt: skip

HISTORY = f"""
INSERT INTO risk_decisions (signal_id, environment, symbol, side, outcome, requested_quantity,
    approved_quantity, price, client_order_id, decided_at)
SELECT e || '-h' || n, e, 'HISTORYUSDT', 'buy', 'approved', 1, 1, 100, e || '-h' || n,
    now() - interval '1 day' + n * interval '1 ms'
FROM generate_series(1, {HISTORY_ROWS}) n, unnest(ARRAY['paper', 'live']) e;
INSERT INTO orders (client_order_id, signal_ref, symbol, side, type, quantity, status,
    environment, filled_quantity, average_price, fee, created_at, updated_at)
SELECT e || '-h' || n, e || '-h' || n, 'HISTORYUSDT', 'buy', 'market', 1,
    (ARRAY['filled', 'cancelled', 'rejected'])[n % 3 + 1], e, 1, 100, 0.1,
    now() - interval '1 day' + n * interval '1 ms', now() - interval '1 day' + n * interval '1 ms'
FROM generate_series(1, {HISTORY_ROWS}) n, unnest(ARRAY['paper', 'live']) e;
INSERT INTO fills (client_order_id, fill_id, price, quantity, fee, fee_asset, filled_at)
SELECT client_order_id, client_order_id || ':1', 100, 1, 0.1, 'USDT', created_at
FROM orders WHERE status = 'filled';
INSERT INTO outbox (exchange, routing_key, payload, published_at)
SELECT 'mastertrade.orders', 'order.filled', '{{}}', now() - interval '30 minutes'
FROM generate_series(1, {2 * HISTORY_ROWS});
ANALYZE
"""


def statements() -> Iterator[tuple[str, str]]:
    """(module.NAME, SQL) of every parameterized statement the two services' modules define."""
    modules = list(SHARED_MODULES)
    for package in PACKAGES:
        path = importlib.import_module(package).__path__
        modules += [info.name for info in pkgutil.walk_packages(path, f"{package}.")]
    for module_name in modules:
        for name, value in vars(importlib.import_module(module_name)).items():
            if isinstance(value, str) and "$1" in value and STATEMENT.match(value):
                yield f"{module_name}.{name}", value


def wide_scans(node: dict[str, Any]) -> Iterator[str]:
    """Scans expected to read more than MOST_ROWS rows, outside any LIMIT."""
    if node["Node Type"] == "Limit":
        return
    if node["Node Type"] in SCANS and node["Plan Rows"] > MOST_ROWS:
        yield f"{node['Node Type']} on {node.get('Relation Name')}: {node['Plan Rows']} rows"
    for child in node.get("Plans", []):
        yield from wide_scans(child)


@pytest.fixture
async def history_url(empty_database_url: str) -> str:
    await migrate_database(empty_database_url, 60.0, lambda line: None)
    connection = await asyncpg.connect(empty_database_url)
    try:
        await connection.execute(HISTORY)
    finally:
        await connection.close()
    return empty_database_url


async def test_every_statement_of_the_trading_services_reads_by_index_as_a_generic_plan(
    history_url: str,
) -> None:
    found = dict(statements())
    assert found.keys() >= MUST_FIND, MUST_FIND - found.keys()
    connection = await asyncpg.connect(
        history_url, server_settings=dict(GENERIC_PLANS), statement_cache_size=0
    )
    wide: dict[str, list[str]] = {}
    try:
        for name, sql in found.items():
            await connection.execute(f"PREPARE statement AS {sql}")
            count = await connection.fetchval(
                "SELECT cardinality(parameter_types) FROM pg_prepared_statements"
                " WHERE name = 'statement'"
            )
            unknown = ", ".join(["NULL"] * count)
            plan = json.loads(await connection.fetchval(
                f"EXPLAIN (FORMAT JSON) EXECUTE statement({unknown})"
            ))[0]["Plan"]  # fmt: skip
            await connection.execute("DEALLOCATE statement")
            if scans := list(wide_scans(plan)):
                wide[name] = scans
    finally:
        await connection.close()
    assert not wide, wide


@pytest.mark.parametrize("service", ["risk_manager", "order_executor"])
async def test_the_trading_services_plan_their_statements_generically(
    service: str, service_env: dict[str, str]
) -> None:
    """What the test above checks is how the services run: their connections use generic
    plans."""
    runtime = build_app(service, service_env).state.runtime
    connector = runtime.supervisors[Dependency.DATABASE].connector
    assert isinstance(connector, PostgresConnector)
    await connector.open()
    try:
        async with connector.pool.acquire() as connection:
            mode = await connection.fetchval("SHOW plan_cache_mode")
    finally:
        await connector.close()
    assert mode == GENERIC_PLANS["plan_cache_mode"]
