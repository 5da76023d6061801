"""order_executor in live mode against a local server speaking Binance's protocol: signed
orders, filters (a market order's notional at Binance's average price near a bound), error
codes, rate limits (the unfilled order count holding new orders only), unknown outcomes resolved
by query, fills booked once."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

import asyncpg
import httpx
import pytest
from aio_pika.abc import AbstractChannel
from websockets.asyncio.client import connect

from mastertrade.core.bus import publish_json
from mastertrade.core.messages import APPROVAL_LIFETIME_SECONDS
from mastertrade.execution.adapters import user_stream
from mastertrade.execution.adapters.binance import (
    ORDER_PATH,
    BinanceClient,
    BinanceRateLimitedError,
    BinanceRejectedError,
    BinanceUnknownError,
    order_interval_seconds,
    until_rollover,
)
from mastertrade.execution.adapters.listings import Listings
from mastertrade.execution.adapters.live import LiveVenue
from mastertrade.execution.adapters.orders import IN_FLIGHT, fetch_in_flight
from mastertrade.execution.adapters.paper import PaperVenue
from mastertrade.execution.adapters.user_stream import build_subscribe_request
from mastertrade.execution.domain.halt import BREAKER, KILL_SWITCH
from mastertrade.migrations.runner import migrate_database
from mastertrade_model.topology import ORDERS
from tests.services.fake_binance import FILTERS, KEY, SECRET, WS_API_PATH, FakeBinance, serving
from tests.services.helpers import dead_letters, running, wait_for_status
from tests.services.trading import (
    Recorder,
    build_app,
    halt_trading,
    new_symbol,
    recording,
    set_quote,
)

pytestmark = pytest.mark.infra


def live_env(env: dict[str, str], url: str) -> dict[str, str]:
    return {**env, "TRADING_ENVIRONMENT": "live", "BINANCE_API_KEY": KEY,
            "BINANCE_API_SECRET": SECRET, "BINANCE_BASE_URL": url,
            "BINANCE_WS_API_URL": ws_api_url(url), "BINANCE_RECV_WINDOW": "1000",
            "BINANCE_TIMEOUT_SECONDS": "1", "BINANCE_POLL_SECONDS": "0.5"}  # fmt: skip


def ws_api_url(url: str) -> str:
    """The fake's WebSocket API endpoint, from its base URL (http://...)."""
    return url.replace("http", "ws", 1) + WS_API_PATH


class LiveExecutor(NamedTuple):
    env: dict[str, str]
    recorder: Recorder
    channel: AbstractChannel


@asynccontextmanager
async def live_executor(
    trading_env: dict[str, str], fake: FakeBinance, **settings: str
) -> AsyncIterator[LiveExecutor]:
    """The order executor in live mode against `fake` (with `settings` over the tests' own),
    healthy, with a recorder of the order events and a channel to publish approved orders on."""
    async with serving(fake) as url:
        env = live_env(trading_env, url) | settings
        async with (
            recording(env["RABBITMQ_URL"]) as (recorder, channel),
            running(build_app("order_executor", env)) as client,
        ):
            await wait_for_status(client, "/health", 200)
            yield LiveExecutor(env, recorder, channel)


def approved(symbol: str, side: str, quantity: str, **extra: Any) -> dict[str, Any]:
    """A market order the risk manager approved for live trading."""
    return {"client_order_id": f"mt-{uuid.uuid4().hex[:20]}", "signal_id": uuid.uuid4().hex,
            "symbol": symbol, "side": side, "order_type": "market", "quantity": quantity,
            "environment": "live", **extra}  # fmt: skip


