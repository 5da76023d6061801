"""order_executor in paper mode on real PostgreSQL, RabbitMQ and Redis: fills at the top of
book, exactly once, books that balance at every step, limit orders resting until crossed."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import ROUND_UP, Decimal
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
import redis.exceptions as redis_errors

from mastertrade.core.bus import publish_json
from mastertrade.core.messages import APPROVAL_LIFETIME_SECONDS, ApprovedOrder
from mastertrade.core.prices import TopOfBook, book_key, write_book
from mastertrade.execution.adapters import paper as paper_module
from mastertrade.execution.adapters import paper_batch
from mastertrade.execution.adapters.books import open_account
from mastertrade.execution.adapters.paper import PaperConfig, PaperVenue
from mastertrade.execution.adapters.quotes import Quotes
from mastertrade.execution.app import QUEUE as EXECUTOR_QUEUE
from mastertrade.execution.domain.halt import BREAKER, KILL_SWITCH
from mastertrade.execution.domain.paper import Quote
from mastertrade.risk.portfolio_metrics import TOTALS
from mastertrade_model.topology import DEAD_LETTER_QUEUE, ORDERS
from tests.infra import free_port
from tests.services.conftest import REDIS_TEST_URL
from tests.services.helpers import running, wait_for_status
from tests.services.trading import (
    Recorder,
    build_app,
    halt_trading,
    new_symbol,
    recording,
    set_quote,
    unmarked_events,
)

pytestmark = pytest.mark.infra


def approved(symbol: str, side: str, quantity: str, **extra: Any) -> dict[str, Any]:
    return {"client_order_id": f"mt-{uuid.uuid4().hex[:20]}", "signal_id": uuid.uuid4().hex,
            "symbol": symbol, "side": side, "order_type": "market", "quantity": quantity,
            **extra}  # fmt: skip


async def books_balance(url: str) -> tuple[Decimal, Decimal]:
    """(cash, equity) after checking equity == cash + positions at the stored marks' sum."""
    connection = await asyncpg.connect(url)
    try:
        row = await connection.fetchrow("SELECT * FROM account_equity WHERE environment='paper'")
        cash = await connection.fetchval(
            "SELECT free + locked FROM balances WHERE environment='paper' AND asset='USDT'"
        )
    finally:
        await connection.close()
    assert row is not None and cash >= 0
    assert row["cash"] == cash
    assert row["equity"] == row["cash"] + row["positions_value"]
    return cash, row["equity"]


@asynccontextmanager
async def paper_account(
    url: str, connections: int = 2
) -> AsyncIterator[tuple[asyncpg.Pool, aioredis.Redis]]:
    """A paper account opened with 1000 USDT, a pool on its database and the test Redis."""
    pool = await asyncpg.create_pool(url, min_size=1, max_size=connections)
    redis = aioredis.Redis.from_url(REDIS_TEST_URL)
    try:
        await open_account(pool, "paper", "USDT", Decimal(1000))
        yield pool, redis
    finally:
        await redis.aclose()
        await pool.close()


async def opened(client: httpx.AsyncClient) -> None:
    await wait_for_status(client, "/health", 200)
    for _ in range(100):
        if (await client.get("/api/v1/account")).json()["balances"]:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the paper account was never opened")


async def test_an_order_is_looked_up_only_by_a_client_order_id_that_could_exist(
    trading_env: dict[str, str],
) -> None:
    """A client order id is what the messages carry (at most 64 of [A-Za-z0-9._:-]): anything
    else is a 422 saying so, before the database (a NUL reached it) and without echoing it whole
    (a 20,000-character id came back in the 404)."""
    async with running(build_app("order_executor", trading_env)) as client:
        too_long = await client.get(f"/api/v1/orders/{'a' * 20_000}/fills")
        nul = await client.get("/api/v1/orders/a%00b/fills")
        unknown = await client.get("/api/v1/orders/no-such-order/fills")
    assert (too_long.status_code, nul.status_code, unknown.status_code) == (422, 422, 404)
    assert len(too_long.content) < 1000 and "at most 64" in too_long.text
    assert nul.json()["detail"][0]["loc"] == ["path", "client_order_id"]


