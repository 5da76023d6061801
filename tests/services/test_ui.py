"""monitoring_ui against the real data access API, gateway, risk manager and order executor on
real PostgreSQL, RabbitMQ and Redis: every part of the dashboard read through them, equity and
P&L as the executor values them, the circuit breaker reset only for the admin key, live updates
as server-sent events, and a failed part (never a failed page) when an upstream is down."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from mastertrade.catalog import find_service, load_service_module, load_service_settings
from mastertrade.gateway.keys import digest_of
from tests.infra import free_port
from tests.services.helpers import running, wait_for_status
from tests.services.trading import new_symbol, serve_app, set_quote

pytestmark = pytest.mark.infra

ADMIN, OTHER_ADMIN, TRADER = (f"{word}-{uuid.uuid4().hex}" for word in ("admin", "boss", "trade"))
INITIAL_BALANCE = "10000"


@dataclass
class Stack:
    ui: httpx.AsyncClient
    ui_url: str
    database: str
    symbol: str
    gateway: str
    services: AsyncExitStack


async def seed(url: str, symbol: str) -> None:
    """A held position, its last candle, an order and its fill, an active strategy with a
    finished backtest older than a day's generation of others, an alert, a tripped breaker."""
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            "INSERT INTO candles (symbol, interval, open_time, open, high, low, close, volume) "
            "VALUES ($1, '1m', now() - interval '1 minute', 30000, 31500, 29900, 31000, 2)",
            symbol,
        )
        await connection.execute(
            "INSERT INTO positions (environment, symbol, quantity, average_price) "
            "VALUES ('paper', $1, 0.5, 30000)", symbol,
        )  # fmt: skip
        await connection.execute(
            "INSERT INTO orders (client_order_id, symbol, side, type, quantity, price, status, "
            "environment) VALUES ('mt-ui-1', $1, 'buy', 'market', 0.5, 30000, 'filled', 'paper')",
            symbol,
        )
        await connection.execute(
            "INSERT INTO fills (client_order_id, fill_id, price, quantity, fee, fee_asset) "
            "VALUES ('mt-ui-1', 'f-1', 30000, 0.5, 15, 'USDT')"
        )
        strategy = await connection.fetchval(
            "INSERT INTO strategies (name, status, parameters) VALUES ($1, 'active', $2) "
            "RETURNING id", f"sma-{symbol}", json.dumps({"fast": 10, "slow": 50}),
        )  # fmt: skip
        for total_return in ("0.05", "0.12"):  # the later one is the strategy's result
            await connection.execute(
                "INSERT INTO backtests (strategy_id, status, metrics, finished_at) "
                "VALUES ($1, 'done', $2, now())",
                strategy, json.dumps({"total_return": total_return, "sharpe": "1.4"}),
            )  # fmt: skip
        # the next day's generation: 500 candidates backtested after it, none activated
        candidate = await connection.fetchval(
            "INSERT INTO strategies (name, status, parameters) VALUES ($1, 'retired', '{}') "
            "RETURNING id", f"next-day-{symbol}",
        )  # fmt: skip
        await connection.execute(
            "INSERT INTO backtests (strategy_id, status, metrics, finished_at) "
            "SELECT $1, 'done', '{}', now() FROM generate_series(1, 500)", candidate,
        )  # fmt: skip
        await connection.execute(
            "INSERT INTO alerts (severity, title, message, channel, status) "
            "VALUES ('critical', 'Circuit breaker tripped', 'drawdown 16 %', 'all', 'sent')"
        )
        await connection.execute(
            "INSERT INTO risk_state (environment, equity_peak, breaker_open, breaker_reason, "
            "breaker_tripped_at) VALUES ('paper', 40000, true, 'drawdown 16 %', now())"
        )
    finally:
        await connection.close()


def build_app(service: str, env: dict[str, str]) -> FastAPI:
    """The service's app with the settings `mastertrade serve` gives it (upstream URLs too)."""
    spec = find_service(service)
    return load_service_module(spec).create_app(load_service_settings(spec, env))


async def serve(stack: AsyncExitStack, service: str, env: dict[str, str]) -> str:
    app = build_app(service, env)
    await stack.enter_async_context(running(app))
    return await stack.enter_async_context(serve_app(app))


