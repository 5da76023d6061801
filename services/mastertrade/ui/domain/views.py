"""Tables of the dashboard built from upstream rows: positions at market, strategies with their
latest backtest. Amounts are exact decimals, sent on as strings."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from mastertrade.ui.domain.equity import parse_amount


def build_positions(
    positions: Iterable[Mapping[str, Any]], marks: Mapping[str, Decimal]
) -> list[dict[str, Any]]:
    """Each open position with its mark (the last close), value and unrealised P&L; the three
    are None when the symbol has no mark or an amount is not a finite decimal."""
    rows = []
    for position in positions:
        symbol = str(position.get("symbol", ""))
        quantity = parse_amount(position.get("quantity"))
        average = parse_amount(position.get("average_price"))
        mark = marks.get(symbol)
        value = pnl = None
        if quantity is not None and mark is not None:
            value = quantity * mark
            if average is not None:
                pnl = (mark - average) * quantity
        rows.append({
            "symbol": symbol,
            "quantity": position.get("quantity"),
            "average_price": position.get("average_price"),
            "mark": None if mark is None else str(mark),
            "value": None if value is None else str(value),
            "unrealized_pnl": None if pnl is None else str(pnl),
        })  # fmt: skip
    return sorted(rows, key=lambda row: row["symbol"])


def build_strategies(
    strategies: Iterable[Mapping[str, Any]], backtests: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Each strategy with its latest backtest (by creation time, then id), or None."""
    latest: dict[Any, Mapping[str, Any]] = {}
    for backtest in backtests:
        key = backtest.get("strategy_id")
        known = latest.get(key)
        order = (str(backtest.get("created_at") or ""), backtest.get("id") or 0)
        if known is None or order > (str(known.get("created_at") or ""), known.get("id") or 0):
            latest[key] = backtest
    return [{**strategy, "backtest": latest.get(strategy.get("id"))} for strategy in strategies]


def drawdown(equity: Decimal | None, peak: Decimal | None) -> Decimal | None:
    """How far equity is below its peak, as a fraction of the peak like the risk manager's
    MAX_PORTFOLIO_DRAWDOWN_PCT (0.15 is 15 %); None when either is unknown."""
    if equity is None or peak is None or peak <= 0:
        return None
    return max(Decimal(0), (peak - equity) / peak)