async def test_market_orders_fill_once_and_the_books_balance(trading_env: dict[str, str]) -> None:
    symbol = new_symbol()
    await set_quote(symbol, "99", "100")
    buy = approved(symbol, "buy", "10")
    async with (
        recording(trading_env["RABBITMQ_URL"]) as (recorder, channel),
        running(build_app("order_executor", trading_env)) as client,
    ):
        await opened(client)
        for _ in range(3):  # a redelivered message must never fill twice
            await publish_json(channel, ORDERS.name, "order.approved", buy)
        filled = (await recorder.wait_for("order.filled"))[0]
        cash, equity = await books_balance(trading_env["DATABASE_URL"])
        sell = approved(symbol, "sell", "4")
        await publish_json(channel, ORDERS.name, "order.approved", sell)
        sold = (await recorder.wait_for("order.filled", 2))[1]
        cash_after, _ = await books_balance(trading_env["DATABASE_URL"])
        fills = (await client.get(f"/api/v1/orders/{buy['client_order_id']}/fills")).json()
        account = (await client.get("/api/v1/account")).json()
    assert len(fills) == 1 and len(recorder.of("order.filled")) == 2
    assert filled["average_price"] == "100.05000000"  # ask 100 + 0.05 % slippage
    assert Decimal(filled["fee"]) == Decimal("1.0005")
    assert cash == Decimal(10000) - Decimal("1000.5") - Decimal("1.0005")
    assert equity == cash + 10 * Decimal("99.5")  # positions at mid
    assert sold["average_price"] == "98.95050000"
    assert cash_after == cash + Decimal("395.802") - Decimal("0.395802")
    assert account["positions"] == [
        {"symbol": symbol, "quantity": "6", "average_price": "100.05000000"}
    ]


# the executor opening its account, held back by the test's lock on the balances
OPENING_WAITS = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'
"""


async def test_orders_queued_before_the_executor_started_wait_for_its_account(
    trading_env: dict[str, str],
) -> None:
    """The consumer starts with the broker connection, before the account is opened: orders
    already queued (a fresh install, a restart under load) are filled once it is, none
    dead-lettered for finding no balance. The test holds the account's opening back until the
    executor has taken every order."""
    symbol = new_symbol()
    await set_quote(symbol, "99", "100")
    orders = [approved(symbol, "buy", "1") for _ in range(5)]
    holder = await asyncpg.connect(trading_env["DATABASE_URL"])
    try:
        async with recording(trading_env["RABBITMQ_URL"]) as (recorder, channel):
            for order in orders:
                await publish_json(channel, ORDERS.name, "order.approved", order)
            queue = await channel.declare_queue(EXECUTOR_QUEUE, passive=True)
            await holder.execute("BEGIN; LOCK TABLE balances IN EXCLUSIVE MODE")  # reads still pass
            async with running(build_app("order_executor", trading_env)):
                deadline = time.monotonic() + 15
                while (await queue.declare()).message_count or not await holder.fetchval(
                    OPENING_WAITS
                ):
                    assert time.monotonic() < deadline, "the executor took no order"
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.5)  # time for an order taken to reach the database
                await holder.execute("COMMIT")  # the account opens
                await recorder.wait_for("order.filled", len(orders))
            dead = await channel.declare_queue(DEAD_LETTER_QUEUE, passive=True)
    finally:
        await holder.close()  # a failure meanwhile: its lock goes with it
    assert dead.declaration_result.message_count == 0
    filled = sorted(event["client_order_id"] for event in recorder.of("order.filled"))
    assert filled == sorted(order["client_order_id"] for order in orders)


async def test_a_stopping_executor_sends_and_marks_what_its_last_batches_filled(
    trading_env: dict[str, str],
) -> None:
    """Stopped right after its last fills, it leaves nothing to the outbox loops (which would
    send it again once the lease is over): every event sent once, and marked."""
    env = {**trading_env, "ORDER_POLL_SECONDS": "60"}  # no loop round marks them meanwhile
    symbol = new_symbol()
    await set_quote(symbol, "99", "100")
    orders = [approved(symbol, "buy", "1") for _ in range(5)]
    async with recording(env["RABBITMQ_URL"]) as (recorder, channel):
        async with running(build_app("order_executor", env)) as client:
            await opened(client)
            for order in orders:
                await publish_json(channel, ORDERS.name, "order.approved", order)
            await recorder.wait_for("order.filled", len(orders))
        left = await unmarked_events(env["DATABASE_URL"])
        await asyncio.sleep(0.5)  # time for a wrongly doubled event to show up
    assert left == 0
    filled = sorted(event["client_order_id"] for event in recorder.of("order.filled"))
    assert filled == sorted(order["client_order_id"] for order in orders)


async def test_orders_that_would_overdraw_or_oversell_are_rejected(
    trading_env: dict[str, str],
) -> None:
    symbol = new_symbol()
    await set_quote(symbol, "999", "1000")
    async with (
        recording(trading_env["RABBITMQ_URL"]) as (recorder, channel),
        running(build_app("order_executor", trading_env)) as client,
    ):
        await opened(client)
        await publish_json(channel, ORDERS.name, "order.approved", approved(symbol, "buy", "10"))
        await publish_json(channel, ORDERS.name, "order.approved", approved(symbol, "sell", "1"))
        missing = approved(new_symbol(), "buy", "1")
        await publish_json(channel, ORDERS.name, "order.approved", missing)
        # priced in BTC: booked in the USDT account, 1 coin would cost 0.05 USDT
        await set_quote(cross := new_symbol().replace("USDT", "BTC"), "0.0499", "0.05")
        await publish_json(channel, ORDERS.name, "order.approved", approved(cross, "buy", "1"))
        rejected = await recorder.wait_for("order.rejected", 4)
        cash, _ = await books_balance(trading_env["DATABASE_URL"])
    reasons = " | ".join(event["reason"] for event in rejected)
    assert "insufficient USDT balance: the order needs 10015.005" in reasons
    assert f"insufficient {symbol} position: selling 1, holding 0" in reasons
    assert "no quote for" in reasons
    assert f"not filled: {cross} is not quoted in USDT (QUOTE_ASSET)" in reasons
    assert cash == Decimal(10000)


@asynccontextmanager
async def resting_buy(
    trading_env: dict[str, str],
) -> AsyncIterator[tuple[str, dict[str, Any], Recorder, httpx.AsyncClient]]:
    """The executor running, with a limit buy of 2 at 95 resting under a 100/101 book: the
    symbol, the order, a recorder of the order events and a client of the executor's API."""
    symbol = new_symbol()
    await set_quote(symbol, "100", "101")
    order = approved(symbol, "buy", "2", order_type="limit", limit_price="95")
    async with (
        recording(trading_env["RABBITMQ_URL"]) as (recorder, channel),
        running(build_app("order_executor", trading_env)) as client,
    ):
        await opened(client)
        await publish_json(channel, ORDERS.name, "order.approved", order)
        await recorder.wait_for("order.submitted")
        yield symbol, order, recorder, client