@pytest.fixture
async def stack(trading_env: dict[str, str]) -> AsyncIterator[Stack]:
    symbol = new_symbol()
    await seed(trading_env["DATABASE_URL"], symbol)
    await set_quote(symbol, "30990", "31010")
    risk_env = {
        **trading_env,
        "RISK_ADMIN_API_KEY_SHA256": hashlib.sha256(ADMIN.encode()).hexdigest(),
    }
    # closed in reverse: the UI stops first, so it never reads from a service stopping under it
    async with AsyncExitStack() as services:
        data_api = await serve(services, "data_access_api", trading_env)
        risk = await serve(services, "risk_manager", risk_env)
        executor = await serve(services, "order_executor", {
            **trading_env, "PAPER_TRADING_INITIAL_BALANCE": INITIAL_BALANCE,
        })  # fmt: skip
        keys = (f"ops:admin:sha256:{digest_of(ADMIN)},boss:admin:{OTHER_ADMIN},"
                f"trader:trade:{TRADER}")  # fmt: skip
        gateway = await serve(services, "api_gateway", {
            **trading_env, "RISK_MANAGER_URL": risk, "ORDER_EXECUTOR_URL": executor,
            "DATA_ACCESS_API_URL": data_api, "GATEWAY_API_KEYS": keys,
            "GATEWAY_ANONYMOUS_RATE_LIMIT": "100000",
        })  # fmt: skip
        ui_app = build_app("monitoring_ui", ui_env(gateway, data_api))
        ui = await services.enter_async_context(running(ui_app))
        ui_url = await services.enter_async_context(serve_app(ui_app))
        yield Stack(ui, ui_url, trading_env["DATABASE_URL"], symbol, gateway, services)


def ui_env(gateway: str, data_api: str) -> dict[str, str]:
    return {
        "API_GATEWAY_URL": gateway, "DATA_ACCESS_API_URL": data_api, "UI_POLL_SECONDS": "0.3",
        "LOG_FORMAT": "console", "DEPENDENCY_TIMEOUT": "2",
    }  # fmt: skip


