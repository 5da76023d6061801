"""The trading loop end to end: real services as processes on real PostgreSQL, RabbitMQ and
Redis; signals in, decisions, orders, fills, books and alerts out.

- The simulated market at high speed feeds the quotes; signals (the strategy stand-in) are
  sized, resized and rejected by two risk manager replicas, filled by the executor, the books
  add up and the alerts reach the local channel servers.
- The executor is SIGKILLed 20 times while signals flow, at random moments (a new seed each
  run) and inside fills, before and after their commit: no order lost, none doubled, the books
  still add up, each fill at its price and fee, and the equity stored is cash plus positions
  at market whenever it is looked at.
- Prices fall, the breaker trips, new exposure is refused (a resting buy approved before the
  trip is cancelled) while reducing orders pass; prices coming back and a SIGKILLed risk
  manager leave it open, a non-admin reset is refused and only the admin reset clears it.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import ROUND_DOWN, Decimal
from functools import partial

import aio_pika
import asyncpg
import httpx
import pytest
from aio_pika.abc import AbstractChannel

from mastertrade.core.prices import PriceUnavailableError
from mastertrade.execution.domain.halt import BREAKER
from mastertrade.local_stack import Child
from mastertrade_model.topology import DEAD_LETTER_QUEUE
from tests.e2e.books import (
    check_equity,
    check_fill_costs,
    check_ledger,
    check_orders,
    read_books,
    sample_equity,
    settled,
)
from tests.e2e.stack import (
    ADMIN_TOKEN,
    Stack,
    query,
    read_quote,
    set_quote,
    strategy_signal,
    wait_until,
)
from tests.services.crash import Landed, kill_inside_a_fill, kill_moments
from tests.services.fake_channels import FakeChannels
from tests.services.trading import new_symbol

pytestmark = pytest.mark.e2e

START = Decimal(10000)
MARKET = ("BTCUSDT", "ETHUSDT", "BNBUSDT")
LOT = Decimal("0.00001")
UNLIMITED_RATE = {"MAX_ORDERS_PER_MINUTE": "100000"}


@asynccontextmanager
async def broker(url: str) -> AsyncIterator[AbstractChannel]:
    connection = await aio_pika.connect(url)
    async with connection:
        yield await connection.channel(publisher_confirms=True)


async def dead_letters(channel: AbstractChannel) -> int:
    queue = await channel.declare_queue(DEAD_LETTER_QUEUE, passive=True)
    return int(queue.declaration_result.message_count or 0)


async def equity_stored(url: str, after: float = 0.0) -> bool:
    rows = await query(url, "SELECT extract(epoch FROM updated_at) AS at FROM account_equity")
    return bool(rows) and float(rows[0]["at"]) > after


async def revalued_after(url: str, moment: float) -> None:
    """Wait for a valuation that began after `moment`: the first one stored after it may have
    read its marks before (it was under way), the next one began once that one was stored."""
    await wait_until(partial(equity_stored, url, moment), "a revaluation")
    rows = await query(url, "SELECT extract(epoch FROM updated_at) AS at FROM account_equity")
    await wait_until(partial(equity_stored, url, float(rows[0]["at"])), "the next revaluation")


def sized(value: Decimal, price: Decimal) -> Decimal:
    return (value / price).quantize(LOT, rounding=ROUND_DOWN)


async def run_plan(channel: AbstractChannel, redis: str, count: int) -> list[str]:
    """`count` signals at about 20 a second, cycling through four kinds: an oversized BTC buy
    (resized to 20 % of equity, later refused at the 40 % symbol limit), a small ETH buy, a
    small ETH sell (approved when ETH is held, resized or rejected otherwise) and a sell of
    BNB, never held (rejected)."""
    sent = []
    for n in range(count):
        symbol, side, value = [("BTCUSDT", "buy", Decimal(3000)), ("ETHUSDT", "buy", Decimal(500)),
                               ("ETHUSDT", "sell", Decimal(300)),
                               ("BNBUSDT", "sell", Decimal(100))][n % 4]  # fmt: skip
        price = (await read_quote(redis, symbol)).mid
        sent.append(await strategy_signal(channel, symbol, side, sized(value, price), price))
        await asyncio.sleep(0.05)
    return sent


async def test_signals_are_sized_filled_booked_and_alerted(
    stack: Stack, channels: tuple[FakeChannels, dict[str, str]]
) -> None:
    fake, alert_env = channels
    env, started = stack.env, time.time()
    market = await stack.start(
        "market_data_service", MARKET_DATA_SOURCE="simulated",
        MARKET_DATA_SYMBOLS=",".join(MARKET), MARKET_DATA_SPEED="600",
        MARKET_DATA_BACKFILL_DAYS="0",
    )  # fmt: skip
    await wait_until(lambda: fresh_quotes(env["REDIS_URL"], started), "this run's live quotes")
    common = {**UNLIMITED_RATE, "PAPER_TRADING_INITIAL_BALANCE": str(START),
              "PRICE_MAX_AGE_SECONDS": "0"}  # fmt: skip
    await asyncio.gather(
        stack.start("risk_manager", **common), stack.start("risk_manager", **common),
        stack.start("order_executor", **common), stack.start("alert_system", **alert_env),
    )  # fmt: skip
    url = env["DATABASE_URL"]
    await wait_until(lambda: equity_stored(url), "the executor's first equity")
    async with broker(env["RABBITMQ_URL"]) as channel:
        signals = await run_plan(channel, env["REDIS_URL"], 40)
        await wait_until(lambda: settled(url, signals), "every signal decided and filled")
        await stop(stack, market)  # prices stand still from here
        await revalued_after(url, time.time())  # at the last prices
        marks = {s: (await read_quote(env["REDIS_URL"], s)).mid for s in MARKET}
        books = await read_books(url)
        await wait_until(lambda: alerted(fake), "alerts of a fill and a rejection on every channel")
        assert await dead_letters(channel) == 0
    check_orders(books, signals)
    check_ledger(books, START)
    check_equity(books, marks)
    outcomes = {row["outcome"] for row in books.decisions}
    assert outcomes == {"approved", "resized", "rejected"}
    reasons = " ".join(" ".join(json.loads(row["reasons"])) for row in books.decisions)
    assert "capped at 20.00% of equity" in reasons and "no BNBUSDT left to sell" in reasons
    assert books.positions.get("BTCUSDT", Decimal(0)) > 0


async def fresh_quotes(redis: str, since: float) -> bool:
    """Every symbol of the market quoted by this run (not an earlier one)."""
    try:
        books = [await read_quote(redis, symbol) for symbol in MARKET]
    except PriceUnavailableError:
        return False
    return all(book.ts_ms > since * 1000 for book in books)


async def alerted(fake: FakeChannels) -> bool:
    """A fill and a risk rejection reached Telegram, Slack and the signed webhook."""
    texts = {
        "telegram": [body["text"] for body in fake.received.get("telegram", [])],
        "slack": [body["text"] for body in fake.received.get("slack", [])],
        "webhook": [raw.decode() for _, raw in fake.received.get("webhook", [])],
    }
    return all(
        any("Filled:" in text for text in found) and any("Risk rejected" in text for text in found)
        for found in texts.values()
    )


STOP_SECONDS = 30.0  # a service stops on SIGTERM well within its Pod's grace period


async def stop(stack: Stack, child: Child) -> None:
    """SIGTERM, as Kubernetes stops a Pod: the service must exit on its own, in time (a hang
    fails here, after a SIGKILL, instead of holding up the whole run)."""
    child.process.terminate()
    try:
        code = await asyncio.wait_for(child.process.wait(), STOP_SECONDS)
    except TimeoutError:
        child.process.kill()
        code = None
    await child.process.wait()
    await child.pump
    stack.children.remove(child)
    assert code is not None, f"{child.spec.name} did not stop within {STOP_SECONDS} s of SIGTERM"


KILLS = 20


async def feed(
    channel: AbstractChannel, symbol: str, sent: dict[str, str], stop: asyncio.Event
) -> None:
    """Small orders at about 7 a second until told to stop: two buys, then a sell of one of
    them (approved only up to what is held and not being sold already)."""
    while not stop.is_set():
        side = "sell" if len(sent) % 3 == 2 else "buy"
        signal_id = await strategy_signal(channel, symbol, side, Decimal("0.5"), Decimal(100))
        sent[signal_id] = side
        await asyncio.sleep(0.15)


async def kill_repeatedly(stack: Stack, url: str, rng: random.Random) -> None:
    """Start the executor and SIGKILL it KILLS times, in turn: at a random moment once it
    serves; inside a fill, before its write of the orders and fills commits; inside a fill,
    after that commit and before the messages are acknowledged (tests/services/crash.py)."""
    for kill in range(KILLS):
        executor = await stack.start("order_executor", **CRASH_ENV)
        if kill % 3:
            landed = Landed.BEFORE_COMMIT if kill % 3 == 1 else Landed.AFTER_COMMIT
            await kill_inside_a_fill(url, partial(stack.kill, executor), landed)
        else:
            await asyncio.sleep(rng.uniform(0.05, 1.5))
            await stack.kill(executor)


BID, ASK, FEE_RATE, SLIPPAGE = Decimal("99.5"), Decimal(100), Decimal("0.001"), Decimal("0.0005")
CRASH_ENV = {**UNLIMITED_RATE, "PAPER_TRADING_INITIAL_BALANCE": "1000000",
             "PRICE_MAX_AGE_SECONDS": "0", "PAPER_FEE_RATE": str(FEE_RATE),
             "PAPER_SLIPPAGE_PCT": str(SLIPPAGE)}  # fmt: skip


async def test_sigkill_of_the_executor_twenty_times_loses_and_doubles_nothing(
    stack: Stack,
) -> None:
    """The equity stored is checked all along (`sample_equity`), against the one quote the
    symbol keeps: cash + positions at market at every step, crashes included."""
    env, symbol, rng, stop = stack.env, new_symbol(), kill_moments(), asyncio.Event()
    url, sent = env["DATABASE_URL"], dict[str, str]()
    await set_quote(env["REDIS_URL"], symbol, str(BID), str(ASK))
    await stack.start("risk_manager", **CRASH_ENV)
    first = await stack.start("order_executor", **CRASH_ENV)  # opens the account, values it
    await wait_until(lambda: equity_stored(url), "the executor's first equity")
    await stack.kill(first)
    sampled, marks = asyncio.Event(), {symbol: (BID + ASK) / 2}
    sampler = asyncio.create_task(sample_equity(url, marks, sampled))
    try:
        async with broker(env["RABBITMQ_URL"]) as channel:
            feeder = asyncio.create_task(feed(channel, symbol, sent, stop))
            try:
                await kill_repeatedly(stack, url, rng)
            finally:
                stop.set()
                await feeder
            await stack.start("order_executor", **CRASH_ENV)
            await wait_until(lambda: settled(url, list(sent)), "every order finished after "
                             "the crashes")  # fmt: skip
            books = await read_books(url)
            assert await dead_letters(channel) == 0
    finally:
        sampled.set()
    assert await sampler > 0, "no equity was stored to look at"
    check_orders(books, list(sent))
    outcomes = {row["signal_id"]: row["outcome"] for row in books.decisions}
    assert {outcomes[s] for s, side in sent.items() if side == "buy"} == {"approved"}
    sold = [fill for fill in books.fills if fill["side"] == "sell"]
    assert sold, "no sell was filled: the crashes were not tried on the selling side"
    # an approved sell never asks for more than is held: every order fills
    assert {row["status"] for row in books.orders} == {"filled"}
    check_ledger(books, Decimal(1000000))
    check_fill_costs(books, BID, ASK, FEE_RATE, SLIPPAGE)


async def decision(url: str, signal_id: str) -> asyncpg.Record | None:
    rows = await query(url, "SELECT * FROM risk_decisions WHERE signal_id = $1", signal_id)
    return rows[0] if rows else None


async def decide(
    channel: AbstractChannel, url: str, *args: object, **options: str
) -> asyncpg.Record:
    signal_id = await strategy_signal(channel, *args, **options)  # type: ignore[arg-type]
    return await wait_until(lambda: decision(url, signal_id), f"the decision of {signal_id}")


async def order_status(url: str, client_order_id: str) -> tuple[str, str | None] | None:
    rows = await query(url, "SELECT status, reason FROM orders WHERE client_order_id = $1",
                       client_order_id)  # fmt: skip
    return (rows[0]["status"], rows[0]["reason"]) if rows else None


async def cancelled_order(url: str, client_order_id: str) -> tuple[str, str | None] | None:
    found = await order_status(url, client_order_id)
    return found if found is not None and found[0] == "cancelled" else None


async def filled(url: str, client_order_id: str) -> bool:
    found = await order_status(url, client_order_id)
    return found is not None and found[0] == "filled"


async def test_falling_prices_trip_the_breaker_and_only_the_admin_resets_it(
    stack: Stack, channels: tuple[FakeChannels, dict[str, str]]
) -> None:
    fake, alert_env = channels
    env, steady = stack.env, new_symbol()
    falling = [new_symbol(), new_symbol()]
    url, redis = env["DATABASE_URL"], env["REDIS_URL"]
    for symbol in falling:
        await set_quote(redis, symbol, "99.99", "100.01")
    await set_quote(redis, steady, "9.99", "10.01")
    common = {"PAPER_TRADING_INITIAL_BALANCE": str(START), "PRICE_MAX_AGE_SECONDS": "0"}
    risk, *_ = await asyncio.gather(
        stack.start("risk_manager", **common), stack.start("order_executor", **common),
        stack.start("alert_system", **alert_env),
    )  # fmt: skip
    await wait_until(lambda: equity_stored(url), "the executor's first equity")
    async with broker(env["RABBITMQ_URL"]) as channel:
        for symbol in falling:  # 2 x 19 % of equity: 38 % of it in the falling symbols
            bought = await decide(channel, url, symbol, "buy", Decimal(19), Decimal(100))
            assert bought["outcome"] == "approved", bought["reasons"]
            await wait_until(partial(filled, url, bought["client_order_id"]), "the fill")
        probe = await decide(channel, url, steady, "buy", Decimal(1), Decimal(10))
        assert probe["outcome"] == "approved"  # the peak is recorded near 10000
        resting = await decide(channel, url, steady, "buy", Decimal(1), Decimal(9),
                               order_type="limit")  # below the book: it rests  # fmt: skip
        resting_id = resting["client_order_id"]
        assert await wait_until(lambda: order_status(url, resting_id), "the resting buy") == (
            "submitted",
            None,
        )
        for price in ("80", "50"):  # -50 % on 38 % of equity: about -19 % from the peak
            for symbol in falling:
                await set_quote(redis, symbol, price, price)
            await revalued_after(url, time.time())
        refused = await decide(channel, url, steady, "buy", Decimal(1), Decimal(10))
        cancelled = await wait_until(
            partial(cancelled_order, url, resting_id), "the resting buy cancelled by the halt"
        )
        reducing = await decide(channel, url, falling[0], "sell", Decimal(5), Decimal(50))
        await wait_until(lambda: filled(url, reducing["client_order_id"]), "the reducing sell")
        # the prices come back and the risk manager is killed and started again: neither
        # clears the breaker (its state is in PostgreSQL, and a recovery is no reset)
        for symbol in falling:
            await set_quote(redis, symbol, "99.99", "100.01")
        await revalued_after(url, time.time())
        await stack.kill(risk)
        risk = await stack.start("risk_manager", **common)
        async with httpx.AsyncClient(base_url=Stack.url(risk)) as client:
            reset = "/api/v1/admin/circuit-breaker/reset"
            anonymous = await client.post(reset)
            wrong = await client.post(reset, headers={"Authorization": "Bearer not-the-admin"})
            still = (await client.get("/api/v1/state")).json()
            refused_again = await decide(channel, url, steady, "buy", Decimal(1), Decimal(10))
            admin = await client.post(reset, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        after = await decide(channel, url, steady, "buy", Decimal(1), Decimal(10))
        await wait_until(lambda: breaker_alerted(fake), "the breaker alert on every channel")
    assert refused["outcome"] == "rejected" and "circuit breaker" in refused["reasons"]
    assert cancelled == ("cancelled", BREAKER)  # approved before the trip, cancelled after it
    assert reducing["outcome"] == "approved"
    assert (anonymous.status_code, wrong.status_code) == (401, 403)
    assert still["breaker_open"] is True
    assert refused_again["outcome"] == "rejected"
    assert admin.status_code == 200 and admin.json()["breaker_open"] is False
    assert after["outcome"] == "approved"
    books = await read_books(url)
    check_ledger(books, START)


async def breaker_alerted(fake: FakeChannels) -> bool:
    texts = [body["text"] for body in fake.received.get("telegram", [])]
    texts += [body["text"] for body in fake.received.get("slack", [])]
    texts += [raw.decode() for _, raw in fake.received.get("webhook", [])]
    tripped = [text for text in texts if "Circuit breaker tripped" in text]
    return len(tripped) == 3 and all("CRITICAL" in t.upper() for t in tripped)