async def test_a_limit_order_rests_with_its_cash_held_and_fills_when_crossed(
    trading_env: dict[str, str],
) -> None:
    async with resting_buy(trading_env) as (symbol, _, recorder, client):
        balances = (await client.get("/api/v1/account")).json()["balances"]
        await set_quote(symbol, "93", "94")  # the poll loop sees the cross
        filled = (await recorder.wait_for("order.filled"))[0]
        cash, equity = await books_balance(trading_env["DATABASE_URL"])
    assert [(b["asset"], Decimal(b["free"]), Decimal(b["locked"])) for b in balances] == [
        ("USDT", Decimal("9809.81"), Decimal("190.19"))  # 2 x 95 + 0.1 % fee held back
    ]
    # the exchange's rule: an order resting in the book trades at its own price (it is the
    # maker), however far the book gapped through it: 95, not the 94 ask
    assert Decimal(filled["average_price"]) == 95
    assert cash == Decimal(10000) - Decimal("190") - Decimal("0.19")
    assert equity == cash + 2 * Decimal("93.5")


async def test_a_limit_order_crossing_on_arrival_takes_the_book_never_worse_than_its_limit(
    trading_env: dict[str, str],
) -> None:
    """A limit order that crosses when it arrives is a taker: it trades at the top of book (with
    slippage), which is better than its limit, and never beyond its limit."""
    symbol = new_symbol()
    await set_quote(symbol, "99", "100")
    async with paper_account(trading_env["DATABASE_URL"]) as (pool, redis):
        venue = PaperVenue(lambda: pool, lambda: redis, PaperConfig())
        orders = [
            approved(symbol, "buy", "2", order_type="limit", limit_price="102"),
            approved(symbol, "buy", "1", order_type="limit", limit_price="100.01"),
            approved(symbol, "sell", "1", order_type="limit", limit_price="98"),
        ]
        executed = await venue.record_and_execute(
            [ApprovedOrder.model_validate(order) for order in orders]
        )
    prices = [event.average_price for event in executed.events]
    assert prices == [Decimal("100.05"), Decimal("100.01"), Decimal("98.9505")]