async def snapshot_where(
    client: httpx.AsyncClient, ready: Any, timeout: float = 20.0
) -> dict[str, Any]:
    """The first snapshot for which `ready(snapshot)` holds (the poller fills them in)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found: dict[str, Any] = (await client.get("/api/snapshot")).json()
        if ready(found):
            return found
        assert asyncio.get_running_loop().time() < deadline, json.dumps(found, indent=1)
        await asyncio.sleep(0.2)


def equity_points(snapshot: dict[str, Any]) -> int:
    return len(snapshot["equity"]["data"]["points"])


async def test_every_part_is_read_through_the_upstreams(stack: Stack) -> None:
    await wait_for_status(stack.ui, "/api/health", 200)
    snap = await snapshot_where(stack.ui, lambda s: equity_points(s) >= 2)
    for part in ("services", "risk", "account", "positions", "orders", "fills", "alerts",
                 "strategies", "equity"):  # fmt: skip
        assert snap[part]["ok"], (part, snap[part]["error"])
    statuses = {name: info["status"] for name, info in snap["services"]["data"].items()}
    assert statuses == dict.fromkeys(
        ["monitoring_ui", "api_gateway", "data_access_api", "risk_manager", "order_executor"],
        "healthy",
    )
    # the position valued at its last close: 0.5 x 31000, P&L (31000 - 30000) x 0.5
    [position] = snap["positions"]["data"]
    assert (position["symbol"], position["mark"]) == (stack.symbol, "31000")
    assert Decimal(position["value"]) == Decimal("15500")
    assert Decimal(position["unrealized_pnl"]) == Decimal("500")
    assert [o["client_order_id"] for o in snap["orders"]["data"]] == ["mt-ui-1"]
    assert snap["fills"]["data"][0]["fee"] == "15"
    [strategy] = [s for s in snap["strategies"]["data"] if s["name"] == f"sma-{stack.symbol}"]
    assert strategy["backtest"]["metrics"]["total_return"] == "0.12"
    assert snap["alerts"]["data"][0]["title"] == "Circuit breaker tripped"
    risk = snap["risk"]["data"]
    assert risk["breaker_open"] is True
    assert Decimal(risk["limits"]["max_portfolio_drawdown_pct"]) > 0
    # equity is the executor's valuation, P&L its difference from the paper starting balance
    connection = await asyncpg.connect(stack.database)
    try:
        stored = await connection.fetchval("SELECT equity FROM account_equity")
    finally:
        await connection.close()
    last = snap["equity"]["data"]["points"][-1]
    assert Decimal(last["equity"]) == stored
    assert snap["equity"]["data"]["baseline"] == INITIAL_BALANCE
    assert Decimal(last["pnl"]) == stored - Decimal(INITIAL_BALANCE)
    assert Decimal(risk["drawdown"]) == (Decimal(40000) - Decimal(risk["equity"])) / 40000


async def test_the_breaker_reset_needs_the_admin_key(stack: Stack) -> None:
    reset = "/api/circuit-breaker/reset"

    async def breaker_open() -> bool:
        connection = await asyncpg.connect(stack.database)
        try:
            return bool(await connection.fetchval("SELECT breaker_open FROM risk_state"))
        finally:
            await connection.close()

    nobody = await stack.ui.post(reset)
    assert nobody.status_code == 401
    assert "scope admin" in nobody.json()["detail"]
    unknown = await stack.ui.post(reset, headers={"Authorization": f"Bearer x{uuid.uuid4().hex}"})
    assert unknown.status_code == 401
    # a header may carry bytes no key has, which could not be sent on (it was a 500)
    latin = await stack.ui.post(reset, headers=[(b"Authorization", b"Bearer caf\xe9")])
    assert latin.status_code == 401 and "scope admin" in latin.json()["detail"]
    trader = await stack.ui.post(reset, headers={"Authorization": f"Bearer {TRADER}"})
    assert trader.status_code == 403
    assert "scope trade; this needs admin" in trader.json()["detail"]
    # an admin of the gateway whose token is not the risk manager's admin token
    boss = await stack.ui.post(reset, headers={"Authorization": f"Bearer {OTHER_ADMIN}"})
    assert boss.status_code == 403
    assert "not the admin token" in boss.json()["detail"]
    assert await breaker_open()
    admin = await stack.ui.post(reset, headers={"Authorization": f"Bearer {ADMIN}"})
    assert admin.status_code == 200, admin.text
    assert admin.json()["state"]["breaker_open"] is False
    assert not await breaker_open()
    after = (await stack.ui.get("/api/snapshot")).json()
    assert after["risk"]["data"]["breaker_open"] is False  # refreshed at once


async def test_live_updates_arrive_as_server_sent_events(stack: Stack) -> None:
    async with (
        httpx.AsyncClient(base_url=stack.ui_url, timeout=10) as client,
        client.stream("GET", "/api/events") as events,
    ):
        assert events.headers["content-type"].startswith("text/event-stream")
        seen: list[dict[str, Any]] = []
        async for line in events.aiter_lines():
            if line.startswith("data: "):
                seen.append(json.loads(line.removeprefix("data: ")))
            if len(seen) == 3:
                break
    times = [snapshot["generated_at"] for snapshot in seen]
    assert times == sorted(times) and len(set(times)) == 3  # a new snapshot each period
    assert all(snapshot["orders"]["ok"] for snapshot in seen)


async def test_an_upstream_down_fails_its_parts_only(stack: Stack) -> None:
    # a second dashboard whose data access API is down (nothing listens at its URL)
    down = f"http://127.0.0.1:{free_port()}"
    ui = await stack.services.enter_async_context(
        running(build_app("monitoring_ui", ui_env(stack.gateway, down)))
    )
    snap = await snapshot_where(ui, lambda s: s["risk"]["ok"])
    for part in ("orders", "fills", "alerts", "strategies"):
        assert not snap[part]["ok"]
        assert snap[part]["error"] == "data_access_api refused the connection or is down"
    assert snap["services"]["data"]["data_access_api"]["status"] == "unreachable"
    assert snap["account"]["ok"]  # read through the gateway: still there
    page = await ui.get("/")
    assert page.status_code == 200 and "Content-Security-Policy" in page.headers


async def test_the_dashboard_reads_with_its_gateway_key_when_reads_need_one(
    trading_env: dict[str, str],
) -> None:
    """A gateway whose reads need a key refuses the dashboard without UI_GATEWAY_API_KEY (the
    part says so) and serves it with one; the gateway's own listing needs the key too."""
    reader = f"read-{uuid.uuid4().hex}"
    async with AsyncExitStack() as services:
        gateway = await serve(services, "api_gateway", {
            **trading_env, "GATEWAY_API_KEYS": f"dashboard:read:{reader}",
            "GATEWAY_REQUIRE_KEY_FOR_READS": "true", "GATEWAY_ANONYMOUS_RATE_LIMIT": "100000",
        })  # fmt: skip
        async with httpx.AsyncClient(base_url=gateway) as direct:
            for path in ("/api/v1/services", "/api/v1/health"):
                assert (await direct.get(path)).status_code == 401
                assert (await direct.get(path, headers={"X-API-Key": reader})).status_code == 200
        data_api = "http://127.0.0.1:9"  # not read by this test's parts
        keyless = build_app("monitoring_ui", ui_env(gateway, data_api))
        keyed = build_app(
            "monitoring_ui", {**ui_env(gateway, data_api), "UI_GATEWAY_API_KEY": reader}
        )
        without = await services.enter_async_context(running(keyless))
        with_key = await services.enter_async_context(running(keyed))
        refused = await snapshot_where(without, lambda s: s.get("services", {}).get("error"))
        assert "api_gateway answered 401" in refused["services"]["error"]
        served = await snapshot_where(with_key, lambda s: s.get("services", {}).get("ok"))
        assert served["services"]["data"]["api_gateway"]["status"] == "healthy"
