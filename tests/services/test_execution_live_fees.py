"""order_executor in live mode with BNB paying the fees (Binance's "use BNB for fees"): each
commission is in BNB, neither the traded coin nor the quote asset. What must hold: an order's fee
is its commissions valued at the BNB mid the executor has (never a guessed price: none without a
fresh quote, and it says so); the P&L of a round trip, proceeds less cost less both fees, is
what the equity gained; the equity is Binance's quote balance plus every coin it holds at its
mark, BNB included whether or not the books ever traded it; once BNB's quote is stale, no
equity is stored rather than one without the BNB."""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal

import asyncpg
import pytest
import redis.asyncio as aioredis

from mastertrade.core.bus import publish_json
from mastertrade.core.prices import TopOfBook, write_book
from mastertrade.execution.adapters.live_books import store_account
from mastertrade_model.topology import ORDERS
from tests.services.conftest import REDIS_TEST_URL
from tests.services.fake_binance import FakeBinance
from tests.services.helpers import own_connection, until, value_of
from tests.services.test_execution_live import approved, live_executor, order_row, streaming
from tests.services.trading import new_symbol, set_quote

pytestmark = pytest.mark.infra

BNB_MID = Decimal(300)  # BNBUSDT quoted 299.9 / 300.1
EQUITY = "SELECT equity, updated_at FROM account_equity WHERE environment = 'live'"
FILLS = "SELECT fee, fee_asset FROM fills WHERE client_order_id = $1"


async def quote_bnb(age: float = 0.0) -> None:
    """BNBUSDT's top of book at 299.9 / 300.1, `age` seconds old (an hour: older than
    PRICE_MAX_AGE_SECONDS, no price); both stamps written, whatever an earlier writer left."""
    client = aioredis.Redis.from_url(REDIS_TEST_URL)
    try:
        stamp = int((time.time() - age) * 1000)
        await write_book(client, TopOfBook("BNBUSDT", Decimal("299.9"), Decimal("300.1"), stamp,
                                           stamp))  # fmt: skip
    finally:
        await client.aclose()


async def stale_bnb_quote() -> None:
    await quote_bnb(age=3600)


async def stored_after(url: str, since: object) -> asyncpg.Record:
    """The live equity row, once a valuation stored after `since` (the database's clock)."""

    async def stored() -> bool:
        row = await _equity_row(url)
        return row is not None and row["updated_at"] > since

    await until(stored, f"a valuation stored after {since}", 15)
    row = await _equity_row(url)
    assert row is not None
    return row


async def _equity_row(url: str) -> asyncpg.Record | None:
    async with own_connection(url) as connection:
        return await connection.fetchrow(EQUITY)


async def valuation(url: str) -> Decimal:
    """The equity of a valuation from a Binance snapshot taken after this call: the second one
    stored after it (the first may have asked Binance for the account before)."""
    first = await stored_after(url, await value_of(url, "SELECT clock_timestamp()"))
    second = await stored_after(url, first["updated_at"])
    equity = second["equity"]
    assert isinstance(equity, Decimal)
    return equity


def warnings_naming(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno >= logging.WARNING and text in r.getMessage()]  # fmt: skip