async def test_limit_sells_are_held_to_the_position_less_what_resting_sells_hold(
    trading_env: dict[str, str],
) -> None:
    """A limit sell rests only on coins held and not already held back by resting sells (as the
    exchange locks them); a market sell cannot take those either. Resting sells that are
    accepted fill at their limit once crossed."""
    symbol = new_symbol()
    await set_quote(symbol, "99", "100")

    def limit_sell(quantity: str) -> ApprovedOrder:
        order = approved(symbol, "sell", quantity, order_type="limit", limit_price="150")
        return ApprovedOrder.model_validate(order)

    async with paper_account(trading_env["DATABASE_URL"]) as (pool, redis):
        venue = PaperVenue(lambda: pool, lambda: redis, PaperConfig())

        async def status(order: ApprovedOrder) -> tuple[str, str | None]:
            event = (await venue.record_and_execute([order])).events[0]
            return event.status, event.reason

        naked = await status(limit_sell("1"))
        bought = await status(ApprovedOrder.model_validate(approved(symbol, "buy", "3")))
        first, second, third = limit_sell("2"), limit_sell("2"), limit_sell("1")
        resting = [await status(first), await status(second), await status(third)]
        market = await status(ApprovedOrder.model_validate(approved(symbol, "sell", "1")))
        await set_quote(symbol, "151", "152")
        filled = await venue.execute_many([first.client_order_id, third.client_order_id])
        held = await pool.fetchval(
            "SELECT quantity FROM positions WHERE environment = 'paper' AND symbol = $1", symbol
        )
    assert naked == ("rejected", f"insufficient {symbol} position: the sell needs 1, 0 is free "
                                 "(0 held, 0 held back by resting sells)")  # fmt: skip
    assert bought[0] == "filled"
    assert [s for s, _ in resting] == ["submitted", "rejected", "submitted"]
    assert resting[1][1] == (f"insufficient {symbol} position: the sell needs 2, 1 is free "
                             "(3 held, 2 held back by resting sells)")  # fmt: skip
    assert market == ("rejected", f"insufficient {symbol} position: the sell needs 1, 0 is free "
                                  "(3 held, 3 held back by resting sells)")  # fmt: skip
    assert [(e.status, e.average_price) for e in filled] == [("filled", Decimal(150))] * 2
    assert held == 0


HALTS = {"breaker_open": BREAKER, "kill_switch": KILL_SWITCH}


@pytest.mark.parametrize("flag", list(HALTS))
async def test_a_halt_refuses_buys_cancels_resting_ones_and_stops_sells_only_when_killed(
    trading_env: dict[str, str], flag: str
) -> None:
    """No new exposure while the breaker or kill switch is on, whatever the risk manager
    approved before it: a buy not yet executed is rejected, a resting one cancelled with its
    cash released. Under the breaker sells, which only reduce, rest and fill as before; under
    the kill switch ("stop every order") they are rejected and cancelled too."""
    symbol = new_symbol()
    await set_quote(symbol, "99", "100")

    def order(side: str, quantity: str, limit: str | None = None) -> ApprovedOrder:
        extra = {"order_type": "limit", "limit_price": limit} if limit else {}
        return ApprovedOrder.model_validate(approved(symbol, side, quantity, **extra))

    async with paper_account(trading_env["DATABASE_URL"]) as (pool, redis):
        venue = PaperVenue(lambda: pool, lambda: redis, PaperConfig())

        async def run(orders: list[ApprovedOrder]) -> list[tuple[str, str | None]]:
            return [(e.status, e.reason) for e in (await venue.record_and_execute(orders)).events]

        before = await run([order("buy", "3")])
        free_before_limit = await pool.fetchval("SELECT free FROM balances WHERE environment = "
                                                "'paper'")  # fmt: skip
        resting_buy, resting_sell = order("buy", "2", "90"), order("sell", "1", "150")
        resting = await run([resting_buy, resting_sell])
        await halt_trading(trading_env["DATABASE_URL"], "paper", flag)
        during = await run([order("buy", "1"), order("sell", "1")])
        swept = await venue.execute_many([resting_buy.client_order_id,
                                          resting_sell.client_order_id])  # fmt: skip
        await set_quote(symbol, "151", "152")
        crossed = await venue.execute_many([resting_sell.client_order_id])
        free, locked = await pool.fetchrow("SELECT free, locked FROM balances WHERE "
                                           "environment = 'paper'") or (None, None)  # fmt: skip
        held = await pool.fetchval("SELECT quantity FROM positions WHERE symbol = $1", symbol)
    reason = HALTS[flag]
    assert before == [("filled", None)] and resting == [("submitted", None)] * 2
    assert locked == 0  # the cancelled buy's reserve came back
    await books_balance(trading_env["DATABASE_URL"])
    if flag == "kill_switch":  # no order at all: the sells stop too, and nothing is sold
        assert during == [("rejected", reason), ("rejected", reason)]
        assert [(e.client_order_id, e.status, e.reason) for e in swept] == [
            (resting_buy.client_order_id, "cancelled", reason),
            (resting_sell.client_order_id, "cancelled", reason),
        ]
        assert crossed == [] and free == free_before_limit and held == 3
        return
    assert during == [("rejected", reason), ("filled", None)]
    assert [(e.client_order_id, e.status, e.reason) for e in swept] == [
        (resting_buy.client_order_id, "cancelled", reason)  # the sell rests on, untouched
    ]
    assert [(e.status, e.average_price) for e in crossed] == [("filled", Decimal(150))]
    proceeds = Decimal("98.9505") * Decimal("0.999")  # the market sell, at bid - slippage - fee
    assert free == free_before_limit + proceeds + 150 * Decimal("0.999")
    assert held == 1


