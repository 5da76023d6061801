"""What a strategy holds, read from the orders its signals became, on real PostgreSQL; and the
sell of it queued when a generation run retires the strategy.

Each test works inside a transaction it rolls back, so the session's database (shared with the
other service tests, whose strategies may be active) is left as it was."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
import pytest

from mastertrade.core.messages import Signal
from mastertrade.strategy.active_set import apply_run_choice
from mastertrade.strategy.domain.live import Side
from mastertrade.strategy.holdings import held_quantity, last_signal, signal_id
from mastertrade_model.topology import SIGNALS

SYMBOL = "HOLDUSDT"


@pytest.fixture
async def connection(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    transaction = connection.transaction()
    await transaction.start()
    try:
        yield connection
    finally:
        await transaction.rollback()
        await connection.close()


async def order(
    connection: asyncpg.Connection,
    strategy_id: int,
    moment: int,
    side: Side,
    quantity: str,
    *,
    filled: str | None = None,
    status: str = "filled",
    environment: str = "paper",
) -> None:
    """An order as the executor stores it, for the signal the strategy sent at `moment`
    (`filled`: all of it unless said)."""
    ref = signal_id(strategy_id, SYMBOL, moment, side)
    await connection.execute(
        "INSERT INTO orders (client_order_id, signal_ref, symbol, side, type, quantity, price, "
        "status, environment, filled_quantity, created_at) "
        "VALUES ($1, $1, $2, $3, 'market', $4, 100, $5, $6, $7, "
        "now() + $8 * interval '1 second')",
        ref, SYMBOL, side, Decimal(quantity), status, environment,
        Decimal(filled or quantity), moment,
    )  # fmt: skip


async def test_filled_buys_less_sells_and_the_open_sells_in_full(
    connection: asyncpg.Connection,
) -> None:
    await order(connection, 1, 1, "buy", "0.5")
    await order(connection, 1, 2, "buy", "0.4", filled="0.3", status="cancelled")  # partly filled
    await order(connection, 1, 3, "sell", "0.2")
    await order(connection, 1, 4, "sell", "0.1", filled="0.04", status="partially_filled")
    await order(connection, 1, 5, "buy", "1", filled="0", status="submitted")  # not bought yet
    await order(connection, 12, 6, "buy", "7")  # strategy 12's, not strategy 1's
    # 0.5 + 0.3 bought, 0.2 sold, 0.1 being sold
    assert await held_quantity(connection, 1, SYMBOL) == Decimal("0.5")
    assert await held_quantity(connection, 12, SYMBOL) == Decimal(7)
    assert await held_quantity(connection, 2, SYMBOL) == 0  # no orders at all
    assert await held_quantity(connection, 1, "OTHERUSDT") == 0


async def test_the_environment_of_the_latest_buy_counts_and_never_below_zero(
    connection: asyncpg.Connection,
) -> None:
    await order(connection, 3, 1, "buy", "2", environment="paper")
    await order(connection, 3, 2, "buy", "0.5", environment="live")
    assert await held_quantity(connection, 3, SYMBOL) == Decimal("0.5")  # paper is not sold live
    await order(connection, 3, 3, "sell", "0.9", environment="live")  # others' too
    assert await held_quantity(connection, 3, SYMBOL) == 0


async def strategy(connection: asyncpg.Connection, name: str) -> int:
    parameters = json.dumps({"symbol": SYMBOL, "strategy": {"family": "momentum"}})
    strategy_id: int = await connection.fetchval(
        "INSERT INTO strategies (name, status, parameters, symbol, family) "
        "VALUES ($1, 'active', $2::jsonb, $3, 'momentum') RETURNING id",
        name, parameters, SYMBOL,
    )  # fmt: skip
    return strategy_id


async def test_a_run_retiring_a_strategy_queues_the_sell_of_what_it_holds(
    connection: asyncpg.Connection,
) -> None:
    holder, empty, chosen = [await strategy(connection, f"holdings {n}") for n in range(3)]
    await order(connection, holder, 1, "buy", "0.3")
    await order(connection, empty, 2, "buy", "0.2")
    await order(connection, empty, 3, "sell", "0.2")
    await connection.execute(
        "INSERT INTO candles (symbol, interval, open_time, open, high, low, close, volume) "
        "VALUES ($1, '1m', now() - interval '2 minutes', 90, 90, 90, 90, 1), "
        "($1, '1m', now() - interval '1 minute', 95, 95, 95, 95, 1)",
        SYMBOL,
    )
    await apply_run_choice(connection, 41, "key", "test", [chosen])

    queued = await connection.fetch(
        "SELECT exchange, routing_key, payload::text AS payload FROM outbox "
        "WHERE routing_key = $1", f"signal.{SYMBOL}",
    )  # fmt: skip
    assert [(row["exchange"], row["routing_key"]) for row in queued] == [
        (SIGNALS.name, f"signal.{SYMBOL}")
    ]
    sell = Signal.model_validate_json(queued[0]["payload"])  # the risk manager's parser
    assert (sell.side, sell.quantity, sell.price) == ("sell", Decimal("0.3"), Decimal(95))
    assert sell.strategy_id == str(holder)
    assert sell.signal_id == signal_id(holder, SYMBOL, "retired-41", "sell")
    rows = await connection.fetch(
        "SELECT id, status FROM strategies WHERE id = ANY($1::bigint[])", [holder, empty, chosen]
    )
    statuses = {row["id"]: row["status"] for row in rows}
    assert statuses == {holder: "retired", empty: "retired", chosen: "active"}


async def test_the_latest_signal_is_the_later_candle_when_decided_together(
    connection: asyncpg.Connection,
) -> None:
    """A batch of the risk manager decides with one now(): the minute in the id breaks the tie."""
    assert await last_signal(connection, 5, SYMBOL) is None
    for minute, side in ((7, "sell"), (5, "buy"), (6, "buy")):
        await connection.execute(
            "INSERT INTO risk_decisions (signal_id, environment, symbol, side, outcome, "
            "requested_quantity, approved_quantity, price, decided_at) "
            "VALUES ($1, 'paper', $2, $3, 'approved', 1, 1, 100, '2026-01-01T00:00Z')",
            signal_id(5, SYMBOL, 28_000_000 + minute, side), SYMBOL, side,  # type: ignore[arg-type]
        )  # fmt: skip
    assert await last_signal(connection, 5, SYMBOL) == (
        "sell",
        signal_id(5, SYMBOL, 28_000_007, "sell"),
    )