async def said(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return bool(warnings_naming(caplog, text))


async def test_equity_counts_binance_s_bnb_at_its_mark_though_the_books_never_traded_it(
    trading_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """Binance holds 10000 USDT and 2 BNB (the fees' reserve, bought outside MasterTrade): the
    equity is 10000 + 2 x 300 from the first valuation, no BNBUSDT position needed. Once BNB's
    quote is stale, no equity is stored (the last one stands and ages) rather than one without
    the BNB, a fall the breaker would judge."""
    caplog.set_level(logging.WARNING, logger="mastertrade.execution")
    await quote_bnb()
    fake = FakeBinance(balances={"USDT": Decimal(10000), "BNB": Decimal(2)})
    async with live_executor(trading_env, fake) as (env, _, _):
        url = env["DATABASE_URL"]
        valued = await valuation(url)
        positions = await value_of(url, "SELECT count(*) FROM positions")
        await stale_bnb_quote()
        await until(lambda: said(caplog, "not valued"), "the executor saying the account is "
                    "not valued", 10)  # fmt: skip
        kept = await _equity_row(url)
    assert positions == 0
    assert valued == Decimal(10000) + 2 * BNB_MID
    assert kept is not None and kept["equity"] == valued


async def test_a_round_trip_paid_in_bnb_books_both_fees_at_the_bnb_mid_and_its_pnl_is_the_equity_s(
    trading_env: dict[str, str],
) -> None:
    """Buy 1 at 100, sell it at 110, BNB paying 0.075 % of each trade's value (0.00025 and
    0.000275 BNB at 300): each order's fee is its commissions x 300 (0.075 and 0.0825, as a fee
    in USDT would be), stored and published alike, and proceeds - cost - both fees (9.8425) is
    exactly what the equity, valued at the same BNB mid, gained: Binance's USDT up 10, its BNB
    down 0.000525."""
    symbol = new_symbol()
    await set_quote(symbol, "99", "101")
    await quote_bnb()
    fake = FakeBinance(prices={symbol: Decimal(100)}, bnb_pays_at=BNB_MID,
                       balances={"USDT": Decimal(10000), "BNB": Decimal(2)})  # fmt: skip
    # sized as the risk manager sizes it: the buy goes out capped, a LIMIT IOC at 102
    buy, sell = approved(symbol, "buy", "1", sized_price="100"), approved(symbol, "sell", "1")
    ids = (buy["client_order_id"], sell["client_order_id"])
    async with live_executor(trading_env, fake) as (env, recorder, channel):
        url = env["DATABASE_URL"]
        await streaming(fake)
        before = await valuation(url)
        await publish_json(channel, ORDERS.name, "order.approved", buy)
        await recorder.wait_for("order.filled")
        fake.prices[symbol] = Decimal(110)
        await set_quote(symbol, "109", "111")
        await publish_json(channel, ORDERS.name, "order.approved", sell)
        published = {e["client_order_id"]: e for e in await recorder.wait_for("order.filled", 2)}
        await asyncio.sleep(1)  # the stream's reports of the same trades arrive meanwhile
        after = await valuation(url)
        rows = {cid: await order_row(url, cid) for cid in ids}
        async with own_connection(url) as connection:
            fills = {cid: await connection.fetch(FILLS, cid) for cid in ids}
    assert fake.orders[ids[0]]["timeInForce"] == "IOC"
    for cid in ids:
        assert {f["fee_asset"] for f in fills[cid]} == {"BNB"}
        paid = sum(f["fee"] for f in fills[cid])
        assert rows[cid]["fee"] == paid * BNB_MID == Decimal(published[cid]["fee"])
    assert (rows[ids[0]]["fee"], rows[ids[1]]["fee"]) == (Decimal("0.075"), Decimal("0.0825"))
    proceeds = rows[ids[1]]["filled_quantity"] * rows[ids[1]]["average_price"]
    cost = rows[ids[0]]["filled_quantity"] * rows[ids[0]]["average_price"]
    realised = proceeds - cost - rows[ids[0]]["fee"] - rows[ids[1]]["fee"]
    assert realised == Decimal("9.8425") == after - before
    held = fake.balances  # what Binance's account holds now: no coin of `symbol` left
    assert held[symbol.removesuffix("USDT")] == 0
    assert after == held["USDT"] + held["BNB"] * BNB_MID


async def test_a_fee_in_bnb_without_a_fresh_bnb_quote_is_left_unvalued_and_said_not_guessed(
    trading_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """No fresh BNBUSDT quote: the fill keeps its commission in BNB with no price, the order's
    fee counts none of it (no price is made up), and a warning names the order and the
    commission, for someone to value it."""
    caplog.set_level(logging.WARNING, logger="mastertrade.execution")
    symbol = new_symbol()
    await set_quote(symbol, "99", "101")
    await stale_bnb_quote()
    fake = FakeBinance(prices={symbol: Decimal(100)}, bnb_pays_at=BNB_MID,
                       balances={"USDT": Decimal(10000), "BNB": Decimal(2)})  # fmt: skip
    buy = approved(symbol, "buy", "1")
    async with live_executor(trading_env, fake) as (env, recorder, channel):
        url = env["DATABASE_URL"]
        await streaming(fake)
        await publish_json(channel, ORDERS.name, "order.approved", buy)
        filled = (await recorder.wait_for("order.filled"))[0]
        await asyncio.sleep(1)  # the stream's report of the same trade arrives meanwhile
        row = await order_row(url, buy["client_order_id"])
        async with own_connection(url) as connection:
            fills = await connection.fetch(
                "SELECT * FROM fills WHERE client_order_id = $1", buy["client_order_id"]
            )
    warned = warnings_naming(caplog, buy["client_order_id"])
    assert len(warned) == 1 and "0.00025" in warned[0] and "BNB" in warned[0]
    assert row["fee"] == 0 == Decimal(filled["fee"])
    assert [(f["fee"], f["fee_asset"], f["fee_price"]) for f in fills] == [
        (Decimal("0.00025"), "BNB", None)
    ]


def binance_balances(**held: str) -> list[dict[str, str]]:
    """GET /api/v3/account's `balances`, all free."""
    return [{"asset": asset, "free": amount, "locked": "0"} for asset, amount in held.items()]


async def test_bnb_without_a_mark_counts_at_its_last_mark_as_dust_and_stops_the_equity_beyond(
    trading_env: dict[str, str],
) -> None:
    """Valuations of Binance's snapshots: 2 BNB at a mark of 300 count 600; with no mark, 2 BNB
    (600, beyond dust) store no equity at all, a crumb of 0.001 counts at its last mark (0.3),
    as dust at its cost does; the equity is never the account without its BNB."""
    async with asyncpg.create_pool(trading_env["DATABASE_URL"], min_size=1, max_size=2) as pool:
        held = binance_balances(USDT="10000", BNB="2")
        marked = await store_account(pool, held, "USDT", {"BNBUSDT": BNB_MID})
        unmarked = await store_account(pool, held, "USDT", {})
        crumb = await store_account(pool, binance_balances(USDT="10000", BNB="0.001"), "USDT", {})
    assert marked.equity == Decimal(10000) + 2 * BNB_MID
    assert unmarked.equity is None
    assert crumb.equity == Decimal(10000) + Decimal("0.001") * BNB_MID
