"""One snapshot of everything the dashboard shows, read from the upstreams concurrently.

Each part of the snapshot (services, risk, account, positions, orders, fills, strategies,
alerts, equity) is `{"ok", "data", "error"}`, so one upstream down marks the parts it serves
as failed, with a sentence saying why, and leaves the others as they are.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from mastertrade.core.upstream import fetch_health
from mastertrade.ui.domain.equity import EquityHistory, parse_amount
from mastertrade.ui.domain.views import build_positions, build_strategies, drawdown
from mastertrade.ui.upstreams import DATA_API, GATEWAY, Section, Upstreams

SELF = "monitoring_ui"


async def read_services(up: Upstreams) -> Section:
    """Health of the UI's own upstreams (asked directly) and of every service behind the
    gateway (the gateway's `/api/v1/services`)."""
    direct = {name: await fetch_health(up.client, url, "/health") for name, url in up.urls.items()}
    found: dict[str, Any] = {SELF: {"status": "healthy"}}
    found |= {name: {"status": info["status"]} for name, info in direct.items()}
    behind = await up.get(GATEWAY, "/api/v1/services")
    if behind.ok and isinstance(behind.data, dict):
        for name, info in behind.data.items():
            found.setdefault(name, {"status": info.get("status", "unknown")})
    return Section(behind.ok, data=found, error=behind.error)


async def read_risk(up: Upstreams) -> Section:
    """The risk manager's state (equity, peak, breaker, kill switch) and its limits."""
    state, limits = await asyncio.gather(
        up.get(GATEWAY, "/api/risk-manager/api/v1/state"),
        up.get(GATEWAY, "/api/risk-manager/api/v1/limits"),
    )
    if not state.ok or not isinstance(state.data, dict):
        return state
    data = dict(state.data)
    data["limits"] = limits.data if limits.ok else None
    found = drawdown(parse_amount(data.get("equity")), parse_amount(data.get("equity_peak")))
    data["drawdown"] = None if found is None else str(found)
    return Section(True, data=data, error=limits.error)


async def read_marks(up: Upstreams, symbols: list[str]) -> dict[str, Decimal]:
    """The last 1-minute close of each symbol (from the data access API)."""
    answers = await asyncio.gather(*(
        up.get(DATA_API, f"/api/v1/candles/{symbol}", {"order": "desc", "limit": 1})
        for symbol in symbols
    ))  # fmt: skip
    marks = {}
    for symbol, answer in zip(symbols, answers, strict=True):
        rows = answer.data.get("data") if answer.ok and isinstance(answer.data, dict) else None
        close = parse_amount(rows[0].get("close")) if rows else None
        if close is not None:
            marks[symbol] = close
    return marks


async def read_positions(up: Upstreams, account: Section) -> Section:
    """The executor's open positions valued at the last close."""
    if not account.ok or not isinstance(account.data, dict):
        return account
    positions = account.data.get("positions") or []
    marks = await read_marks(up, sorted({str(p.get("symbol")) for p in positions}))
    return Section(True, data=build_positions(positions, marks))


def page(section: Section) -> Section:
    """The rows of a data access API page."""
    if section.ok and isinstance(section.data, dict):
        return Section(True, data=section.data.get("data", []))
    return section


async def read_strategies(up: Upstreams, rows: int) -> Section:
    """Active strategies, each with its latest finished backtest (asked for by strategy: the
    newest backtests of all are the last generation's, hundreds a day, which need not hold an
    older active strategy's)."""
    strategies = page(await up.get(
        DATA_API, "/api/v1/strategies", {"status": "active", "order": "desc", "limit": rows}
    ))  # fmt: skip
    if not strategies.ok:
        return strategies
    latest = [{"strategy_id": strategy.get("id"), "status": "done", "order": "desc", "limit": 1}
              for strategy in strategies.data]  # fmt: skip
    answers = [page(answer) for answer in await asyncio.gather(
        *(up.get(DATA_API, "/api/v1/backtests", query) for query in latest)
    )]  # fmt: skip
    done = [backtest for answer in answers if answer.ok for backtest in answer.data]
    failed = next((answer.error for answer in answers if not answer.ok), None)
    return Section(True, data=build_strategies(strategies.data, done), error=failed)


def record_equity(history: EquityHistory, account: Section) -> None:
    """Add the executor's latest valuation to the history (P&L against the paper start)."""
    if not account.ok or not isinstance(account.data, dict):
        return
    valuation = account.data.get("equity")
    if not isinstance(valuation, dict):
        return
    equity = parse_amount(valuation.get("equity"))
    if equity is None:
        return
    paper = account.data.get("environment") == "paper"
    baseline = parse_amount(account.data.get("paper_initial_balance")) if paper else None
    history.add(str(valuation.get("updated_at")), equity, baseline)


async def collect_snapshot(up: Upstreams, history: EquityHistory, rows: int) -> dict[str, Any]:
    """Every part of the dashboard, read now."""
    recent = {"order": "desc", "limit": rows}
    services, risk, account, orders, fills, alerts, strategies = await asyncio.gather(
        read_services(up),
        read_risk(up),
        up.get(GATEWAY, "/api/order-executor/api/v1/account"),
        up.get(DATA_API, "/api/v1/orders", recent),
        up.get(DATA_API, "/api/v1/fills", recent),
        up.get(DATA_API, "/api/v1/alerts", recent),
        read_strategies(up, rows),
    )
    record_equity(history, account)
    positions = await read_positions(up, account)
    equity = Section(account.ok, data=history.as_json(), error=account.error)
    parts = {
        "services": services, "risk": risk, "account": account, "positions": positions,
        "orders": page(orders), "fills": page(fills), "alerts": page(alerts),
        "strategies": strategies, "equity": equity,
    }  # fmt: skip
    return {
        "generated_at": datetime.now(UTC).isoformat(),
        **{name: part.as_json() for name, part in parts.items()},
    }
