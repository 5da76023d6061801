"""What a strategy holds, read from the orders its signals became, on real PostgreSQL; and the
sell of it queued when a generation run retires the strategy, then again by the sweep while
something is left.

Each test works inside a transaction it rolls back, so the session's database (shared with the
other service tests, whose strategies may be active) is left as it was."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
import pytest

from mastertrade.core.messages import Signal
from mastertrade.strategy.active_set import apply_run_choice
from mastertrade.strategy.closing import ORPHANS, sweep_orphans
from mastertrade.strategy.domain.live import Side
from mastertrade.strategy.holdings import (
    SELL_MAY_FILL_SECONDS,
    after,
    buy_may_still_fill,
    held_quantity,
    last_signal,
    signal_id,
)
from mastertrade.strategy.locks import ACTIVATION_LOCK
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


async def decide(
    connection: asyncpg.Connection,
    ref: str,
    side: Side,
    quantity: str,
    *,
    outcome: str = "approved",
    at: int = 0,
    environment: str = "paper",
) -> None:
    """The risk manager's decision of signal `ref`, `at` seconds from now (approved: with the
    client order id its order is stored under, the signal's id here)."""
    rejected = outcome == "rejected"
    await connection.execute(
        "INSERT INTO risk_decisions (signal_id, environment, symbol, side, outcome, "
        "requested_quantity, approved_quantity, price, client_order_id, decided_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, 100, $8, now() + $9 * interval '1 second')",
        ref, environment, SYMBOL, side, outcome, Decimal(quantity),
        Decimal(0 if rejected else quantity), None if rejected else ref, at,
    )  # fmt: skip


async def order(
    connection: asyncpg.Connection,
    strategy_id: int,
    moment: int | str,
    side: Side,
    quantity: str,
    *,
    filled: str | None = None,
    status: str = "filled",
    environment: str = "paper",
    at: int | None = None,
    decided: bool = False,
) -> str:
    """The decision and the order as the executor stores it, for the signal the strategy sent at
    `moment` (`filled`: all of it unless said; `at`: seconds from now, a number `moment` unless
    said; `decided`: the decision is stored already); the signal's id."""
    ref = signal_id(strategy_id, SYMBOL, moment, side)
    if at is None:
        at = moment if isinstance(moment, int) else 0
    if not decided:
        await decide(connection, ref, side, quantity, at=at, environment=environment)
    await connection.execute(
        "INSERT INTO orders (client_order_id, signal_ref, symbol, side, type, quantity, price, "
        "status, environment, filled_quantity, created_at) "
        "VALUES ($1, $1, $2, $3, 'market', $4, 100, $5, $6, $7, "
        "now() + $8 * interval '1 second')",
        ref, SYMBOL, side, Decimal(quantity), status, environment,
        Decimal(filled or quantity), at,
    )  # fmt: skip
    return ref


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
    assert await held_quantity(connection, 1, SYMBOL, "paper") == Decimal("0.5")
    assert await held_quantity(connection, 12, SYMBOL, "paper") == Decimal(7)
    assert await held_quantity(connection, 2, SYMBOL, "paper") == 0  # no orders at all
    assert await held_quantity(connection, 1, "OTHERUSDT", "paper") == 0


async def test_a_sell_approved_and_not_an_order_yet_is_not_held_while_it_may_still_fill(
    connection: asyncpg.Connection,
) -> None:
    """An exit approved while the executor is away is already selling what it was approved for:
    an exit after it finds that much less held (a second sell would sell another strategy's
    coins of the symbol), until the sell is an order (then counted as one) or too old ever to
    become one (SELL_MAY_FILL_SECONDS: the executor refuses it by then)."""
    await order(connection, 5, 1, "buy", "0.5")
    ref = signal_id(5, SYMBOL, 2, "sell")
    await decide(connection, ref, "sell", "0.3", at=-60)  # approved a minute ago, no order yet
    await decide(connection, signal_id(5, SYMBOL, 3, "sell"), "sell", "0.5", at=-30,
                 outcome="rejected")  # fmt: skip
    assert await held_quantity(connection, 5, SYMBOL, "paper") == Decimal("0.2")
    await order(connection, 5, 2, "sell", "0.3", filled="0", status="submitted", decided=True)
    assert await held_quantity(connection, 5, SYMBOL, "paper") == Decimal("0.2")  # once
    lost = signal_id(5, SYMBOL, 4, "sell")
    await decide(connection, lost, "sell", "0.2", at=-int(SELL_MAY_FILL_SECONDS) - 60)
    assert await held_quantity(connection, 5, SYMBOL, "paper") == Decimal("0.2")  # too old
    assert await held_quantity(connection, 5, SYMBOL, "live") == 0  # paper's, not live's