async def fills_of(url: str, client_order_id: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(url)
    try:
        return await connection.fetch(
            "SELECT fill_id, price, quantity, fee FROM fills WHERE client_order_id = $1",
            client_order_id,
        )
    finally:
        await connection.close()


async def order_row(url: str, client_order_id: str) -> asyncpg.Record:
    connection = await asyncpg.connect(url)
    try:
        row = await connection.fetchrow(
            "SELECT * FROM orders WHERE client_order_id = $1", client_order_id
        )
    finally:
        await connection.close()
    assert row is not None
    return row


async def streaming(fake: FakeBinance, timeout: float = 20.0) -> None:
    """Until the executor has subscribed to the user-data stream on the WebSocket API."""
    deadline = time.monotonic() + timeout
    while not fake.subscribed:
        assert time.monotonic() < deadline, "the executor never subscribed to the user-data stream"
        await asyncio.sleep(0.05)


async def test_a_market_order_is_signed_filtered_filled_and_booked_once(
    trading_env: dict[str, str],
) -> None:
    symbol = new_symbol()
    await set_quote(symbol, "29999", "30001")
    fake = FakeBinance(prices={symbol: Decimal(30000)})
    order = approved(symbol, "buy", "0.123456789")
    async with live_executor(trading_env, fake) as (env, recorder, channel):
        await streaming(fake)
        await publish_json(channel, ORDERS.name, "order.approved", order)
        filled = (await recorder.wait_for("order.filled"))[0]
        await asyncio.sleep(1)  # the stream's report of the same trade arrives meanwhile
        fills = await fills_of(env["DATABASE_URL"], order["client_order_id"])
        row = await order_row(env["DATABASE_URL"], order["client_order_id"])
    placed = [o for o in fake.orders.values() if o["clientOrderId"] == order["client_order_id"]]
    assert len(placed) == 1 and placed[0]["origQty"] == "0.12345"  # stepSize 0.00001, down
    assert filled["filled_quantity"] == "0.12345" and Decimal(filled["average_price"]) == 30000
    assert len(fills) == 1 and fills[0]["fee"] == Decimal("3.70350000")
    assert row["status"] == "filled" and row["exchange_order_id"] == str(placed[0]["orderId"])
    assert ("POST", "/api/v3/order", 200) in fake.requests


async def test_binance_error_codes_reject_with_the_code_and_filters_stop_bad_orders_early(
    trading_env: dict[str, str],
) -> None:
    symbol, cross = new_symbol(), new_symbol().replace("USDT", "BTC")
    await set_quote(symbol, "29999", "30001")
    await set_quote(cross, "0.0499", "0.05")
    fake = FakeBinance(prices={symbol: Decimal(30000), cross: Decimal("0.05")})
    too_big, too_small = approved(symbol, "buy", "1"), approved(symbol, "buy", "0.0001")
    too_many = approved(symbol, "buy", "60")  # within LOT_SIZE, beyond MARKET_LOT_SIZE
    in_btc = approved(cross, "buy", "1")  # listed, but its fills could not be booked in USDT
    async with live_executor(trading_env, fake) as (_, recorder, channel):
        for order in (too_big, too_small, too_many, in_btc):
            await publish_json(channel, ORDERS.name, "order.approved", order)
        rejected = await recorder.wait_for("order.rejected", 4)
    reasons = {event["client_order_id"]: event["reason"] for event in rejected}
    assert reasons[too_big["client_order_id"]].startswith("Binance -2010: Account has insufficient")
    assert reasons[too_small["client_order_id"]] == (
        "exchange filter: NOTIONAL: 3.0001 is below the minimum 5.00"  # at the ask
    )
    assert reasons[too_many["client_order_id"]] == (
        "exchange filter: MARKET_LOT_SIZE quantity: 60 is above the maximum 50.00000"
    )
    assert reasons[in_btc["client_order_id"]].startswith(
        f"not sent: {cross} is not quoted in USDT (QUOTE_ASSET)"
    )
    assert [o["clientOrderId"] for o in fake.orders.values()] == []  # none was placed


async def test_a_market_order_near_the_minimum_notional_is_held_to_binance_s_average_price(
    trading_env: dict[str, str],
) -> None:
    """Binance checks a market order's notional at its average price over avgPriceMins, not at
    the top of book: near the minimum (5), /api/v3/avgPrice decides, both ways; far from it the
    ask does, without that request."""
    symbol = new_symbol()
    await set_quote(symbol, "99", "100")
    fake = FakeBinance(prices={symbol: Decimal(100)}, avg_prices={symbol: Decimal(103)})
    taken = approved(symbol, "buy", "0.0499")  # 4.99 at the ask, 5.1397 at the average
    far = approved(symbol, "buy", "1")  # 100: far from the minimum
    async with live_executor(trading_env, fake) as (_, recorder, channel):
        for order in (taken, far):
            await publish_json(channel, ORDERS.name, "order.approved", order)
        filled = {event["client_order_id"] for event in await recorder.wait_for("order.filled", 2)}
        fake.avg_prices[symbol] = Decimal(97)
        refused = approved(symbol, "buy", "0.0505")  # 5.05 at the ask, 4.8985 at the average
        await publish_json(channel, ORDERS.name, "order.approved", refused)
        rejected = (await recorder.wait_for("order.rejected"))[0]
    assert filled == {taken["client_order_id"], far["client_order_id"]}
    assert rejected["client_order_id"] == refused["client_order_id"]
    assert rejected["reason"] == (
        "exchange filter: NOTIONAL at the average price 97: 4.8985 is below the minimum 5.00"
    )
    assert set(fake.placed) == filled  # the refused one never left
    assert [r for r in fake.requests if r[1] == "/api/v3/avgPrice"] == [
        ("GET", "/api/v3/avgPrice", 200)
    ] * 2  # taken and refused, not far


async def open_on_binance(fake: FakeBinance, client_order_id: str) -> None:
    for _ in range(200):
        if fake.orders.get(client_order_id, {}).get("status") == "NEW":
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{client_order_id} never rested on the fake Binance")


# (halt, the side it stops, a limit that rests on that side, the reason): the breaker stops buys
# only, the kill switch every order
HALTED = [("breaker_open", "buy", "29000", BREAKER), ("kill_switch", "sell", "31000", KILL_SWITCH)]


@pytest.mark.parametrize(("flag", "side", "limit", "reason"), HALTED,
                         ids=["breaker-buy", "kill-switch-sell"])  # fmt: skip
async def test_a_halt_cancels_the_open_orders_it_stops_on_binance_and_sends_no_new_ones(
    trading_env: dict[str, str], flag: str, side: str, limit: str, reason: str
) -> None:
    """An order the halt stops, resting on Binance, is cancelled within seconds of the halt
    (polled every 30 s: the cancel comes from the halt), and one approved before it is never
    sent."""
    symbol = new_symbol()
    await set_quote(symbol, "29999", "30001")
    held = {"USDT": Decimal(10000), symbol.removesuffix("USDT"): Decimal(1)}  # a sell's coins
    fake = FakeBinance(prices={symbol: Decimal(30000)}, balances=held)
    resting = approved(symbol, side, "0.01", order_type="limit", limit_price=limit)
    later = approved(symbol, side, "0.01")
    async with live_executor(trading_env, fake, BINANCE_POLL_SECONDS="30") as (
        env, recorder, channel,
    ):  # fmt: skip
        await streaming(fake)
        await publish_json(channel, ORDERS.name, "order.approved", resting)
        await open_on_binance(fake, resting["client_order_id"])
        await halt_trading(env["DATABASE_URL"], "live", flag)
        cancelled = (await recorder.wait_for("order.cancelled", timeout=5))[0]
        await publish_json(channel, ORDERS.name, "order.approved", later)
        rejected = (await recorder.wait_for("order.rejected"))[0]
        row = await order_row(env["DATABASE_URL"], resting["client_order_id"])
    assert fake.orders[resting["client_order_id"]]["status"] == "CANCELED"
    assert ("DELETE", "/api/v3/order", 200) in fake.requests
    assert (cancelled["client_order_id"], cancelled["reason"]) == (resting["client_order_id"],
                                                                   reason)  # fmt: skip
    assert (row["status"], row["reason"]) == ("cancelled", reason)
    assert rejected["client_order_id"] == later["client_order_id"]
    assert rejected["reason"] == f"not sent: {reason}"
    assert later["client_order_id"] not in fake.orders  # never sent


async def early_in_an_order_interval(fake: FakeBinance, needed: float) -> None:
    """Until `needed` seconds at least are left of the fake's ORDERS interval (fixed from the
    epoch, as Binance's): orders sent within them are counted together."""
    left = fake.orders_interval - (fake.now_ms() / 1000) % fake.orders_interval
    if left < needed:
        await asyncio.sleep(left + 0.05)


async def test_a_halt_just_after_too_many_new_orders_cancels_the_open_buys_at_once(
    trading_env: dict[str, str],
) -> None:
    """A burst of resting buys meets the unfilled order count (-1015, only new orders
    refused): the halt that follows cancels the one resting within seconds, not once the
    interval or a pause is over, and the refused one is never placed."""
    symbol = new_symbol()
    await set_quote(symbol, "29999", "30001")
    fake = FakeBinance(prices={symbol: Decimal(30000)}, orders_limit=1, orders_interval=10)
    resting = approved(symbol, "buy", "0.01", order_type="limit", limit_price="29000")
    refused = approved(symbol, "buy", "0.01", order_type="limit", limit_price="29000")
    async with live_executor(trading_env, fake, BINANCE_POLL_SECONDS="30") as (
        env, recorder, channel,
    ):  # fmt: skip
        await streaming(fake)
        await early_in_an_order_interval(fake, 3.0)
        await publish_json(channel, ORDERS.name, "order.approved", resting)
        await open_on_binance(fake, resting["client_order_id"])
        await publish_json(channel, ORDERS.name, "order.approved", refused)
        for _ in range(100):
            if ("POST", "/api/v3/order", 429) in fake.requests:
                break
            await asyncio.sleep(0.05)
        await halt_trading(env["DATABASE_URL"], "live")
        cancelled = (await recorder.wait_for("order.cancelled", timeout=5))[0]
        rejected = (await recorder.wait_for("order.rejected", timeout=20))[0]
    posts = [status for method, path, status in fake.requests if (method, path) == (
        "POST", "/api/v3/order")]  # fmt: skip
    assert posts == [200, 429] and 418 not in [status for _, _, status in fake.requests]
    assert cancelled["client_order_id"] == resting["client_order_id"]
    assert fake.orders[resting["client_order_id"]]["status"] == "CANCELED"
    assert (rejected["client_order_id"], rejected["reason"]) == (
        refused["client_order_id"], f"not sent: {BREAKER}",
    )  # fmt: skip
    assert refused["client_order_id"] not in fake.orders


def round_requests(requests: list[tuple[str, str, int]]) -> tuple[int, int]:
    """(GET /api/v3/account, GET /api/v3/order) among `requests`: what each reconcile round
    costs (weight 20, and 4 per order in flight)."""
    return (sum(r[:2] == ("GET", "/api/v3/account") for r in requests),
            sum(r[:2] == ("GET", ORDER_PATH) for r in requests))  # fmt: skip


async def test_a_halted_buy_binance_never_got_is_rejected_while_new_orders_are_paused(
    trading_env: dict[str, str],
) -> None:
    """A buy claimed but refused for the unfilled order count (-1015) stays `submitted`, and
    Binance knows no such order (-2013). Halted, it is rejected although new orders are still
    paused (rejecting it asks Binance nothing) once its resend window has passed; meanwhile the
    halt does not start a full round (the order queried, the account read) every second."""
    symbol = new_symbol()
    await set_quote(symbol, "29999", "30001")
    # an ORDERS interval of an hour: new orders stay paused for the whole test
    fake = FakeBinance(prices={symbol: Decimal(30000)}, orders_limit=1, orders_interval=3600)
    buy = approved(symbol, "buy", "0.01", order_type="limit", limit_price="29000")
    async with live_executor(trading_env, fake, BINANCE_POLL_SECONDS="30") as (
        env, recorder, channel,
    ):  # fmt: skip
        await early_in_an_order_interval(fake, 40.0)
        fake.order_counts[fake.order_interval()] = fake.orders_limit  # placed by another client
        await publish_json(channel, ORDERS.name, "order.approved", buy)
        for _ in range(100):
            if ("POST", ORDER_PATH, 429) in fake.requests:
                break
            await asyncio.sleep(0.05)
        await halt_trading(env["DATABASE_URL"], "live")
        halted_at = len(fake.requests)
        await asyncio.sleep(4)
        # one halt-triggered round (the order within its resend window: nothing changed), then
        # none for HALT_RETRY_SECONDS; not one a second
        accounts, queries = round_requests(fake.requests[halted_at:])
        assert accounts <= 2 and queries <= 2, f"{accounts} accounts, {queries} queries"
        rejected = (await recorder.wait_for("order.rejected", timeout=20))[0]
        until_rejected = round_requests(fake.requests[halted_at:])
    assert until_rejected[0] <= 4 and until_rejected[1] <= 4
    assert (rejected["client_order_id"], rejected["reason"]) == (
        buy["client_order_id"], f"not sent: {BREAKER}",
    )  # fmt: skip
    posts = [status for method, path, status in fake.requests if (method, path) == (
        "POST", ORDER_PATH)]  # fmt: skip
    assert posts == [429] and buy["client_order_id"] not in fake.orders


async def test_a_buy_that_fills_as_its_cancel_lands_is_booked_filled(
    trading_env: dict[str, str],
) -> None:
    """Binance refuses the cancel of an order that just filled (-2011): the executor asks what
    became of it and books the fill, not a cancellation, and without the halt's reason noted
    before the cancel left (the order was never cancelled)."""
    symbol = new_symbol()
    await set_quote(symbol, "29999", "30001")
    fake = FakeBinance(prices={symbol: Decimal(30000)}, fill_before_cancel=True)
    resting = approved(symbol, "buy", "0.01", order_type="limit", limit_price="29000")
    async with live_executor(trading_env, fake) as (env, recorder, channel):
        await publish_json(channel, ORDERS.name, "order.approved", resting)
        await open_on_binance(fake, resting["client_order_id"])
        await halt_trading(env["DATABASE_URL"], "live")
        filled = (await recorder.wait_for("order.filled"))[0]
        fills = await fills_of(env["DATABASE_URL"], resting["client_order_id"])
        row = await order_row(env["DATABASE_URL"], resting["client_order_id"])
    assert ("DELETE", "/api/v3/order", 400) in fake.requests  # -2011
    assert filled["filled_quantity"] == "0.01" and Decimal(filled["average_price"]) == 29000
    assert [(f["price"], f["quantity"]) for f in fills] == [(Decimal(29000), Decimal("0.01"))]
    assert recorder.of("order.cancelled") == []
    assert (row["status"], row["reason"], filled["reason"]) == ("filled", None, None)


async def test_a_market_buy_whose_ask_ran_away_from_its_sized_price_is_not_sent(
    trading_env: dict[str, str],
) -> None:
    symbol = new_symbol()
    await set_quote(symbol, "30999", "31000")
    fake = FakeBinance(prices={symbol: Decimal(31000)})
    order = approved(symbol, "buy", "0.01", sized_price="30000")  # 3.3 % below the ask
    async with live_executor(trading_env, fake) as (_, recorder, channel):
        await publish_json(channel, ORDERS.name, "order.approved", order)
        rejected = (await recorder.wait_for("order.rejected"))[0]
    assert rejected["reason"] == (
        "not sent: the market buy would fill at 31000, more than 2% above the 30000 the risk "
        "manager sized it at (MAX_PRICE_DEVIATION_PCT)"
    )
    assert fake.orders == {}


# A thin book on the ask side: 0.004 at the sized price, 0.003 1.7 % above it, then a gap to 10 %
THIN_BOOK = [("30000", "0.004"), ("30500", "0.003"), ("33000", "0.1")]


@pytest.mark.parametrize(
    ("deviation", "sent", "traded"),
    [
        ("0.02", ("LIMIT", "IOC", Decimal(30600)),  # capped 2 % above 30000
         [(Decimal(30000), Decimal("0.004")), (Decimal(30500), Decimal("0.003"))]),
        ("0", ("MARKET", "GTC", Decimal(0)),  # the guard off: Binance walks the book for it all
         [(Decimal(30000), Decimal("0.004")), (Decimal(30500), Decimal("0.003")),
          (Decimal(33000), Decimal("0.003"))]),
    ],
    ids=["capped", "guard-off"],
)  # fmt: skip
async def test_a_market_buy_never_walks_the_book_past_its_ceiling(
    trading_env: dict[str, str],
    deviation: str,
    sent: tuple[str, str, Decimal],
    traded: list[tuple[Decimal, Decimal]],
) -> None:
    """The top of book is at the sized price, so the buy passes the price guard; the book behind
    it is thin. Sent as a LIMIT IOC at its ceiling, it takes the levels up to there at their
    own prices and the rest expires: booked cancelled, with what it filled and why. Sent as
    MARKET (as every market buy was), its last 0.003 filled 10 % above the price it was sized
    at, beyond the exposure the risk manager allowed."""
    symbol = new_symbol()
    await set_quote(symbol, "29999", "30000")
    book = [(Decimal(price), Decimal(quantity)) for price, quantity in THIN_BOOK]
    fake = FakeBinance(prices={symbol: Decimal(30000)}, asks={symbol: book})
    order = approved(symbol, "buy", "0.01", sized_price="30000")
    cid = order["client_order_id"]
    settings = {"MAX_PRICE_DEVIATION_PCT": deviation}
    async with live_executor(trading_env, fake, **settings) as (env, recorder, channel):
        await publish_json(channel, ORDERS.name, "order.approved", order)
        kind = "order.cancelled" if deviation != "0" else "order.filled"
        event = (await recorder.wait_for(kind))[0]
        fills = await fills_of(env["DATABASE_URL"], cid)
        row = await order_row(env["DATABASE_URL"], cid)
    placed = fake.orders[cid]
    assert (placed["type"], placed["timeInForce"], Decimal(placed["price"])) == sent
    assert sorted((fill["price"], fill["quantity"]) for fill in fills) == traded
    filled = sum(quantity for _, quantity in traded)
    assert row["filled_quantity"] == filled and Decimal(event["filled_quantity"]) == filled
    if deviation == "0":
        assert row["status"] == "filled"
        return
    assert max(price for price, _ in traded) <= Decimal(30600)
    assert row["status"] == "cancelled" and placed["status"] == "EXPIRED"
    why = ("sent as a LIMIT IOC at 30600 (MAX_PRICE_DEVIATION_PCT above the 30000 it was sized "
           "at, rounded down to the tick): what the book did not offer at or below it expires "
           "unfilled")  # fmt: skip
    assert event["reason"] == row["reason"] == why
    assert fake.asks[symbol] == [(Decimal(33000), Decimal("0.1"))]  # the level beyond untouched


async def test_a_capped_market_buy_that_fills_in_full_carries_no_reason(
    trading_env: dict[str, str],
) -> None:
    symbol = new_symbol()
    await set_quote(symbol, "29999", "30000")
    fake = FakeBinance(prices={symbol: Decimal(30000)})
    order = approved(symbol, "buy", "0.01", sized_price="30000")
    async with live_executor(trading_env, fake) as (env, recorder, channel):
        await publish_json(channel, ORDERS.name, "order.approved", order)
        filled = (await recorder.wait_for("order.filled"))[0]
        row = await order_row(env["DATABASE_URL"], order["client_order_id"])
    assert fake.orders[order["client_order_id"]]["timeInForce"] == "IOC"
    assert filled["filled_quantity"] == "0.01" and Decimal(filled["average_price"]) == 30000
    assert row["status"] == "filled" and row["reason"] is None and row["price"] == 30000


async def test_a_capped_buy_whose_ceiling_rounds_below_the_ask_is_not_sent(
    trading_env: dict[str, str],
) -> None:
    """The ask, 30000.002, is within 0.00001 % of the 30000 the buy was sized at, but the ceiling
    (30000.003) goes out rounded down to the tick (0.01): at 30000.00, under the ask, it could
    only expire unfilled, and would spend one of the account's orders for nothing."""
    symbol = new_symbol()
    await set_quote(symbol, "29999", "30000.002")
    fake = FakeBinance(prices={symbol: Decimal("30000.002")})
    order = approved(symbol, "buy", "0.01", sized_price="30000")
    settings = {"MAX_PRICE_DEVIATION_PCT": "0.0000001"}
    async with live_executor(trading_env, fake, **settings) as (_, recorder, channel):
        await publish_json(channel, ORDERS.name, "order.approved", order)
        rejected = (await recorder.wait_for("order.rejected"))[0]
    assert order["client_order_id"] not in fake.orders
    assert rejected["reason"] == (
        "not sent: the ask 30000.002 is above 30000, the most the market buy may pay "
        "(30000.003, MAX_PRICE_DEVIATION_PCT above the price it was sized at, rounded down to the "
        "tick): it would expire unfilled"
    )


async def test_an_approval_older_than_its_lifetime_is_rejected_before_binance_hears_of_it(
    trading_env: dict[str, str],
) -> None:
    """An order.approved replayed by hand from the dead letters long after the risk manager
    approved it is recorded as rejected and never sent; one approved just now goes out."""
    symbol = new_symbol()
    await set_quote(symbol, "29999", "30001")
    fake = FakeBinance(prices={symbol: Decimal(30000)})
    approved_at = datetime.now(UTC) - timedelta(seconds=APPROVAL_LIFETIME_SECONDS + 60)
    stale = approved(symbol, "buy", "0.01", approved_at=approved_at.isoformat())
    fresh = approved(symbol, "buy", "0.01")
    async with live_executor(trading_env, fake) as (env, recorder, channel):
        for order in (stale, fresh):
            await publish_json(channel, ORDERS.name, "order.approved", order)
        rejected = (await recorder.wait_for("order.rejected"))[0]
        await recorder.wait_for("order.filled")
        row = await order_row(env["DATABASE_URL"], stale["client_order_id"])
    assert rejected["client_order_id"] == stale["client_order_id"]
    assert re.fullmatch(r"not sent: approved 66\d s ago \(.+\), and an approval holds for 600 s: "
                        r".+", rejected["reason"])  # fmt: skip
    assert (row["status"], row["approved_at"]) == ("rejected", approved_at)
    assert list(fake.placed) == [fresh["client_order_id"]]


async def test_an_order_approved_for_paper_never_reaches_binance(
    trading_env: dict[str, str],
) -> None:
    """The risk manager still trading paper while the executor already trades live (an upgrade
    switching both, restarted at different moments): its approvals, sized against the paper
    books, are refused and dead-lettered, and so are those of a risk manager too old to say
    which books it used; a live approval goes out."""
    symbol = new_symbol()
    await set_quote(symbol, "29999", "30001")
    fake = FakeBinance(prices={symbol: Decimal(30000)})
    paper = approved(symbol, "sell", "0.5", environment="paper")
    unnamed = {key: value for key, value in approved(symbol, "buy", "0.2").items()
               if key != "environment"}  # fmt: skip
    live = approved(symbol, "buy", "0.01")
    async with live_executor(trading_env, fake) as (env, recorder, channel):
        before = await dead_letters(env["RABBITMQ_URL"])
        for order in (paper, unnamed, live):
            await publish_json(channel, ORDERS.name, "order.approved", order)
        await recorder.wait_for("order.filled")
        deadline = time.monotonic() + 5
        while await dead_letters(env["RABBITMQ_URL"]) < before + 2:
            assert time.monotonic() < deadline, "the foreign approvals were not dead-lettered"
            await asyncio.sleep(0.05)
        recorded = await asyncpg.connect(env["DATABASE_URL"])
        try:
            rows = await recorded.fetchval(
                "SELECT count(*) FROM orders WHERE client_order_id = ANY($1)",
                [paper["client_order_id"], unnamed["client_order_id"]],
            )
        finally:
            await recorded.close()
    assert list(fake.placed) == [live["client_order_id"]]
    assert rows == 0


def stall_once(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, after: bool) -> None:
    """`owner.name` (a coroutine method) stalls 1.5 s, longer than recvWindow (1 s here), the
    first time it is called: `after` it returns, or before it starts."""
    original, stalls = getattr(owner, name), [1.5]

    async def stalled(self: Any, *args: Any, **kwargs: Any) -> Any:
        if stalls and not after:
            await asyncio.sleep(stalls.pop())
        done = await original(self, *args, **kwargs)
        if stalls and after:
            await asyncio.sleep(stalls.pop())
        return done

    monkeypatch.setattr(owner, name, stalled)


@pytest.mark.parametrize(
    ("where", "posts"),
    [
        # claimed too late to be sent in time: not sent, the reconcile sends it after its window
        ("after-the-claim", [200]),
        # stalled on the way out: Binance refuses it for its timestamp (-1021), sent once more
        ("while-sending", [400, 200]),
    ],
)
async def test_a_send_that_stalls_past_its_window_never_lands_late(
    trading_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, where: str, posts: list[int]
) -> None:
    """The pod stalls for longer than recvWindow between claiming an order and its request
    reaching Binance, by when another handler may send it again: the request, timestamped just
    before the claim, cannot land late beside the other; the order fills once."""
    if where == "after-the-claim":
        stall_once(monkeypatch, LiveVenue, "_claim", after=True)
    else:
        stall_once(monkeypatch, BinanceClient, "new_order", after=False)
    symbol = new_symbol()
    await set_quote(symbol, "29999", "30001")
    fake = FakeBinance(prices={symbol: Decimal(30000)})
    order = approved(symbol, "buy", "0.01")
    async with live_executor(trading_env, fake) as (_, recorder, channel):
        await publish_json(channel, ORDERS.name, "order.approved", order)
        await recorder.wait_for("order.filled", timeout=30)
    sent = [status for method, path, status in fake.requests
            if (method, path) == ("POST", "/api/v3/order")]  # fmt: skip
    assert sent == posts
    assert fake.placed[order["client_order_id"]] == 1


@pytest.mark.parametrize("trick", ["timeout-after", "503-after", "502-before"])
async def test_an_unknown_outcome_is_queried_never_assumed(
    trading_env: dict[str, str], trick: str
) -> None:
    symbol = new_symbol()
    await set_quote(symbol, "99", "101")
    # no stream reports: the order's fate must come from querying it
    fake = FakeBinance(prices={symbol: Decimal(100)}, misbehave=[trick], push_reports=False)
    order = approved(symbol, "buy", "1")
    async with live_executor(trading_env, fake) as (env, recorder, channel):
        await publish_json(channel, ORDERS.name, "order.approved", order)
        await recorder.wait_for("order.filled", timeout=30)
        fills = await fills_of(env["DATABASE_URL"], order["client_order_id"])
    posts = [r for r in fake.requests if r[:2] == ("POST", "/api/v3/order")]
    queries = [r for r in fake.requests if r[:2] == ("GET", "/api/v3/order")]
    assert len(fake.orders) == 1 and len(fills) == 1  # placed once, booked once
    assert queries, "the outcome was assumed instead of queried"
    # an order Binance never took (502 before) is sent again, once its recvWindow has passed
    assert len(posts) == (2 if trick == "502-before" else 1)
    if trick == "502-before":
        assert (queries[0][2]) == 400  # -2013: it does not exist


async def test_a_clock_behind_binance_is_resynced_after_minus_1021() -> None:
    """A request is sent again once resynced; an order is not (its caller stamps each send, see
    test_execution_live_recovery), it gets the -1021 with the clock synced."""
    fake = FakeBinance(prices={"BTCUSDT": Decimal(30000)}, clock_skew_ms=5000)
    async with serving(fake) as url:
        client = BinanceClient(url, KEY, SECRET, recv_window=1000)
        ordering = BinanceClient(url, KEY, SECRET, recv_window=1000)
        try:
            await client.request("GET", "/api/v3/account")
            answer = await client.new_order("mt-skew", "BTCUSDT", "buy", Decimal("0.001"))
            with pytest.raises(BinanceRejectedError) as bad_filter:
                await client.new_order("mt-lot", "BTCUSDT", "buy", Decimal("0.000001"))
            with pytest.raises(BinanceRejectedError) as missing:
                await client.query_order("BTCUSDT", "mt-never")
            with pytest.raises(BinanceRejectedError) as skewed:
                await ordering.new_order("mt-skew-2", "BTCUSDT", "buy", Decimal("0.001"))
        finally:
            await client.close()
            await ordering.close()
    assert answer["status"] == "FILLED"
    assert [r[2] for r in fake.requests[:4]] == [400, 200, 200, 200]  # -1021, /time, again
    assert 4000 < client.offset_ms < 6000 and 4000 < ordering.offset_ms < 6000
    assert skewed.value.code == -1021 and "mt-skew-2" not in fake.orders
    assert (bad_filter.value.code, bad_filter.value.message) == (-1013, "Filter failure: LOT_SIZE")
    assert missing.value.code == -2013


async def test_too_many_new_orders_holds_new_orders_only_until_the_interval_rolls_over() -> None:
    """-1015 (429 without Retry-After; the unfilled order count, per account) refuses new orders
    only: a query, a cancel and the account go through at once; a new order is refused here,
    not sent, until Binance's interval rolls over, then placed."""
    fake = FakeBinance(prices={"BTCUSDT": Decimal(30000)}, orders_limit=1, orders_interval=2)
    buy: dict[str, Any] = {"symbol": "BTCUSDT", "side": "buy", "quantity": Decimal("0.001"),
                           "price": Decimal(29000)}  # fmt: skip
    async with serving(fake) as url:
        client = BinanceClient(url, KEY, SECRET, recv_window=1000)
        try:
            await early_in_an_order_interval(fake, 1.5)
            await client.new_order("mt-rest-1", **buy)
            with pytest.raises(BinanceRateLimitedError) as limited:
                await client.new_order("mt-rest-2", **buy)
            queried = await client.query_order("BTCUSDT", "mt-rest-1")
            cancelled = await client.cancel_order("BTCUSDT", "mt-rest-1")
            await client.request("GET", "/api/v3/account")
            with pytest.raises(BinanceRateLimitedError, match="not sent") as held:
                await client.new_order("mt-rest-2", **buy)
            await asyncio.sleep(held.value.retry_after)
            placed = await client.new_order("mt-rest-2", **buy)
        finally:
            await client.close()
    assert 0 < limited.value.retry_after <= fake.orders_interval + 1  # the rest of it, a margin
    assert (queried["status"], cancelled["status"], placed["status"]) == ("NEW", "CANCELED", "NEW")
    posts = [status for method, path, status in fake.requests if (method, path) == (
        "POST", "/api/v3/order")]  # fmt: skip
    assert posts == [200, 429, 200]  # the held order was not sent


def test_an_order_count_pause_lasts_until_the_interval_its_message_names_rolls_over() -> None:
    assert order_interval_seconds("Too many new orders; current limit is 50 orders per 10 "
                                  "SECOND.") == 10  # fmt: skip
    assert order_interval_seconds("... current limit is 160000 orders per 1 DAY.") == 86400
    assert order_interval_seconds("Too many new orders.") == 10  # the shortest, by default
    # 3.4 s into a 10 s interval: the 6.6 s left of it, and a second for our clock
    assert until_rollover(10, 1_700_000_003_400) == pytest.approx(7.6)


@pytest.mark.parametrize(
    ("method", "status", "body", "headers", "orders_only"),
    [
        ("POST", 429, {"code": -1015, "msg": "Too many new orders"}, {}, True),
        ("POST", 429, {"code": -1015, "msg": "Too many new orders"}, {"Retry-After": "3"}, True),
        ("POST", 429, {}, {}, True),  # a new order refused, neither -1003 nor Retry-After
        ("POST", 429, {"code": -1003, "msg": "Too much request weight used"}, {}, False),
        ("POST", 429, {}, {"Retry-After": "3"}, False),
        ("POST", 418, {"code": -1003, "msg": "banned"}, {"Retry-After": "3"}, False),
        ("GET", 429, {}, {}, False),
    ],
)
async def test_a_rate_limit_pauses_new_orders_or_every_request_as_binance_blocks_them(
    method: str, status: int, body: dict[str, Any], headers: dict[str, str], orders_only: bool
) -> None:
    client = BinanceClient("http://binance.invalid", KEY, SECRET)
    await client.http.aclose()
    client.http = httpx.AsyncClient(
        base_url="http://binance.invalid",
        transport=httpx.MockTransport(lambda _: httpx.Response(status, json=body,
                                                               headers=headers)),
    )  # fmt: skip
    try:
        with pytest.raises(BinanceRateLimitedError):
            await client.request(method, ORDER_PATH, {"symbol": "BTCUSDT"})
        new_order = client.pause_left("POST", ORDER_PATH)
        query = client.pause_left("GET", ORDER_PATH)
    finally:
        await client.close()
    assert new_order > 0 and (query == 0) is orders_only
    if "Retry-After" in headers:
        assert 2 < new_order <= 3


async def test_too_much_request_weight_pauses_every_request_for_its_retry_after() -> None:
    """-1003 (429 with Retry-After, per IP): nothing at all is sent until it has passed, since
    Binance bans (418) a client that keeps sending; then requests go again."""
    fake = FakeBinance(prices={"BTCUSDT": Decimal(30000)}, misbehave=["429"], retry_after=1)
    async with serving(fake) as url:
        client = BinanceClient(url, KEY, SECRET, recv_window=1000)
        try:
            with pytest.raises(BinanceRateLimitedError) as limited:
                await client.new_order("mt-heavy", "BTCUSDT", "buy", Decimal("0.001"))
            with pytest.raises(BinanceRateLimitedError, match="not sent"):
                await client.query_order("BTCUSDT", "mt-heavy")
            with pytest.raises(BinanceRateLimitedError, match="not sent"):
                await client.cancel_order("BTCUSDT", "mt-heavy")
            with pytest.raises(BinanceRateLimitedError, match="not sent"):
                await client.request("GET", "/api/v3/account")
            await asyncio.sleep(limited.value.retry_after)
            answer = await client.new_order("mt-heavy", "BTCUSDT", "buy", Decimal("0.001"))
        finally:
            await client.close()
    assert limited.value.retry_after == 1 and answer["status"] == "FILLED"
    assert [status for _, _, status in fake.requests] == [429, 200]


async def test_a_bad_signature_or_key_is_refused_by_the_server() -> None:
    fake = FakeBinance(prices={"BTCUSDT": Decimal(30000)})
    async with serving(fake) as url:
        wrong_secret = BinanceClient(url, KEY, "not-the-secret")
        wrong_key = BinanceClient(url, "not-the-key", SECRET)
        try:
            with pytest.raises(BinanceRejectedError, match="-1022"):
                await wrong_secret.new_order("mt-a", "BTCUSDT", "buy", Decimal("0.001"))
            with pytest.raises(BinanceRejectedError, match="-2015"):
                await wrong_key.new_order("mt-b", "BTCUSDT", "buy", Decimal("0.001"))
        finally:
            await wrong_secret.close()
            await wrong_key.close()
    assert fake.orders == {}


async def test_a_subscription_with_a_bad_signature_key_or_clock_is_refused_by_the_server() -> None:
    """The WebSocket API checks a signed request as REST does: -1022, -2015, -1021 (with
    Binance's statuses); a good one is answered with a subscriptionId, counted per connection."""
    fake = FakeBinance(prices={"BTCUSDT": Decimal(30000)})
    async with serving(fake) as url:
        clients = {
            "wrong secret": BinanceClient(url, KEY, "not-the-secret"),
            "wrong key": BinanceClient(url, "not-the-key", SECRET),
            "behind": BinanceClient(url, KEY, SECRET, recv_window=1000),
            "good": BinanceClient(url, KEY, SECRET),
            "again": BinanceClient(url, KEY, SECRET),
        }
        clients["behind"].offset_ms = -2000  # 2 s behind Binance, with a recvWindow of 1 s
        answers = {}
        try:
            for name, client in clients.items():
                async with connect(ws_api_url(url)) as socket:
                    await socket.send(json.dumps(build_subscribe_request(client, name)))
                    answers[name] = json.loads(await socket.recv())
        finally:
            for client in clients.values():
                await client.close()
    errors = {name: (a["id"], a["status"], a["error"]["code"]) for name, a in answers.items()
              if "error" in a}  # fmt: skip
    assert errors == {
        "wrong secret": ("wrong secret", 400, -1022),
        "wrong key": ("wrong key", 401, -2015),
        "behind": ("behind", 400, -1021),
    }
    assert answers["good"] == {"id": "good", "status": 200, "result": {"subscriptionId": 0}}
    assert answers["again"]["result"] == {"subscriptionId": 0}  # its own connection's first


async def test_a_websocket_api_request_is_signed_as_binance_documents_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Binance's own example (an HMAC key, order.place): the signature of the params but
    `signature`, sorted by name, as `name=value` joined with `&`."""
    client = BinanceClient(
        "http://127.0.0.1:9", "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A",
        "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j", recv_window=100,
    )  # fmt: skip
    monkeypatch.setattr(client, "timestamp", lambda: 1645423376532)  # the example's
    try:
        params = client.ws_api_params({
            "symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC",
            "quantity": "0.01000000", "price": "52000.00", "newOrderRespType": "ACK",
        })  # fmt: skip
    finally:
        await client.close()
    assert params["signature"] == "cc15477742bd704c29492d96c7ead9414dfd8e0ec4a00f947bb5bb454ddbd08a"
    assert (params["apiKey"], params["recvWindow"], params["timestamp"]) == (
        client.api_key, 100, 1645423376532,
    )  # fmt: skip


async def test_the_reconcile_poll_reads_the_orders_in_flight_not_the_history(
    empty_database_url: str,
) -> None:
    """Each venue's reconcile loop asks for its orders in flight every ORDER_POLL_SECONDS; the
    pages that costs must not grow with the finished orders behind them (the live venue's
    `partially_filled` once made it read the whole order history on every poll)."""
    await migrate_database(empty_database_url, 60.0, lambda line: None)
    connection = await asyncpg.connect(empty_database_url)
    try:
        await connection.execute(HISTORY)
        in_flight = {status for venue in (PaperVenue, LiveVenue) for status in venue.in_flight}
        for environment in ("paper", "live"):
            await connection.executemany(
                "INSERT INTO orders (client_order_id, symbol, side, type, quantity, status, "
                "environment) VALUES ($1, 'BTCUSDT', 'buy', 'market', 1, $2, $3)",
                [(f"{environment}-{status}", status, environment) for status in in_flight],
            )
        await connection.execute("ANALYZE orders")
        pages = await connection.fetchval("SELECT relpages FROM pg_class WHERE relname = 'orders'")
        for venue, environment in ((PaperVenue, "paper"), (LiveVenue, "live")):
            statuses = list(venue.in_flight)
            found = await fetch_in_flight(connection, environment, statuses)
            assert sorted(found) == sorted(f"{environment}-{status}" for status in statuses)
            plan = json.loads(await connection.fetchval(
                f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {IN_FLIGHT}", environment, statuses, 0.0
            ))[0]["Plan"]  # fmt: skip
            touched = plan["Shared Hit Blocks"] + plan["Shared Read Blocks"]
            assert touched <= 10 < pages, (environment, touched, pages)
    finally:
        await connection.close()


# 20,000 finished orders of each environment, hundreds of pages of history
HISTORY = """
INSERT INTO orders (client_order_id, symbol, side, type, quantity, status, environment)
SELECT e || '-done-' || g, 'BTCUSDT', 'buy', 'market', 1,
       (ARRAY['filled', 'cancelled', 'rejected'])[g % 3 + 1], e
FROM generate_series(1, 20000) g, unnest(ARRAY['paper', 'live']) e
"""


async def test_the_user_stream_waits_out_a_rate_limit_pause_before_connecting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While the client is paused for the request weight (a REST 429), the stream does not
    reconnect and subscribe: Binance bans an IP that keeps asking while it is rate limited."""
    client = BinanceClient("http://127.0.0.1:9", KEY, SECRET, recv_window=1000)
    client.pause_requests(0.6)
    attempts: list[float] = []

    async def stream_once(*args: object) -> None:
        attempts.append(time.monotonic())
        raise user_stream.StreamEndedError("the test's stream ends at once")

    monkeypatch.setattr(user_stream, "_stream_once", stream_once)
    started = time.monotonic()
    following = asyncio.create_task(
        user_stream.run_user_stream(client, "ws://127.0.0.1:9", lambda: None, "USDT")  # type: ignore[arg-type,return-value]
    )
    await asyncio.sleep(1.0)
    following.cancel()
    await asyncio.gather(following, return_exceptions=True)
    await client.close()
    assert attempts and attempts[0] - started >= 0.6


def test_a_rate_limited_subscription_pauses_every_request_until_binance_says() -> None:
    """A 429 (or 418) to the subscription counts as the REST one does: every request of the
    client waits until the `retryAfter` Binance names (ms since the epoch)."""
    client = BinanceClient("http://127.0.0.1:9", KEY, SECRET, recv_window=1000)
    until = int(time.time() * 1000) + 5_000
    refused = user_stream.SubscriptionRefusedError({
        "id": "1", "status": 429,
        "error": {"code": -1003, "msg": "Too many requests.", "data": {"retryAfter": until}},
    })  # fmt: skip
    user_stream._pause_if_limited(client, refused)
    assert 4 <= client.pause_left("GET", "/api/v3/account") <= 5
    clock = user_stream.SubscriptionRefusedError(
        {"id": "2", "status": 400, "error": {"code": -1021, "msg": "Timestamp outside."}}
    )
    other = BinanceClient("http://127.0.0.1:9", KEY, SECRET, recv_window=1000)
    user_stream._pause_if_limited(other, clock)
    assert other.pause_left("GET", "/api/v3/account") == 0


class FlakyExchangeInfo:
    """exchangeInfo that answers once, then fails as Binance does when it is away (5xx)."""

    def __init__(self) -> None:
        self.calls = 0

    async def exchange_info(self, symbol: str) -> dict[str, Any]:
        self.calls += 1
        if self.calls > 1:
            raise BinanceUnknownError("GET /api/v3/exchangeInfo: HTTP 503")
        return {"symbols": [{"symbol": symbol, "status": "TRADING", "filters": FILTERS}]}


async def test_filters_that_aged_are_used_while_binance_cannot_give_them_again() -> None:
    """The hourly refresh failing (Binance away, a weight pause) does not hold every order of
    the symbol: the filters fetched before are used meanwhile; asked for fresh ones (after a
    -1013), or with none fetched yet, the failure is raised and the order waits."""
    listings = Listings(FlakyExchangeInfo(), ttl=0.0)  # type: ignore[arg-type]
    first = await listings.get("BTCUSDT")
    assert not isinstance(first, str)
    assert await listings.get("BTCUSDT") == first  # aged, the refresh failed: the ones before
    with pytest.raises(BinanceUnknownError):
        await listings.get("BTCUSDT", fresh=True)
    with pytest.raises(BinanceUnknownError):
        await listings.get("ETHUSDT")  # none fetched before


@pytest.mark.parametrize(
    ("answer", "taken"),
    [
        ({"mins": 5, "price": "97.50000000"}, Decimal("97.5")),
        ({"mins": 5, "price": "NaN"}, None),
        ({"mins": 5, "price": "1e400"}, None),
        ({"mins": 5, "price": "0"}, None),
        ({"mins": 5}, None),
    ],
)
async def test_an_average_price_is_taken_only_when_finite_positive_and_in_bounds(
    answer: dict[str, Any], taken: Decimal | None
) -> None:
    """A price Binance's answer cannot give (NaN, beyond 1e15, none, zero) checks no order:
    the request counts as unanswered, and the order waits for a usable one."""
    client = BinanceClient("http://binance.invalid", KEY, SECRET)
    await client.http.aclose()
    client.http = httpx.AsyncClient(
        base_url="http://binance.invalid",
        transport=httpx.MockTransport(lambda _: httpx.Response(200, json=answer)),
    )
    try:
        if taken is None:
            with pytest.raises(BinanceUnknownError, match="avgPrice"):
                await client.average_price("BTCUSDT")
        else:
            assert await client.average_price("BTCUSDT") == taken
    finally:
        await client.close()