def halt_after_read(
    monkeypatch: pytest.MonkeyPatch, url: str, read: int, flag: str
) -> list[str | None]:
    """Turn the risk manager's `flag` on right after the `read`-th paper batch read the books
    (before that batch writes); returns the halt each read saw, filled as batches read."""
    reads: list[str | None] = []

    async def read_then_halt(*args: Any, **kwargs: Any) -> paper_batch.BooksRead:
        books = await paper_batch.read_books(*args, **kwargs)
        reads.append(books.halted)
        if len(reads) == read:
            await halt_trading(url, "paper", flag)
        return books

    monkeypatch.setattr(paper_module, "read_books", read_then_halt)
    return reads


async def test_a_halt_between_a_batchs_read_and_its_write_stops_its_buys(
    trading_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The breaker trips after a batch read the books unhalted and before it wrote: the buy
    it decided to fill is not written; the batch is decided again on a read that sees the halt,
    so the buy is rejected with the breaker's reason and no cash leaves the account."""
    symbol = new_symbol()
    await set_quote(symbol, "99", "100")
    reads = halt_after_read(monkeypatch, trading_env["DATABASE_URL"], 1, "breaker_open")
    async with paper_account(trading_env["DATABASE_URL"]) as (pool, redis):
        venue = PaperVenue(lambda: pool, lambda: redis, PaperConfig())
        buy = ApprovedOrder.model_validate(approved(symbol, "buy", "1"))
        events = (await venue.record_and_execute([buy])).events
        free = await pool.fetchval("SELECT free FROM balances WHERE environment = 'paper'")
        stored = await pool.fetchrow("SELECT status, reason, (SELECT count(*) FROM fills f "
                                     "WHERE f.client_order_id = o.client_order_id) AS fills "
                                     "FROM orders o WHERE client_order_id = $1",
                                     buy.client_order_id)  # fmt: skip
    assert reads == [None, BREAKER]
    assert [(e.status, e.reason) for e in events] == [("rejected", BREAKER)]
    assert stored is not None and tuple(stored) == ("rejected", BREAKER, 0)
    assert free == 1000  # as the account was opened


async def test_the_kill_switch_between_a_batchs_read_and_its_write_stops_its_sell(
    trading_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kill switch comes on after a batch read the books and before it wrote its sell: the
    sell is not written (a sell adds no exposure, but the kill switch stops every order); decided
    again on a read that sees it, it is rejected, and the coins stay held."""
    symbol = new_symbol()
    await set_quote(symbol, "99", "100")
    # after the sell's batch read the books (the first read is the buy's)
    reads = halt_after_read(monkeypatch, trading_env["DATABASE_URL"], 2, "kill_switch")
    async with paper_account(trading_env["DATABASE_URL"]) as (pool, redis):
        venue = PaperVenue(lambda: pool, lambda: redis, PaperConfig())
        buy = ApprovedOrder.model_validate(approved(symbol, "buy", "1"))
        bought = (await venue.record_and_execute([buy])).events
        sell = ApprovedOrder.model_validate(approved(symbol, "sell", "1"))
        events = (await venue.record_and_execute([sell])).events
        held = await pool.fetchval("SELECT quantity FROM positions WHERE symbol = $1", symbol)
    assert [e.status for e in bought] == ["filled"]
    assert reads == [None, None, KILL_SWITCH]
    assert [(e.status, e.reason) for e in events] == [("rejected", KILL_SWITCH)]
    assert held == 1


async def test_the_poll_cancels_a_resting_buy_once_the_breaker_trips(
    trading_env: dict[str, str],
) -> None:
    async with resting_buy(trading_env) as (_, order, recorder, client):
        await halt_trading(trading_env["DATABASE_URL"], "paper")
        cancelled = (await recorder.wait_for("order.cancelled"))[0]
        balances = (await client.get("/api/v1/account")).json()["balances"]
    assert cancelled["client_order_id"] == order["client_order_id"]
    assert cancelled["reason"] == BREAKER
    assert [(b["asset"], Decimal(b["free"]), Decimal(b["locked"])) for b in balances] == [
        ("USDT", Decimal(10000), Decimal(0))
    ]


async def test_a_market_buy_is_refused_when_the_book_ran_away_from_its_sized_price(
    trading_env: dict[str, str],
) -> None:
    """Sized at 100 by the risk manager: a buy filling at 102.05 (ask 102 + slippage) is over
    the 2 % ceiling and refused; at 101.95 it fills. A sell fills however far the bid fell."""
    symbol = new_symbol()

    def sized(side: str) -> ApprovedOrder:
        return ApprovedOrder.model_validate(approved(symbol, side, "1", sized_price="100"))

    async with paper_account(trading_env["DATABASE_URL"]) as (pool, redis):
        config = PaperConfig(max_price_deviation=Decimal("0.02"))
        venue = PaperVenue(lambda: pool, lambda: redis, config)

        async def run(order: ApprovedOrder) -> tuple[str, Decimal | None, str | None]:
            event = (await venue.record_and_execute([order])).events[0]
            return event.status, event.average_price, event.reason

        await set_quote(symbol, "101", "102")
        refused = await run(sized("buy"))
        await set_quote(symbol, "101", "101.9")
        bought = await run(sized("buy"))
        await set_quote(symbol, "60", "61")
        sold = await run(sized("sell"))
    assert refused == ("rejected", None, "the market buy would fill at 102.051, more than 2% "
                       "above the 100 the risk manager sized it at "
                       "(MAX_PRICE_DEVIATION_PCT)")  # fmt: skip
    assert bought[:2] == ("filled", Decimal("101.95095"))
    assert sold[:2] == ("filled", Decimal("59.97"))


BALANCE = "SELECT free, locked FROM balances WHERE environment = 'paper'"


async def test_an_approval_older_than_its_lifetime_fills_nothing(
    trading_env: dict[str, str],
) -> None:
    """A buy and a sell replayed by hand from the dead letters after the approval's lifetime
    are recorded as rejected, with the time they were approved, and move no cash or coin; the
    same orders approved just now fill."""
    symbol, url = new_symbol(), trading_env["DATABASE_URL"]
    await set_quote(symbol, "99", "100")
    approved_at = datetime.now(UTC) - timedelta(seconds=APPROVAL_LIFETIME_SECONDS + 1)

    def order(side: str, **extra: Any) -> ApprovedOrder:
        return ApprovedOrder.model_validate(approved(symbol, side, "1", **extra))

    async with paper_account(url) as (pool, redis):
        venue = PaperVenue(lambda: pool, lambda: redis, PaperConfig())
        await venue.record_and_execute([order("buy")])
        stale = [order("buy", approved_at=approved_at), order("sell", approved_at=approved_at)]
        before = await pool.fetchrow(
            "SELECT free, locked FROM balances WHERE environment = 'paper'"
        )
        refused = (await venue.record_and_execute(stale)).events
        after = await pool.fetchrow(BALANCE)
        held = await pool.fetchval("SELECT quantity FROM positions WHERE environment = 'paper' "
                                   "AND symbol = $1", symbol)  # fmt: skip
        stamped = await pool.fetchval(
            "SELECT approved_at FROM orders WHERE client_order_id = $1", stale[0].client_order_id
        )
        sold = (await venue.record_and_execute([order("sell")])).events
    assert [e.status for e in refused] == ["rejected", "rejected"]
    assert all(e.reason and "an approval holds for 600 s" in e.reason for e in refused)
    assert (after, held, stamped) == (before, Decimal(1), approved_at)
    assert [e.status for e in sold] == ["filled"]


async def test_a_position_whose_quote_is_gone_is_not_valued_at_its_cost(
    trading_env: dict[str, str],
) -> None:
    """A bought position whose quote disappears (market data stalled) stops the account being
    valued: the stored equity is left to age (the risk manager then refuses buys) instead of
    being replaced by one at cost, a fall the breaker would trip on. Valued again once the
    quote is back, at it."""
    symbol, url = new_symbol(), trading_env["DATABASE_URL"]
    await set_quote(symbol, "99", "100")
    async with paper_account(url) as (pool, redis):
        free = PaperConfig(fee_rate=Decimal(0), slippage=Decimal(0))
        venue = PaperVenue(lambda: pool, lambda: redis, free)
        order = ApprovedOrder.model_validate(approved(symbol, "buy", "5"))
        assert [e.status for e in (await venue.record_and_execute([order])).events] == ["filled"]
        await set_quote(symbol, "199", "200")
        doubled = await venue.revalue()
        stored = await pool.fetchrow(EQUITY)
        marked = await pool.fetchval(MARK, symbol)
        await redis.delete(book_key(symbol))
        unvalued = await venue.revalue()
        still = await pool.fetchrow(EQUITY)
        unmarked = await pool.fetchval(MARK, symbol)
        await set_quote(symbol, "149", "150")
        again = await venue.revalue()
        marked_again = await pool.fetchval(MARK, symbol)
    cash = Decimal(1000) - 5 * Decimal(100)  # bought at the ask, no fee or slippage
    assert stored is not None and doubled == cash + 5 * Decimal("199.5") == stored["equity"]
    assert unvalued is None
    assert still == stored  # not rewritten, not even its time: it ages
    assert again == cash + 5 * Decimal("149.5")
    # each valuation's mark is kept with the position (the risk manager values it there), and
    # none while it has no quote: a mark from before would be taken for the market for good
    assert (marked, unmarked, marked_again) == (Decimal("199.5"), None, Decimal("149.5"))


async def test_a_valuation_never_waits_for_a_position_another_transaction_holds(
    trading_env: dict[str, str],
) -> None:
    """A fill being booked holds its position's row (live: the traded symbol, then BNB for the
    fee, in an order of its own): the valuation marks the other positions and leaves that one's
    mark for the next valuation, instead of waiting for it (two transactions each waiting for
    the other's rows would deadlock)."""
    held, free = new_symbol(), new_symbol()
    url = trading_env["DATABASE_URL"]
    for symbol in (held, free):
        await set_quote(symbol, "99", "100")
    async with paper_account(url) as (pool, redis):
        costless = PaperConfig(fee_rate=Decimal(0), slippage=Decimal(0))
        venue = PaperVenue(lambda: pool, lambda: redis, costless)
        buys = [ApprovedOrder.model_validate(approved(s, "buy", "1")) for s in (held, free)]
        await venue.record_and_execute(buys)
        await venue.revalue()
        for symbol in (held, free):
            await set_quote(symbol, "109", "110")
        booking = await asyncpg.connect(url)
        try:
            async with booking.transaction():
                await booking.execute("SELECT FROM positions WHERE symbol = $1 FOR UPDATE", held)
                valued = await asyncio.wait_for(venue.revalue(), 10)
            marks = {s: await pool.fetchval(MARK, s) for s in (held, free)}
        finally:
            await booking.close()
    assert valued == 1000 - 2 * 100 + 2 * Decimal("109.5")
    assert marks == {held: Decimal("99.5"), free: Decimal("109.5")}


EQUITY = "SELECT equity, updated_at FROM account_equity WHERE environment = 'paper'"
MARK = "SELECT mark FROM positions WHERE environment = 'paper' AND symbol = $1"


async def test_a_batch_of_orders_is_decided_in_order_against_the_running_books(
    trading_env: dict[str, str],
) -> None:
    """Seven orders in one batch, as if each were alone: the buys fill while cash lasts, then
    are refused; the sell sees the position the buys just built; one repeated id fills once."""
    symbol = new_symbol()
    await set_quote(symbol, "99", "100")
    url = trading_env["DATABASE_URL"]
    async with paper_account(url) as (pool, redis):
        venue = PaperVenue(lambda: pool, lambda: redis, PaperConfig())
        buys = [ApprovedOrder.model_validate(approved(symbol, "buy", "3")) for _ in range(4)]
        sell = ApprovedOrder.model_validate(approved(symbol, "sell", "5"))
        orders = [*buys, sell]
        ids = [o.client_order_id for o in orders]
        events = (await venue.record_and_execute([*orders, orders[0]])).events
        again = await venue.execute_many(ids)  # all finished: nothing to do
    assert [e.status for e in events] == ["filled", "filled", "filled", "rejected", "filled"]
    assert again == []
    assert "insufficient USDT balance" in (events[3].reason or "")
    cost = 3 * 3 * Decimal("100.05") * Decimal("1.001")  # three buys of 3 at ask + slippage
    proceeds = 5 * Decimal("98.95050000")
    fee = (proceeds * Decimal("0.001")).quantize(Decimal("0.00000001"), rounding=ROUND_UP)
    cash, equity = await books_balance(url)
    assert cash == Decimal(1000) - cost + proceeds - fee
    assert equity == cash + 4 * Decimal("99.5")


async def test_replicas_executing_the_same_orders_at_once_fill_each_once_within_the_cash(
    trading_env: dict[str, str],
) -> None:
    """Two replicas get ten buys at once, split between them, while one also reconciles all
    ten: the cash pays for three, so three fill and seven are refused, each order decided once,
    and the books end as they would one order after another."""
    symbol = new_symbol()
    await set_quote(symbol, "99", "100")
    url = trading_env["DATABASE_URL"]
    async with paper_account(url, connections=6) as (pool, redis):
        replicas = [PaperVenue(lambda: pool, lambda: redis, PaperConfig()) for _ in range(2)]
        orders = [ApprovedOrder.model_validate(approved(symbol, "buy", "3")) for _ in range(10)]
        ids = [o.client_order_id for o in orders]
        await asyncio.gather(
            *(replicas[n % 2].record_and_execute([order]) for n, order in enumerate(orders)),
            replicas[0].record_and_execute(orders[::2]),
            replicas[1].execute_many(ids),
        )
        statuses = await pool.fetch(
            "SELECT status, count(*) FROM orders WHERE client_order_id = ANY($1::text[]) "
            "GROUP BY status ORDER BY status",
            ids,
        )
        fills = await pool.fetchval("SELECT count(*) FROM fills")
        events = await pool.fetch(
            "SELECT payload->>'client_order_id' AS id, routing_key FROM outbox"
        )
        totals = {(r["metric"], r["label"]): (r["n"], r["notional"])
                  for r in await pool.fetch(TOTALS, "paper")}  # fmt: skip
        notional = await pool.fetchval("SELECT sum(price * quantity) FROM fills")
    assert [tuple(row) for row in statuses] == [("filled", 3), ("rejected", 7)]
    assert fills == 3
    assert sorted(row["id"] for row in events) == sorted(ids)  # one event per order
    # the totals behind the gauges (kept by triggers) count what the tables hold
    assert totals == {("orders", "filled"): (3, 0), ("orders", "rejected"): (7, 0),
                      ("fills", "buy"): (3, notional)}  # fmt: skip
    cash, equity = await books_balance(url)
    assert cash == Decimal(1000) - 3 * 3 * Decimal("100.05") * Decimal("1.001")
    assert equity == cash + 9 * Decimal("99.5")


async def test_a_batch_failing_before_its_commit_leaves_no_record_and_fills_once_later(
    trading_env: dict[str, str],
) -> None:
    """Paper orders are recorded and executed in one transaction: when the quotes cannot be
    read (Redis gone), neither the orders nor a fill remain; the batch coming again (the
    unacknowledged messages) records and fills each order once, and a third time does nothing."""
    symbol = new_symbol()
    await set_quote(symbol, "99", "100")
    url = trading_env["DATABASE_URL"]
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    gone = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    redis = aioredis.Redis.from_url(REDIS_TEST_URL)
    try:
        await open_account(pool, "paper", "USDT", Decimal(1000))
        orders = [ApprovedOrder.model_validate(approved(symbol, "buy", "1")) for _ in range(3)]
        ids = [o.client_order_id for o in orders]
        broken = PaperVenue(lambda: pool, lambda: gone, PaperConfig())
        with pytest.raises(redis_errors.ConnectionError):
            await broken.record_and_execute(orders)
        left = await pool.fetchval(
            "SELECT count(*) FROM orders WHERE client_order_id = ANY($1::text[])", ids
        )
        venue = PaperVenue(lambda: pool, lambda: redis, PaperConfig())
        executed = await venue.record_and_execute(orders)
        again = await venue.record_and_execute(orders)
        fills = await pool.fetchval(
            "SELECT count(*) FROM fills WHERE client_order_id = ANY($1::text[])", ids
        )
        stored = await pool.fetch(
            "SELECT id, routing_key, payload::text AS payload FROM outbox WHERE id = ANY($1)",
            [outbox_id for outbox_id, _ in executed.written],
        )
    finally:
        await gone.aclose()
        await redis.aclose()
        await pool.close()
    assert left == 0
    assert [(e.client_order_id, e.status) for e in executed.events] == [(i, "filled") for i in ids]
    # each outbox id handed back for publishing is the row holding that very event
    rows = {row["id"]: (row["routing_key"], json.loads(row["payload"])) for row in stored}
    assert [rows[outbox_id] for outbox_id, _ in executed.written] == [
        (key, body) for _, (_, key, body) in executed.written
    ]
    assert [body["client_order_id"] for _, (_, _, body) in executed.written] == ids
    assert again.events == [] and again.written == [] and fills == 3
    cash, equity = await books_balance(url)
    assert cash == Decimal(1000) - 3 * Decimal("100.05") * Decimal("1.001")
    assert equity == cash + 3 * Decimal("99.5")


async def test_a_quote_is_as_old_as_its_writing_not_as_the_market_time_it_carries() -> None:
    """A simulated market runs ahead of the clock: its quote's own time is an hour ahead, yet
    written two minutes ago with none since (the feed stopped) it is too old to fill against
    (PRICE_MAX_AGE_SECONDS 60); rewritten now, it is used; written by a clock two minutes ahead
    (it would never read as stale), it is not."""
    symbol, now_ms = new_symbol(), int(time.time() * 1000)
    redis = aioredis.Redis.from_url(REDIS_TEST_URL)
    quotes = Quotes(lambda: redis, 60.0)
    ahead = now_ms + 3_600_000
    try:
        await write_book(redis, TopOfBook(symbol, Decimal(99), Decimal(100), ahead,
                                          seen_ms=now_ms - 120_000))  # fmt: skip
        stopped = await quotes.quote(symbol)
        await write_book(redis, TopOfBook(symbol, Decimal(99), Decimal(100), ahead,
                                          seen_ms=now_ms))  # fmt: skip
        flowing = await quotes.quote(symbol)
        await write_book(redis, TopOfBook(symbol, Decimal(99), Decimal(100), ahead,
                                          seen_ms=now_ms + 120_000))  # fmt: skip
        skewed = await quotes.quote(symbol)  # a writer whose clock runs two minutes ahead
    finally:
        await redis.aclose()
    assert isinstance(stopped, str) and "quote is 120s old" in stopped
    assert flowing == Quote(Decimal(99), Decimal(100))
    assert isinstance(skewed, str) and "written 120s ahead of this clock" in skewed