async def test_a_buy_may_still_fill_until_it_is_refused_or_its_order_finished(
    connection: asyncpg.Connection,
) -> None:
    """What an exit that finds nothing held waits for: a buy not decided yet (its latest
    decided signal a sell, or none), approved and not yet an order, or an order still open."""
    assert await buy_may_still_fill(connection, 4, SYMBOL, "paper")  # nothing decided yet
    await order(connection, 4, 1, "buy", "1")
    await order(connection, 4, 2, "sell", "1")
    assert await buy_may_still_fill(connection, 4, SYMBOL, "paper")  # a buy may be on its way
    ref = signal_id(4, SYMBOL, 3, "buy")
    await decide(connection, ref, "buy", "1", at=3)  # approved, not an order yet
    assert await buy_may_still_fill(connection, 4, SYMBOL, "paper")
    await order(connection, 4, 3, "buy", "1", filled="0", status="submitted", decided=True)
    assert await buy_may_still_fill(connection, 4, SYMBOL, "paper")
    await connection.execute(
        "UPDATE orders SET status = 'cancelled' WHERE client_order_id = $1", ref
    )
    assert not await buy_may_still_fill(connection, 4, SYMBOL, "paper")  # finished
    await decide(connection, signal_id(4, SYMBOL, 4, "buy"), "buy", "1", outcome="rejected", at=4)
    assert not await buy_may_still_fill(connection, 4, SYMBOL, "paper")  # refused
    assert await buy_may_still_fill(connection, 4, SYMBOL, "live")  # another environment


async def test_only_the_environment_traded_in_now_counts_and_never_below_zero(
    connection: asyncpg.Connection,
) -> None:
    """A strategy that bought on paper holds nothing live: after a switch to live, its exit
    must not sell the live account's coins (nor a live sell count against its paper ones)."""
    await order(connection, 3, 1, "buy", "2", environment="paper")
    assert await held_quantity(connection, 3, SYMBOL, "live") == 0
    assert await last_signal(connection, 3, SYMBOL, "live") is None
    await order(connection, 3, 2, "buy", "0.5", environment="live")
    assert await held_quantity(connection, 3, SYMBOL, "live") == Decimal("0.5")
    assert await held_quantity(connection, 3, SYMBOL, "paper") == Decimal(2)
    assert await last_signal(connection, 3, SYMBOL, "paper") == (
        "buy",
        signal_id(3, SYMBOL, 1, "buy"),
    )
    await order(connection, 3, 3, "sell", "0.9", environment="live")  # others' too
    assert await held_quantity(connection, 3, SYMBOL, "live") == 0
    assert await held_quantity(connection, 3, SYMBOL, "paper") == Decimal(2)


async def strategy(connection: asyncpg.Connection, name: str, status: str = "active") -> int:
    """A momentum strategy of SYMBOL that was activated once, now `status`."""
    parameters = json.dumps({"symbol": SYMBOL, "strategy": {"family": "momentum"}})
    strategy_id: int = await connection.fetchval(
        "INSERT INTO strategies (name, status, parameters, symbol, family, activated_at) "
        "VALUES ($1, $2, $3::jsonb, $4, 'momentum', now() - interval '1 day') RETURNING id",
        name, status, parameters, SYMBOL,
    )  # fmt: skip
    return strategy_id


def closing_id(strategy_id: int, latest: str) -> str:
    """The id of the closing sell queued after the strategy's `latest` decided signal."""
    return signal_id(strategy_id, SYMBOL, after(latest, "paper", "close"), "sell")


async def last_close(connection: asyncpg.Connection, price: int) -> None:
    await connection.execute(
        "INSERT INTO candles (symbol, interval, open_time, open, high, low, close, volume) "
        "VALUES ($1, '1m', now() - interval '1 minute', $2, $2, $2, $2, 1)",
        SYMBOL, price,
    )  # fmt: skip


async def earlier(connection: asyncpg.Connection, strategy_id: int, seconds: int) -> None:
    """Every decision of the strategy `seconds` earlier: time passing for the sweep."""
    await connection.execute(
        "UPDATE risk_decisions SET decided_at = decided_at - $2 * interval '1 second' "
        "WHERE signal_id LIKE $1", f"st{strategy_id}-%", seconds,
    )  # fmt: skip


async def swept(connection: asyncpg.Connection, environment: str = "paper") -> list[Signal]:
    """The sells of SYMBOL one sweep in `environment` queues (read by the risk manager's
    parser)."""
    before = await connection.fetchval("SELECT COALESCE(max(id), 0) FROM outbox")
    await sweep_orphans(connection, environment)
    rows = await connection.fetch(
        "SELECT payload::text AS payload FROM outbox WHERE id > $1 AND routing_key = $2 "
        "ORDER BY id", before, f"signal.{SYMBOL}",
    )  # fmt: skip
    return [Signal.model_validate_json(row["payload"]) for row in rows]


async def test_a_run_retiring_a_strategy_queues_the_sell_of_what_it_holds(
    connection: asyncpg.Connection,
) -> None:
    holder, empty, chosen = [await strategy(connection, f"holdings {n}") for n in range(3)]
    bought = await order(connection, holder, 1, "buy", "0.3")
    await order(connection, empty, 2, "buy", "0.2")
    await order(connection, empty, 3, "sell", "0.2")
    await connection.execute(
        "INSERT INTO candles (symbol, interval, open_time, open, high, low, close, volume) "
        "VALUES ($1, '1m', now() - interval '2 minutes', 90, 90, 90, 90, 1), "
        "($1, '1m', now() - interval '1 minute', 95, 95, 95, 95, 1)",
        SYMBOL,
    )
    await apply_run_choice(connection, 41, "key", "test", [chosen], environment="paper")

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
    assert sell.signal_id == closing_id(holder, bought)
    rows = await connection.fetch(
        "SELECT id, status FROM strategies WHERE id = ANY($1::bigint[])", [holder, empty, chosen]
    )
    statuses = {row["id"]: row["status"] for row in rows}
    assert statuses == {holder: "retired", empty: "retired", chosen: "active"}


async def test_the_latest_signal_is_the_later_candle_when_decided_together(
    connection: asyncpg.Connection,
) -> None:
    """A batch of the risk manager decides with one now(): the minute in the id breaks the tie."""
    assert await last_signal(connection, 5, SYMBOL, "paper") is None
    for minute, side in ((7, "sell"), (5, "buy"), (6, "buy")):
        await connection.execute(
            "INSERT INTO risk_decisions (signal_id, environment, symbol, side, outcome, "
            "requested_quantity, approved_quantity, price, decided_at) "
            "VALUES ($1, 'paper', $2, $3, 'approved', 1, 1, 100, '2026-01-01T00:00Z')",
            signal_id(5, SYMBOL, 28_000_000 + minute, side), SYMBOL, side,  # type: ignore[arg-type]
        )  # fmt: skip
    assert await last_signal(connection, 5, SYMBOL, "paper") == (
        "sell",
        signal_id(5, SYMBOL, 28_000_007, "sell"),
    )


async def test_the_latest_signal_is_the_one_made_last_though_decided_first(
    connection: asyncpg.Connection,
) -> None:
    """Two risk manager replicas taking a backlog: the strategy's sell of minute 8 (made a minute
    after its buy of minute 7) is decided a second before that buy. Its latest signal is the
    sell, which it made last; a decision stored with no signal time reads as made when decided."""
    for minute, side, made, decided in ((7, "buy", "00:00", "00:02:01"),
                                        (8, "sell", "00:01", "00:02:00")):  # fmt: skip
        await connection.execute(
            "INSERT INTO risk_decisions (signal_id, environment, symbol, side, outcome, "
            "requested_quantity, approved_quantity, price, signal_created_at, decided_at) "
            "VALUES ($1, 'paper', $2, $3, 'approved', 1, 1, 100, $4::text::timestamptz, "
            "$5::text::timestamptz)",
            signal_id(5, SYMBOL, 28_000_000 + minute, side), SYMBOL, side,  # type: ignore[arg-type]
            f"2026-01-01T{made}Z", f"2026-01-01T{decided}Z",
        )  # fmt: skip
    made_last = await last_signal(connection, 5, SYMBOL, "paper")
    await connection.execute(
        "INSERT INTO risk_decisions (signal_id, environment, symbol, side, outcome, "
        "requested_quantity, approved_quantity, price, decided_at) "
        "VALUES ($1, 'paper', $2, 'buy', 'approved', 1, 1, 100, '2026-01-01T00:00:30Z')",
        signal_id(5, SYMBOL, "after1", "buy"), SYMBOL,
    )  # fmt: skip
    unchanged = await last_signal(connection, 5, SYMBOL, "paper")
    assert made_last == ("sell", signal_id(5, SYMBOL, 28_000_008, "sell"))
    assert unchanged == made_last  # read as made at 00:00:30, before the sell was


async def test_the_sweep_sells_a_buy_that_filled_after_the_retirement(
    connection: asyncpg.Connection,
) -> None:
    """Retired with a buy in flight (approved, no order yet): nothing to sell until its order
    is stored, then its fill is sold; strategies still active are never swept."""
    retired = await strategy(connection, "retired in flight", "retired")
    active = await strategy(connection, "still active")
    await order(connection, active, 1, "buy", "2")
    await last_close(connection, 120)
    buy = signal_id(retired, SYMBOL, 2, "buy")
    await decide(connection, buy, "buy", "0.4", at=2)
    assert await swept(connection) == []  # its order is on its way
    await order(connection, retired, 2, "buy", "0.4", filled="0.25", status="cancelled",
                decided=True)  # fmt: skip
    [sell] = await swept(connection)
    assert (sell.strategy_id, sell.side, sell.quantity, sell.price) == (
        str(retired),
        "sell",
        Decimal("0.25"),
        Decimal(120),
    )
    assert sell.signal_id == closing_id(retired, buy)
    assert await swept(connection) == []  # queued and not sent yet: not queued twice


async def test_a_closing_sell_refused_is_tried_again_later_and_later(
    connection: asyncpg.Connection,
) -> None:
    """The risk manager rejected the first closing sell (kill switch), the executor the second
    (a quantity under the exchange's minimum): each is tried again CLOSING_SWEEP_SECONDS after
    the first failure, then twice as long after each one, with an id of its own."""
    retired = await strategy(connection, "retired refused", "retired")
    await order(connection, retired, 1, "buy", "0.3", at=-4000)
    await last_close(connection, 90)
    [first] = await swept(connection)
    await decide(connection, first.signal_id, "sell", "0.3", outcome="rejected", at=-240)
    assert await swept(connection) == []  # 240 s after the one failure: 300 s are due
    await earlier(connection, retired, 60)
    [second] = await swept(connection)
    assert second.signal_id == closing_id(retired, first.signal_id)
    assert second.quantity == Decimal("0.3")
    await decide(connection, second.signal_id, "sell", "0.3", at=-200)
    await connection.execute(
        "INSERT INTO orders (client_order_id, signal_ref, symbol, side, type, quantity, price, "
        "status, environment, filled_quantity) "
        "VALUES ($1, $1, $2, 'sell', 'market', 0.3, 90, 'rejected', 'paper', 0)",
        second.signal_id, SYMBOL,
    )  # fmt: skip
    assert await swept(connection) == []  # 200 s after the second failure: 600 s are due
    await earlier(connection, retired, 400)
    [third] = await swept(connection)
    assert third.quantity == Decimal("0.3")
    assert third.signal_id == closing_id(retired, second.signal_id)


async def test_a_closing_sell_on_its_way_open_or_filled_leaves_nothing_to_sell(
    connection: asyncpg.Connection,
) -> None:
    """Approved and not stored by the executor yet, then open, then filled: never sold again."""
    retired = await strategy(connection, "retired selling", "retired")
    await order(connection, retired, 1, "buy", "0.5", at=-2000)
    await last_close(connection, 100)
    closing = signal_id(retired, SYMBOL, "close1", "sell")
    await decide(connection, closing, "sell", "0.5", at=-1000)  # long past a retry's wait
    assert await swept(connection) == []  # the executor has not stored its order yet
    await order(connection, retired, "close1", "sell", "0.5", filled="0.2",
                status="partially_filled", decided=True)  # fmt: skip
    assert await swept(connection) == []
    await connection.execute(
        "UPDATE orders SET status = 'filled', filled_quantity = quantity WHERE signal_ref = $1",
        closing,
    )
    assert await swept(connection) == []


async def test_an_older_approved_sell_not_yet_an_order_is_waited_for_an_hour(
    connection: asyncpg.Connection,
) -> None:
    """The strategy's exit was approved just before its retirement, and the executor has not
    stored it; the closing sell queued at the retirement was rejected (its coins were being
    sold). The latest signal is that rejection, yet the exit is still on its way: nothing is
    sold again until an hour passed without its order (lost, then: sold, with a warning)."""
    retired = await strategy(connection, "retired exiting", "retired")
    await order(connection, retired, 1, "buy", "0.3", at=-4000)
    await last_close(connection, 100)
    exit_sell = signal_id(retired, SYMBOL, 2, "sell")
    await decide(connection, exit_sell, "sell", "0.3", at=-1000)
    await decide(connection, closing_id(retired, exit_sell), "sell", "0.3",
                 outcome="rejected", at=-900)  # fmt: skip
    assert await swept(connection) == []
    await earlier(connection, retired, 3000)  # the exit approved 4000 s ago, still no order
    [sell] = await swept(connection)
    assert sell.quantity == Decimal("0.3")


async def closed(connection: asyncpg.Connection, *strategy_ids: int) -> dict[int, str | None]:
    """Where each strategy is closed (None: nowhere)."""
    rows = await connection.fetch(
        "SELECT id, closed_in FROM strategies WHERE id = ANY($1::bigint[])", list(strategy_ids)
    )
    return {row["id"]: row["closed_in"] for row in rows}


async def listed(connection: asyncpg.Connection, environment: str) -> set[int]:
    return {row["id"] for row in await connection.fetch(ORPHANS, environment)}


async def test_a_strategy_holding_nothing_for_good_is_closed_until_activated_again(
    connection: asyncpg.Connection,
) -> None:
    """Sold out, with nothing open: closed where it traded, and left out of later sweeps
    there; an open order keeps it from being closed; an activation clears the mark, and its
    next retirement brings it back to the sweep."""
    done = await strategy(connection, "retired sold out", "retired")
    selling = await strategy(connection, "retired selling out", "retired")
    for strategy_id in (done, selling):
        await order(connection, strategy_id, 1, "buy", "0.2", at=-100)
    await order(connection, done, 2, "sell", "0.2", at=-50)
    await order(connection, selling, 2, "sell", "0.2", filled="0", status="submitted", at=-50)
    await swept(connection)
    assert await closed(connection, done, selling) == {done: "paper", selling: None}
    assert {done, selling} & await listed(connection, "paper") == {selling}
    assert done in await listed(connection, "live")  # closed on paper only
    chosen = await strategy(connection, "chosen next", "backtested")
    await apply_run_choice(connection, 42, "key", "test", [done], environment="paper")
    assert await closed(connection, done) == {done: None}
    await apply_run_choice(connection, 43, "key", "test", [chosen], environment="paper")
    assert done in await listed(connection, "paper")


async def test_a_strategy_just_retired_is_not_closed_while_its_last_signal_may_be_on_its_way(
    connection: asyncpg.Connection,
) -> None:
    """Its pod may have sent a buy just before the run retired it, not decided yet: holding
    nothing now does not close it until it has been retired an hour."""
    quiet = await strategy(connection, "retired just now")
    chosen = await strategy(connection, "chosen instead", "backtested")
    await apply_run_choice(connection, 44, "key", "test", [chosen], environment="paper")
    assert await closed(connection, quiet) == {quiet: None}
    await swept(connection)
    assert await closed(connection, quiet) == {quiet: None}
    await connection.execute(
        "UPDATE strategies SET retired_at = now() - interval '61 minutes' WHERE id = $1", quiet
    )
    await swept(connection)
    assert await closed(connection, quiet) == {quiet: "paper"}


async def test_the_sweep_in_live_sells_nothing_bought_on_paper(
    connection: asyncpg.Connection,
) -> None:
    """The deployment switched to live: what a retired strategy bought on paper is not sold
    from the live account, though it traded live too (a buy the risk manager rejected)."""
    retired = await strategy(connection, "retired paper holder", "retired")
    await order(connection, retired, 1, "buy", "0.5", at=-100)
    await decide(connection, signal_id(retired, SYMBOL, 2, "buy"), "buy", "0.5",
                 outcome="rejected", at=-50, environment="live")  # fmt: skip
    await last_close(connection, 100)
    assert await swept(connection, "live") == []
    [sell] = await swept(connection, "paper")
    assert sell.quantity == Decimal("0.5")


async def test_the_sweep_waits_while_the_active_set_changes(
    connection: asyncpg.Connection, database_url: str
) -> None:
    """A run or an activation holds the active set's lock until it commits: the sweep waits
    for it, so it reads the strategies as the change left them."""
    admin = await asyncpg.connect(database_url)
    try:
        async with admin.transaction():
            await admin.execute("SELECT pg_advisory_xact_lock($1)", ACTIVATION_LOCK)
            sweep = asyncio.create_task(sweep_orphans(connection, "paper"))
            await asyncio.sleep(0.5)
            assert not sweep.done()
        await asyncio.wait_for(sweep, 10)
    finally:
        await admin.close()


def test_the_first_signal_after_none_differs_by_environment() -> None:
    """A signal id is decided once ever: the first live catch-up after a switch from paper must
    not take the id a first paper catch-up took."""
    assert after(None, "paper") != after(None, "live")
    assert after("st1-X-5-buy", "paper") == after("st1-X-5-buy", "live")


async def test_an_active_strategys_exit_that_sold_nothing_is_sold_again(
    connection: asyncpg.Connection,
) -> None:
    """Its rule is out, so its pod signals nothing until the rule goes long again: the exit the
    risk manager rejected is queued again by the sweep, and once that sell filled, nothing
    more; the waits between attempts are a closing sell's."""
    active = await strategy(connection, "active, exit rejected")
    await order(connection, active, 1, "buy", "0.4", at=-4000)
    await last_close(connection, 80)
    exit_sell = signal_id(active, SYMBOL, 2, "sell")
    await decide(connection, exit_sell, "sell", "0.4", outcome="rejected", at=-100)
    [again] = await swept(connection)
    assert (again.strategy_id, again.side, again.quantity, again.price) == (
        str(active),
        "sell",
        Decimal("0.4"),
        Decimal(80),
    )
    assert again.signal_id == closing_id(active, exit_sell)
    assert await swept(connection) == []  # queued and not sent yet
    await decide(connection, again.signal_id, "sell", "0.4", outcome="rejected", at=-60)
    assert await swept(connection) == []  # 60 s after the first retry failed: 300 s are due
    await earlier(connection, active, 300)
    [third] = await swept(connection)
    assert third.signal_id == closing_id(active, again.signal_id)
    await decide(connection, third.signal_id, "sell", "0.4", at=-10)
    assert await swept(connection) == []  # approved, its order on its way
    await order(connection, active, third.signal_id.split("-")[2], "sell", "0.4", decided=True)
    await earlier(connection, active, 4000)
    assert await swept(connection) == []  # sold
    await order(connection, active, 3, "buy", "0.5", at=-5)  # in again: held, and not sold
    assert await swept(connection) == []


async def test_an_active_strategys_exit_the_executor_refused_or_filled_in_part_is_sold_again(
    connection: asyncpg.Connection,
) -> None:
    """An approval that waited past its lifetime for an executor that was away is rejected by
    it; an exit filled in part leaves the rest: each is sold again. An exit still open is
    not, nor a strategy whose latest signal is a buy."""
    refused, partly, open_, holding = [
        await strategy(connection, f"active exiting {n}") for n in range(4)
    ]
    for strategy_id in (refused, partly, open_, holding):
        await order(connection, strategy_id, 1, "buy", "0.3", at=-4000)
    await last_close(connection, 100)
    await order(connection, refused, 2, "sell", "0.3", filled="0", status="rejected", at=-50)
    await order(connection, partly, 2, "sell", "0.3", filled="0.1", status="cancelled", at=-50)
    await order(connection, open_, 2, "sell", "0.3", filled="0.1", status="partially_filled",
                at=-50)  # fmt: skip
    sells = {sell.strategy_id: sell.quantity for sell in await swept(connection)}
    assert sells == {str(refused): Decimal("0.3"), str(partly): Decimal("0.2")}


async def test_an_exit_tried_again_and_sold_after_the_rule_bought_again_is_not_tried_more(
    connection: asyncpg.Connection,
) -> None:
    """The exit was rejected and its sell queued again; meanwhile the rule went long and its
    buy filled, and the queued sell was decided after it (in the same batch, or later): it
    sold what was held before, and what the buy bought is the rule's, not sold by the sweep."""
    await last_close(connection, 100)
    for decided_with_the_buy in (False, True):
        active = await strategy(connection, f"active, bought again {decided_with_the_buy}")
        await order(connection, active, 1, "buy", "0.4", at=-4000)
        exit_sell = signal_id(active, SYMBOL, 2, "sell")
        await decide(connection, exit_sell, "sell", "0.4", outcome="rejected", at=-3000)
        await order(connection, active, 3, "buy", "0.5", at=-2000)
        again = after(exit_sell, "paper", "close")
        await order(connection, active, again, "sell", "0.4",
                    at=-2000 if decided_with_the_buy else -1000)  # fmt: skip
        assert await held_quantity(connection, active, SYMBOL, "paper") == Decimal("0.5")
        assert await swept(connection) == []


async def test_an_exit_resized_by_the_risk_manager_and_filled_is_not_tried_again(
    connection: asyncpg.Connection,
) -> None:
    """A live buy's commission taken in the coin leaves the account less than the order
    filled: the risk manager sells what the account holds, and the crumb left on the
    strategy's books is no failed exit (tried again, it would be rejected for ever), nor does
    an approval lost a day before make it one."""
    active = await strategy(connection, "active, exit resized")
    await decide(connection, signal_id(active, SYMBOL, 0, "buy"), "buy", "0.2", at=-90_000)
    await order(connection, active, 1, "buy", "0.4", at=-4000)
    await last_close(connection, 100)
    exit_sell = signal_id(active, SYMBOL, 2, "sell")
    await connection.execute(
        "INSERT INTO risk_decisions (signal_id, environment, symbol, side, outcome, "
        "requested_quantity, approved_quantity, price, client_order_id, decided_at) "
        "VALUES ($1, 'paper', $2, 'sell', 'resized', 0.4, 0.3996, 100, $1, now() - interval "
        "'1 hour')", exit_sell, SYMBOL,
    )  # fmt: skip
    await order(connection, active, 2, "sell", "0.3996", decided=True)
    assert await held_quantity(connection, active, SYMBOL, "paper") == Decimal("0.0004")
    assert await swept(connection) == []


async def test_an_exit_approved_and_never_an_order_is_sold_again_after_an_hour(
    connection: asyncpg.Connection,
) -> None:
    """Its message was lost on the way to the executor (dead-lettered): waited for while
    IN_FLIGHT_SECONDS last, then sold again."""
    active = await strategy(connection, "active, exit lost")
    await order(connection, active, 1, "buy", "0.4", at=-8000)
    await last_close(connection, 100)
    exit_sell = signal_id(active, SYMBOL, 2, "sell")
    await decide(connection, exit_sell, "sell", "0.4", at=-3000)
    assert await swept(connection) == []
    await earlier(connection, active, 700)
    [again] = await swept(connection)
    assert (again.signal_id, again.quantity) == (closing_id(active, exit_sell), Decimal("0.4"))


async def test_of_signals_decided_together_without_a_minute_the_rules_own_is_the_latest(
    connection: asyncpg.Connection,
) -> None:
    """A catch-up buy and a closing sell, both named after the same latest signal, decided in
    one batch: every pod takes the buy for the latest, whichever order they were stored in."""
    for first, second in (("buy", "sell"), ("sell", "buy")):
        strategy_id = 60 if first == "buy" else 61
        previous = signal_id(strategy_id, SYMBOL, 1, "sell")
        ids = {"buy": signal_id(strategy_id, SYMBOL, after(previous, "paper"), "buy"),
               "sell": signal_id(strategy_id, SYMBOL, after(previous, "paper", "close"),
                                 "sell")}  # fmt: skip
        for side in (first, second):
            await connection.execute(
                "INSERT INTO risk_decisions (signal_id, environment, symbol, side, outcome, "
                "requested_quantity, approved_quantity, price, decided_at) "
                "VALUES ($1, 'paper', $2, $3, 'approved', 1, 1, 100, '2026-01-01T00:00Z')",
                ids[side], SYMBOL, side,
            )  # fmt: skip
        assert await last_signal(connection, strategy_id, SYMBOL, "paper") == ("buy", ids["buy"])
