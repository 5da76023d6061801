"""order_executor in live mode when things go wrong: an order resent at most once however many
handlers see it missing, and never on a query asked while its last send could still land; the
first fills of a symbol booked at once both counted; one bad order never holding up the others,
rate limits waited out, outcomes Binance calls unknown queried, and so are answers with a number
no trade had (never booked), a user-data stream that never goes silent (subscribed again when
Binance ends it, drops it or refuses it) and books a fill the poll booked too once, commissions
taken in the bought coin, orders Binance would misread or refuse (a sell of coins not held)
refused before they leave or rejected, filters Binance changed on a listed symbol fetched
again (an order refused for them sent once more), and a listing with a filter's field missing or
unusable rejecting the order, naming the field."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import NamedTuple

import asyncpg
import pytest
import redis.asyncio as aioredis

from mastertrade.core.bus import publish_json
from mastertrade.core.messages import APPROVAL_LIFETIME_SECONDS
from mastertrade.execution.adapters import user_stream
from mastertrade.execution.adapters.binance import BinanceClient
from mastertrade.execution.adapters.live import LiveVenue
from mastertrade.execution.adapters.live_books import book_report
from mastertrade.execution.adapters.quotes import Quotes
from mastertrade.execution.domain.binance_status import BinanceAnswerError, OrderState, Trade
from mastertrade_model.topology import ORDERS
from tests.services.conftest import REDIS_TEST_URL
from tests.services.fake_binance import (
    FILTERS,
    KEY,
    SECRET,
    SUBSCRIBE,
    UNKNOWN_OUTCOMES,
    ApiConnection,
    BinanceError,
    FakeBinance,
    serving,
)
from tests.services.helpers import dead_letters, running, until, value_of, wait_for_status
from tests.services.test_execution_live import (
    approved,
    fills_of,
    live_env,
    live_executor,
    order_row,
    streaming,
    ws_api_url,
)
from tests.services.test_execution_live_fees import quote_bnb, valuation
from tests.services.trading import Recorder, build_app, new_symbol, set_quote

pytestmark = pytest.mark.infra

INSERT = """
INSERT INTO orders (client_order_id, symbol, side, type, quantity, price, status, environment,
    created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, 'live', now() - make_interval(secs => $8),
        now() - make_interval(secs => $8))
"""


async def add_order(
    url: str,
    symbol: str,
    status: str,
    age: float,
    *,
    price: str | None = "101",
    side: str = "buy",
    quantity: str = "1",
) -> str:
    """An order row of the live account, `age` seconds old (created and last sent)."""
    client_order_id = f"mt-{uuid.uuid4().hex[:20]}"
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            INSERT, client_order_id, symbol, side, "limit" if price else "market",
            Decimal(quantity), Decimal(price) if price else None, status, age,
        )  # fmt: skip
    finally:
        await connection.close()
    return client_order_id


@asynccontextmanager
async def venues(
    url: str, base_url: str, count: int, timeout: float = 1.0
) -> AsyncIterator[tuple[asyncpg.Pool, list[LiveVenue]]]:
    """`count` live venues on one database, as the handlers of a redelivered message and of
    the start-up reconcile are."""
    pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
    redis = aioredis.Redis.from_url(REDIS_TEST_URL)
    clients = [BinanceClient(base_url, KEY, SECRET, 1000, timeout=timeout) for _ in range(count)]
    quotes = Quotes(lambda: redis, 60.0)
    try:
        yield pool, [LiveVenue(lambda: pool, client, "USDT", quotes) for client in clients]
    finally:
        for client in clients:
            await client.close()
        await redis.aclose()
        await pool.close()


async def order_status(url: str, client_order_id: str, status: str) -> bool:
    found = await value_of(url, "SELECT status FROM orders WHERE client_order_id = $1",
                           client_order_id)  # fmt: skip
    return found == status


async def booked(url: str, client_order_id: str, quantity: Decimal) -> bool:
    total = await value_of(url, "SELECT COALESCE(sum(quantity), 0) FROM fills "
                           "WHERE client_order_id = $1", client_order_id)  # fmt: skip
    return total == quantity


async def position_of(url: str, symbol: str) -> object:
    return await value_of(url, "SELECT quantity FROM positions WHERE environment = 'live' "
                          "AND symbol = $1", symbol)  # fmt: skip


async def test_two_handlers_of_an_order_binance_never_got_resend_it_once(
    trading_env: dict[str, str],
) -> None:
    """After a kill -9 the broker's redelivery and the start-up reconcile both find the order
    `submitted` and Binance answering -2013: one claims the resend (the row unchanged since it
    read it), the other finds the row changed and leaves it, even while the resend is still on
    its way (here it times out, and the order it placed is found by querying)."""
    symbol, url = new_symbol(), trading_env["DATABASE_URL"]
    # both queries are decided before either resend lands; the second is answered late
    fake = FakeBinance(prices={symbol: Decimal(100)}, push_reports=False,
                       query_tricks=["", "slow"], misbehave=["timeout-after"])  # fmt: skip
    client_order_id = await add_order(url, symbol, "submitted", age=60)  # past the recvWindow
    async with serving(fake) as base_url, venues(url, base_url, 2) as (_, (first, second)):
        await asyncio.gather(first.execute(client_order_id), second.execute(client_order_id))
        row = await order_row(url, client_order_id)
    assert fake.placed[client_order_id] == 1
    assert row["status"] == "filled"


async def test_an_order_recorded_and_not_sent_before_its_approval_expired_is_never_sent(
    trading_env: dict[str, str],
) -> None:
    """An executor killed between recording an order and sending it, and back only after the
    approval's lifetime: its start-up reconcile rejects the order instead of sending it. One
    whose approval still holds is sent."""
    symbol, url = new_symbol(), trading_env["DATABASE_URL"]
    await set_quote(symbol, "99", "101")
    fake = FakeBinance(prices={symbol: Decimal(100)})
    ages = {"expired": APPROVAL_LIFETIME_SECONDS + 30, "holding": APPROVAL_LIFETIME_SECONDS - 30}
    ids = {name: await add_order(url, symbol, "new", age) for name, age in ages.items()}
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            "UPDATE orders SET approved_at = created_at WHERE client_order_id = ANY($1::text[])",
            list(ids.values()),
        )
    finally:
        await connection.close()
    async with serving(fake) as base_url, venues(url, base_url, 1) as (_, [venue]):
        for name in ages:
            await venue.execute(ids[name])
        rows = {name: await order_row(url, ids[name]) for name in ages}
    assert {name: row["status"] for name, row in rows.items()} == {
        "expired": "rejected", "holding": "filled"
    }  # fmt: skip
    assert "an approval holds for 600 s" in rows["expired"]["reason"]
    assert list(fake.placed) == [ids["holding"]]


async def test_an_order_binance_never_got_is_not_sent_again_once_its_approval_expired(
    trading_env: dict[str, str],
) -> None:
    """Claimed and marked `submitted` before a long outage (a ban, the network), its request
    never reached Binance: when Binance answers again, -2013 says it has no such order, and
    the order, approved longer ago than an approval holds, is rejected, not sent on the risk
    checks of then. An order recorded before approvals carried their time counts from its
    recording."""
    symbol, url = new_symbol(), trading_env["DATABASE_URL"]
    await set_quote(symbol, "99", "101")
    fake = FakeBinance(prices={symbol: Decimal(100)})
    client_order_id = await add_order(url, symbol, "submitted", age=APPROVAL_LIFETIME_SECONDS + 30)
    async with serving(fake) as base_url, venues(url, base_url, 1) as (_, [venue]):
        await venue.execute(client_order_id)
        row = await order_row(url, client_order_id)
    assert row["approved_at"] is None  # recorded before migration 0039
    assert row["status"] == "rejected" and "an approval holds for 600 s" in row["reason"]
    assert client_order_id not in fake.placed


async def test_an_order_missing_from_a_query_asked_inside_its_send_window_is_not_resent(
    trading_env: dict[str, str],
) -> None:
    """Binance answers -2013 to a query asked while the last send could still land (inside its
    recvWindow, 1 s here, plus the 5 s margin), however late the answer arrives: that send may
    land after the query was answered and fill, and a resend would buy twice (Binance refuses a
    client order id only while its order is open). A query asked after the window settles it."""
    symbol, url = new_symbol(), trading_env["DATABASE_URL"]
    fake = FakeBinance(prices={symbol: Decimal(100)}, push_reports=False,
                       query_tricks=["slow"], slow_seconds=2.0)  # fmt: skip
    client_order_id = await add_order(url, symbol, "submitted", age=0)
    async with serving(fake) as base_url, venues(url, base_url, 1, timeout=3.0) as (pool, (venue,)):
        await pool.execute("UPDATE orders SET updated_at = now() - interval '5 seconds' "
                           "WHERE client_order_id = $1", client_order_id)  # fmt: skip
        await venue.execute(client_order_id)  # asked at 5 s (the window: 6 s), answered at 7
        left, placed = await order_row(url, client_order_id), fake.placed[client_order_id]
        await venue.execute(client_order_id)  # asked after 7 s
        row = await order_row(url, client_order_id)
    assert left["status"] == "submitted" and placed == 0
    assert row["status"] == "filled" and fake.placed[client_order_id] == 1


async def test_a_duplicate_order_answer_is_queried_not_taken_for_a_rejection(
    trading_env: dict[str, str],
) -> None:
    """Binance answers -2010 "Duplicate order sent." when the client order id is open there:
    the order exists, so it is looked up, never rejected."""
    symbol, url = new_symbol(), trading_env["DATABASE_URL"]
    fake = FakeBinance(prices={symbol: Decimal(100)}, push_reports=False, query_tricks=["lost"])
    client_order_id = await add_order(url, symbol, "submitted", age=60, price="90")
    fake.place_limit(symbol, "1", "90", client_order_id)
    async with serving(fake) as base_url, venues(url, base_url, 1) as (_, (venue,)):
        await venue.execute(client_order_id)  # -2013 (a lagging answer), resent: -2010
        row = await order_row(url, client_order_id)
    assert fake.placed[client_order_id] == 1
    assert row["status"] == "submitted" and row["reason"] is None
    assert row["exchange_order_id"] == str(fake.orders[client_order_id]["orderId"])


async def test_a_clock_behind_binance_costs_one_refused_order_request_then_one_order(
    trading_env: dict[str, str],
) -> None:
    symbol, url = new_symbol(), trading_env["DATABASE_URL"]
    fake = FakeBinance(prices={symbol: Decimal(100)}, push_reports=False, clock_skew_ms=5000)
    client_order_id = await add_order(url, symbol, "new", age=60)
    async with serving(fake) as base_url, venues(url, base_url, 1) as (_, (venue,)):
        event = await venue.execute(client_order_id)
    posts = [status for method, path, status in fake.requests if path == "/api/v3/order"]
    assert posts == [400, 200] and fake.placed[client_order_id] == 1
    assert event is not None and event.status == "filled"


def order_posts(fake: FakeBinance) -> list[int]:
    return [status for method, path, status in fake.requests
            if (method, path) == ("POST", "/api/v3/order")]  # fmt: skip


def exchange_infos(fake: FakeBinance) -> int:
    return sum(path == "/api/v3/exchangeInfo" for _, path, _ in fake.requests)


async def test_filters_binance_changed_are_fetched_again_and_the_refused_order_sent_again(
    trading_env: dict[str, str],
) -> None:
    """Binance changes a listed symbol's stepSize: the order rounded to the filters cached
    before is refused (-1013), the filters fetched again and, as they changed, the order sent
    once more under them; once the cache's lifetime is over, an order is rounded to filters
    fetched again before it leaves."""
    symbol, url = new_symbol(), trading_env["DATABASE_URL"]
    await set_quote(symbol, "99", "101")
    fake = FakeBinance(prices={symbol: Decimal(100)}, push_reports=False)
    first, second, third = [
        await add_order(url, symbol, "new", age=1, price=None, quantity="1.23456") for _ in range(3)
    ]
    async with serving(fake) as base_url, venues(url, base_url, 1) as (_, (venue,)):
        await venue.execute(first)
        fake.set_filter(symbol, "LOT_SIZE", stepSize="0.001", minQty="0.001")
        event = await venue.execute(second)
        assert (order_posts(fake), exchange_infos(fake)) == ([200, 400, 200], 2)
        fake.set_filter(symbol, "LOT_SIZE", stepSize="0.01", minQty="0.01")
        venue.listings.ttl = 0.0  # the cached filters are too old from now on
        await venue.execute(third)
    assert event is not None and event.status == "filled"
    quantities = [fake.orders[cid]["origQty"] for cid in (first, second, third)]
    assert quantities == ["1.23456", "1.234", "1.23"] and fake.placed[second] == 1
    assert (order_posts(fake), exchange_infos(fake)) == ([200, 400, 200, 200], 3)
    row = await value_of(url, "SELECT quantity FROM orders WHERE client_order_id = $1", second)
    assert row == Decimal("1.234")


async def test_an_order_refused_for_filters_that_did_not_change_is_rejected(
    trading_env: dict[str, str],
) -> None:
    """A -1013 under filters Binance still has (here a market order's notional at Binance's
    average price, far below the ask it was checked at): fetched once more, unchanged, the
    order is rejected with Binance's code and message, not sent again."""
    symbol, url = new_symbol(), trading_env["DATABASE_URL"]
    await set_quote(symbol, "99", "101")
    fake = FakeBinance(prices={symbol: Decimal(100)}, avg_prices={symbol: Decimal("0.01")},
                       push_reports=False)  # fmt: skip
    client_order_id = await add_order(url, symbol, "new", age=1, price=None)
    async with serving(fake) as base_url, venues(url, base_url, 1) as (_, (venue,)):
        event = await venue.execute(client_order_id)
    assert event is not None and event.status == "rejected"
    assert event.reason == "Binance -1013: Filter failure: NOTIONAL"
    assert (order_posts(fake), exchange_infos(fake)) == ([400], 2)


def listed_with(kind: str, key: str, value: str | None) -> list[dict[str, object]]:
    """The fake's filters with `kind`'s `key` set to `value` (None: left out)."""
    return [
        {k: v for k, v in item.items() if k != key} | ({} if value is None else {key: value})
        if item["filterType"] == kind else item
        for item in FILTERS
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "key", "value", "said"),
    [
        ("LOT_SIZE", "stepSize", "-0.001", "an invalid LOT_SIZE.stepSize '-0.001'"),
        ("PRICE_FILTER", "tickSize", "NaN", "an invalid PRICE_FILTER.tickSize 'NaN'"),
        ("PRICE_FILTER", "minPrice", None, "no PRICE_FILTER.minPrice"),
        ("NOTIONAL", "maxNotional", "1e400", "an invalid NOTIONAL.maxNotional '1e400'"),
        ("NOTIONAL", "applyMinToMarket", "false", "an invalid NOTIONAL.applyMinToMarket 'false'"),
    ],
)
async def test_an_order_under_a_listing_with_an_unusable_filter_is_rejected_saying_so(
    trading_env: dict[str, str], kind: str, key: str, value: str | None, said: str
) -> None:
    """A filter's field Binance lists negative, NaN, out of bounds or not at all sizes no order
    (a negative stepSize would skip the rounding): the order is rejected before it leaves, its
    reason naming the field, and not left in flight to fetch the listing again every round."""
    symbol, url = new_symbol(), trading_env["DATABASE_URL"]
    await set_quote(symbol, "99", "101")
    fake = FakeBinance(prices={symbol: Decimal(100)}, push_reports=False)
    fake.symbol_filters[symbol] = listed_with(kind, key, value)
    client_order_id = await add_order(url, symbol, "new", age=1, quantity="1.23456")
    async with serving(fake) as base_url, venues(url, base_url, 1) as (_, (venue,)):
        for _ in range(2):  # the next round finds it rejected
            await venue.execute(client_order_id)
    row = await order_row(url, client_order_id)
    assert (row["status"], row["reason"]) == (
        "rejected", f"not sent: exchangeInfo for {symbol} has {said}",
    )  # fmt: skip
    assert (order_posts(fake), exchange_infos(fake)) == ([], 1)


async def test_one_stuck_order_holds_up_neither_the_others_nor_the_valuation(
    trading_env: dict[str, str],
) -> None:
    """Oldest first: an order for a symbol Binance does not list (rejected, saying so), one
    whose query fails (left in flight, logged), one Binance filled (booked); then the equity."""
    listed, other, url = new_symbol(), new_symbol(), trading_env["DATABASE_URL"]
    await set_quote(listed, "99", "101")  # the coin bought is in the account: valued at a mark
    fake = FakeBinance(prices={listed: Decimal(100), other: Decimal(100)}, push_reports=False)
    unlisted = await add_order(url, "NOPEUSDT", "new", age=30)
    failing = await add_order(url, other, "submitted", age=20)
    fake.query_errors[failing] = BinanceError(
        400, -1100, "Illegal characters found in a parameter."
    )
    filled = await add_order(url, listed, "submitted", age=10)
    fake.place_limit(listed, "1", "101", filled)
    async with serving(fake) as base_url:
        env = live_env(trading_env, base_url)
        async with running(build_app("order_executor", env)) as client:
            await wait_for_status(client, "/health", 200)
            await until(lambda: equity_stored(url), "the live equity")
            rows = {cid: await order_row(url, cid) for cid in (unlisted, failing, filled)}
    assert rows[unlisted]["status"] == "rejected"
    assert "NOPEUSDT is not listed on Binance (-1121" in rows[unlisted]["reason"]
    assert rows[failing]["status"] == "submitted"
    assert rows[filled]["status"] == "filled"


async def equity_stored(url: str) -> bool:
    connection = await asyncpg.connect(url)
    try:
        return bool(await connection.fetchval(
            "SELECT count(*) FROM account_equity WHERE environment = 'live'"))  # fmt: skip
    finally:
        await connection.close()


async def test_a_rate_limited_order_waits_out_retry_after_and_goes_once(
    trading_env: dict[str, str],
) -> None:
    """429 (-1003) is no rejection: the order stays in flight, nothing at all is sent during
    the Retry-After (Binance would answer 418 and ban), then it is placed once."""
    symbol = new_symbol()
    await set_quote(symbol, "99", "101")
    fake = FakeBinance(prices={symbol: Decimal(100)}, misbehave=["429"], retry_after=2)
    order = approved(symbol, "buy", "1")
    async with live_executor(trading_env, fake) as (_, recorder, channel):
        await publish_json(channel, ORDERS.name, "order.approved", order)
        await recorder.wait_for("order.filled", timeout=30)
    statuses = [status for _, _, status in fake.requests]
    posts = [status for method, path, status in fake.requests if method == "POST"
             and path == "/api/v3/order"]  # fmt: skip
    assert posts == [429, 200] and fake.placed[order["client_order_id"]] == 1
    assert 418 not in statuses and not recorder.of("order.rejected")


@pytest.mark.parametrize("trick", sorted(UNKNOWN_OUTCOMES))
async def test_an_execution_status_unknown_answer_is_queried_whatever_its_http_status(
    trading_env: dict[str, str], trick: str
) -> None:
    """Binance placed the order, then answered 400 with an error that does not say whether it
    did (-1007 says so; -1000, -1001 and -1008 do not say it did not): the order is queried,
    and its fill booked, not taken for refused."""
    symbol = new_symbol()
    await set_quote(symbol, "99", "101")
    fake = FakeBinance(prices={symbol: Decimal(100)}, misbehave=[trick], push_reports=False)
    order = approved(symbol, "buy", "1")
    async with live_executor(trading_env, fake) as (_, recorder, channel):
        await publish_json(channel, ORDERS.name, "order.approved", order)
        await recorder.wait_for("order.filled", timeout=30)
    assert fake.placed[order["client_order_id"]] == 1 and not recorder.of("order.rejected")


async def test_the_live_poll_leaves_binance_s_request_weight_to_the_stream(
    trading_env: dict[str, str],
) -> None:
    """With the default BINANCE_POLL_SECONDS (ORDER_POLL_SECONDS, 0.2 s here, is the paper
    venue's): a resting order is queried at start-up, not every ORDER_POLL_SECONDS."""
    symbol, url = new_symbol(), trading_env["DATABASE_URL"]
    fake = FakeBinance(prices={symbol: Decimal(100)})
    resting = await add_order(url, symbol, "submitted", age=10, price="90")
    fake.place_limit(symbol, "1", "90", resting)
    async with serving(fake) as base_url:
        env = live_env(trading_env, base_url)
        env.pop("BINANCE_POLL_SECONDS", None)
        async with running(build_app("order_executor", env)) as client:
            await wait_for_status(client, "/health", 200)
            await asyncio.sleep(3)
    queries = [r for r in fake.requests if r[:2] == ("GET", "/api/v3/order")]
    accounts = [r for r in fake.requests if r[:2] == ("GET", "/api/v3/account")]
    assert 1 <= len(queries) <= 2 and 1 <= len(accounts) <= 2


@asynccontextmanager
async def following(
    client: BinanceClient, base_url: str, pool: asyncpg.Pool
) -> AsyncIterator[None]:
    """The executor's user-data stream on the fake's WebSocket API, until the block ends."""
    task = asyncio.create_task(
        user_stream.run_user_stream(client, ws_api_url(base_url), lambda: pool, "USDT")
    )
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def subscriptions(fake: FakeBinance) -> list[tuple[str, str, int]]:
    return [request for request in fake.requests if request[0] == "WS"]


@pytest.mark.parametrize("failure", ["eventStreamTerminated", "connection dropped"])
async def test_the_user_stream_subscribes_again_on_a_new_connection(
    trading_env: dict[str, str], failure: str
) -> None:
    """Binance ending the subscription (`eventStreamTerminated`: the connection stays open, and
    silent) or dropping the connection (after 24 h): the connection is closed, and a new one
    subscribes; reports on it are booked."""
    symbol, url = new_symbol(), trading_env["DATABASE_URL"]
    fake = FakeBinance(prices={symbol: Decimal(100)})
    client_order_id = await add_order(url, symbol, "submitted", age=1)
    async with (
        serving(fake) as base_url,
        venues(url, base_url, 1, timeout=3.0) as (pool, (venue,)),
        following(venue.client, base_url, pool),
    ):
        await streaming(fake)
        [first] = fake.subscribed
        fake.terminate() if failure == "eventStreamTerminated" else fake.disconnect()
        await until(lambda: subscribed_anew(fake, first), "a subscription on a new connection")
        fake.place_limit(symbol, "1", "101", client_order_id)
        await until(lambda: is_filled(url, client_order_id), "the report booked")
    assert not first.open  # the silent connection was closed
    assert subscriptions(fake) == [("WS", SUBSCRIBE, 200)] * 2


async def subscribed_anew(fake: FakeBinance, old: ApiConnection) -> bool:
    return not old.open and any(c is not old for c in fake.subscribed)


async def test_a_refused_subscription_is_logged_and_tried_again_with_backoff(
    trading_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Binance refuses the subscription (-1022: the key's secret is not the one it has): each
    refusal is logged with Binance's code and message, and the next try is on a new connection
    after a backoff that doubles. Once the secrets match again, the stream is subscribed and its
    reports are booked."""
    monkeypatch.setattr(user_stream, "FIRST_BACKOFF", 0.2)
    caplog.set_level(logging.WARNING, logger="mastertrade.execution.stream")
    symbol, url = new_symbol(), trading_env["DATABASE_URL"]
    fake = FakeBinance(prices={symbol: Decimal(100)}, keys={KEY: "a-secret-renewed-on-binance"})
    client_order_id = await add_order(url, symbol, "submitted", age=1)
    async with (
        serving(fake) as base_url,
        venues(url, base_url, 1, timeout=3.0) as (pool, (venue,)),
        following(venue.client, base_url, pool),
    ):
        await until(lambda: refused(fake, 3), "three refused subscriptions")
        fake.keys[KEY] = SECRET
        await streaming(fake)
        closed = [not connection.open for connection in fake.connections[:3]]
        fake.place_limit(symbol, "1", "101", client_order_id)
        await until(lambda: is_filled(url, client_order_id), "the report booked")
    ended = [r.getMessage() for r in caplog.records if "refused the subscription" in r.getMessage()]
    assert ended[:3] == [
        "user-data stream ended (Binance refused the subscription: -1022 Signature for this "
        f"request is not valid. (status 400)); subscribing again on a new connection in {delay}s"
        for delay in ("0.2", "0.4", "0.8")
    ]
    opened = [connection.opened_at for connection in fake.connections[:4]]
    gaps = [later - earlier for earlier, later in itertools.pairwise(opened)]
    assert all(gap >= delay for gap, delay in zip(gaps, (0.2, 0.4, 0.8), strict=True)), gaps
    assert closed == [True] * 3  # each refused connection was given up
    assert subscriptions(fake)[-1] == ("WS", SUBSCRIBE, 200)


async def refused(fake: FakeBinance, count: int) -> bool:
    return len([r for r in subscriptions(fake) if r[2] == 400]) >= count


async def test_a_subscription_refused_for_our_clock_resyncs_it_and_goes_through(
    trading_env: dict[str, str],
) -> None:
    """Our clock 5 s behind Binance's, recvWindow 1 s: the subscription is refused (-1021), the
    clock re-synced from /api/v3/time (the REST client's offset, which stamps both), and the
    next subscription goes through."""
    url = trading_env["DATABASE_URL"]
    fake = FakeBinance(prices={"BTCUSDT": Decimal(100)}, clock_skew_ms=5000)
    async with (
        serving(fake) as base_url,
        venues(url, base_url, 1, timeout=3.0) as (pool, (venue,)),
        following(venue.client, base_url, pool),
    ):
        await streaming(fake)
        offset = venue.client.offset_ms
    assert subscriptions(fake) == [("WS", SUBSCRIBE, 400), ("WS", SUBSCRIBE, 200)]
    assert ("GET", "/api/v3/time", 200) in fake.requests and 4000 < offset < 6000


async def is_filled(url: str, client_order_id: str) -> bool:
    return bool((await order_row(url, client_order_id))["status"] == "filled")


async def test_a_commission_in_the_bought_coin_is_not_in_the_position(
    trading_env: dict[str, str],
) -> None:
    """Binance takes a buyer's commission from the coin bought (without BNB): 1 bought, 0.999
    held, at a cost of 100 for the 0.999; the order's fee is the commission's worth in USDT."""
    symbol = new_symbol()
    await set_quote(symbol, "99", "101")
    fake = FakeBinance(prices={symbol: Decimal(100)}, commission_in_base=True)
    order = approved(symbol, "buy", "1")
    async with live_executor(trading_env, fake) as (env, recorder, channel):
        await streaming(fake)
        await publish_json(channel, ORDERS.name, "order.approved", order)
        filled = (await recorder.wait_for("order.filled"))[0]
        await asyncio.sleep(1)  # the stream's report of the same trade arrives meanwhile
        connection = await asyncpg.connect(env["DATABASE_URL"])
        try:
            held = await connection.fetchrow(
                "SELECT quantity, average_price FROM positions "
                "WHERE environment = 'live' AND symbol = $1", symbol,
            )  # fmt: skip
        finally:
            await connection.close()
    assert held is not None and held["quantity"] == Decimal("0.999")
    assert held["quantity"] * held["average_price"] == Decimal(100)
    assert Decimal(filled["fee"]) == Decimal("0.1")


async def test_a_commission_paid_in_bnb_comes_out_of_the_bnb_the_books_hold(
    trading_env: dict[str, str],
) -> None:
    """With BNB paying the fees, buying 1 at 100 costs 0.075 USDT's worth of BNB (0.00025 at
    300): the books' BNB goes down by that, the coin bought stays whole. Left in the books, that
    BNB would be sold one day and refused (-2010), and the drift alert would fire. The order's
    fee is that BNB at its mark (300, not the 250 it cost the books: the equity lost 0.075),
    once, though both the answer and the stream's report carry the trade."""
    symbol = new_symbol()
    await set_quote(symbol, "99", "101")
    await quote_bnb()  # 299.9 / 300.1
    fake = FakeBinance(prices={symbol: Decimal(100)}, bnb_pays_at=Decimal(300),
                       balances={"USDT": Decimal(10000), "BNB": Decimal(2)})  # fmt: skip
    async with live_executor(trading_env, fake) as (env, recorder, channel):
        url = env["DATABASE_URL"]
        await value_of(url, "INSERT INTO positions (environment, symbol, quantity, average_price)"
                       " VALUES ('live', 'BNBUSDT', 1, 250) ON CONFLICT (environment, symbol) DO "
                       "UPDATE SET quantity = 1, average_price = 250")  # fmt: skip
        try:
            await streaming(fake)
            await valuation(url)  # BNB's mark, which the fee is valued at
            await publish_json(channel, ORDERS.name, "order.approved",
                               approved(symbol, "buy", "1"))  # fmt: skip
            filled = (await recorder.wait_for("order.filled"))[0]
            await asyncio.sleep(1)  # the stream's report of the same trade arrives meanwhile
            bnb = await position_of(url, "BNBUSDT")
            bought = await position_of(url, symbol)
            row = await order_row(url, filled["client_order_id"])
        finally:  # the live books' BNB is this test's alone
            await value_of(url, "DELETE FROM positions WHERE environment = 'live' "
                           "AND symbol = 'BNBUSDT'")  # fmt: skip
    assert (bnb, bought) == (Decimal("0.99975"), Decimal(1))
    assert row["fee"] == Decimal("0.075") == Decimal(filled["fee"])


async def test_orders_binance_would_misread_are_sent_right_or_refused_before_leaving(
    trading_env: dict[str, str],
) -> None:
    """A market order carrying a limit price (none sized: not capped) goes out as MARKET, not
    at that limit; a client order id longer than Binance's 36 characters is refused here,
    saying so."""
    symbol = new_symbol()
    await set_quote(symbol, "99", "101")
    fake = FakeBinance(prices={symbol: Decimal(100)})
    priced = approved(symbol, "buy", "1", limit_price="95")
    too_long = approved(symbol, "buy", "1", client_order_id="mt-" + "a" * 34)
    async with live_executor(trading_env, fake) as (_, recorder, channel):
        for order in (priced, too_long):
            await publish_json(channel, ORDERS.name, "order.approved", order)
        await recorder.wait_for("order.filled")
        rejected = (await recorder.wait_for("order.rejected"))[0]
    assert fake.orders[priced["client_order_id"]]["type"] == "MARKET"
    assert rejected["client_order_id"] == too_long["client_order_id"]
    assert "longer than Binance's 36 characters" in rejected["reason"]
    assert too_long["client_order_id"] not in fake.orders


async def test_the_live_equity_takes_cash_and_coins_from_one_snapshot(
    trading_env: dict[str, str],
) -> None:
    """The books hold 1 coin, but Binance's account snapshot shows 0.5 (the other half sold,
    its fill not booked yet) and 5000 USDT: the equity is the snapshot's, 5000 + 0.5 x 100, not
    a mix of its cash and the books' coins (5100), which the peak would keep for good."""
    symbol, url = new_symbol(), trading_env["DATABASE_URL"]
    await set_quote(symbol, "99", "101")  # a mark of 100 (with none, no equity is stored)
    fake = FakeBinance(prices={symbol: Decimal(100)}, push_reports=False)
    fake.balances = {"USDT": Decimal(5000), symbol.removesuffix("USDT"): Decimal("0.5")}
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            "INSERT INTO positions (environment, symbol, quantity, average_price) "
            "VALUES ('live', $1, 1, 100)", symbol,
        )  # fmt: skip
    finally:
        await connection.close()
    async with serving(fake) as base_url, venues(url, base_url, 1) as (pool, [venue]):
        equity = await venue.revalue()
        stored = await pool.fetchrow("SELECT * FROM account_equity WHERE environment = 'live'")
    assert equity == Decimal(5050)
    assert stored is not None
    assert (stored["cash"], stored["positions_value"]) == (Decimal(5000), Decimal(50))


async def test_an_unusable_balance_refuses_the_snapshot_naming_its_asset(
    trading_env: dict[str, str],
) -> None:
    """One balance of the account snapshot is not a number: nothing of the snapshot is stored
    (neither balances nor an equity, which would be wrong), and the error names the asset."""
    url = trading_env["DATABASE_URL"]
    fake = FakeBinance(push_reports=False)
    fake.balances = {"USDT": Decimal(5000), "JUNK": Decimal("NaN")}
    async with serving(fake) as base_url, venues(url, base_url, 1) as (pool, [venue]):
        with pytest.raises(BinanceAnswerError, match=r"the balance of 'JUNK'.*'NaN'"):
            await venue.revalue()
        stored = await pool.fetchval("SELECT count(*) FROM account_equity "
                                     "WHERE environment = 'live'")  # fmt: skip
        cash = await pool.fetchval("SELECT count(*) FROM balances WHERE environment = 'live'")
    assert (stored, cash) == (0, 0)


async def test_what_a_resting_buy_locks_counts_in_the_equity_and_is_not_spent_twice(
    trading_env: dict[str, str],
) -> None:
    """A limit buy of 0.3 at 29000 rests on Binance, which locks the 8708.70 USDT it may spend
    (and its fee): the books keep the free and locked cash apart, and the equity counts both
    (10000 still). A market buy that needs more than is left free is refused by Binance
    (-2010) and rejected, never booked."""
    symbol = new_symbol()
    await set_quote(symbol, "29999", "30001")
    fake = FakeBinance(prices={symbol: Decimal(30000)})
    resting = approved(symbol, "buy", "0.3", order_type="limit", limit_price="29000")
    greedy = approved(symbol, "buy", "0.1")
    async with live_executor(trading_env, fake) as (env, recorder, channel):
        url = env["DATABASE_URL"]
        await streaming(fake)
        await publish_json(channel, ORDERS.name, "order.approved", resting)
        await until(lambda: order_status(url, resting["client_order_id"], "submitted"),
                    "the buy resting")  # fmt: skip
        await publish_json(channel, ORDERS.name, "order.approved", greedy)
        rejected = (await recorder.wait_for("order.rejected"))[0]

        async def locked() -> bool:  # a snapshot taken since the buy rests (the next poll)
            held = await value_of(url, "SELECT locked FROM balances WHERE environment = 'live' "
                                  "AND asset = 'USDT'")  # fmt: skip
            return held == Decimal("8708.70000")

        await until(locked, "the locked cash stored")
        free = await value_of(url, "SELECT free FROM balances WHERE environment = 'live' "
                              "AND asset = 'USDT'")  # fmt: skip
        cash = await value_of(url, "SELECT cash FROM account_equity WHERE environment = 'live'")
    assert rejected["client_order_id"] == greedy["client_order_id"]
    assert "-2010" in rejected["reason"] and "insufficient balance" in rejected["reason"]
    assert (free, cash) == (Decimal("1291.30000"), Decimal(10000))
    assert await fills_of(url, greedy["client_order_id"]) == []


async def test_a_coin_sold_to_zero_is_shown_at_zero_not_at_what_was_held(
    trading_env: dict[str, str],
) -> None:
    """Binance lists a coin at 0 once it is all sold (or leaves it out with omitZeroBalances):
    the account's balances follow it down, for every asset held before."""
    symbol, url = new_symbol(), trading_env["DATABASE_URL"]
    coin, other = symbol.removesuffix("USDT"), f"X{symbol.removesuffix('USDT')}"
    fake = FakeBinance(prices={symbol: Decimal(100)}, push_reports=False)
    fake.balances = {"USDT": Decimal(5000), coin: Decimal("0.5"), other: Decimal(2)}
    async with serving(fake) as base_url, venues(url, base_url, 1) as (pool, [venue]):
        await venue.revalue()
        fake.balances = {"USDT": Decimal(5050), coin: Decimal(0)}  # `other` left out
        await venue.revalue()
        rows = await pool.fetch("SELECT asset, free, locked FROM balances "
                                "WHERE environment = 'live' ORDER BY asset")  # fmt: skip
    assert {row["asset"]: (row["free"], row["locked"]) for row in rows} == {
        "USDT": (Decimal(5050), Decimal(0)), coin: (Decimal(0), Decimal(0)),
        other: (Decimal(0), Decimal(0)),
    }  # fmt: skip


async def test_a_late_answer_never_takes_back_what_a_later_report_booked(
    trading_env: dict[str, str],
) -> None:
    """The stream booked a fill up to 0.8; a query answered before it (0.5 filled, or still
    NEW) arrives after: the books stay at 0.8, partially filled, with no event going back.
    Binance's final word (FILLED, 1) is booked and announced."""
    symbol, url = new_symbol(), trading_env["DATABASE_URL"]
    cid = await add_order(url, symbol, "submitted", 0.0)
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)

    def state(status: str, filled: str, average: str | None) -> OrderState:
        return OrderState("7", status, Decimal(filled), Decimal(average) if average else None)

    try:
        trade = Trade("t-1", Decimal(100), Decimal("0.8"), Decimal("0.08"), "USDT")
        events = [
            await book_report(pool, cid, state("partially_filled", "0.8", "100"), [trade], "USDT"),
            await book_report(pool, cid, state("partially_filled", "0.5", "101"), [], "USDT"),
            await book_report(pool, cid, state("submitted", "0", None), [], "USDT"),
        ]
        row = await order_row(url, cid)
        rest = Trade("t-2", Decimal(101), Decimal("0.2"), Decimal("0.0202"), "USDT")
        final = await book_report(pool, cid, state("filled", "1", "100.2"), [rest], "USDT")
    finally:
        await pool.close()
    assert events == [None, None, None]  # partial fills announce nothing, late answers neither
    assert (row["status"], row["filled_quantity"], row["average_price"]) == (
        "partially_filled",
        Decimal("0.8"),
        Decimal(100),
    )
    assert final is not None
    assert (final.status, final.filled_quantity) == ("filled", Decimal(1))


WAITING = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()
"""


async def test_the_first_fills_of_a_symbol_booked_at_once_both_count_in_its_position(
    trading_env: dict[str, str],
) -> None:
    """Two buys of a symbol never held before fill at the same moment (two strategies on one
    candle, or a stream report racing a REST answer): the position is the sum of both, not the
    one booked last. The first booking is held before its commit (the outbox locked) while the
    second begins, the moment at which the two used to overwrite each other."""
    symbol, url = new_symbol(), trading_env["DATABASE_URL"]
    first, second = [await add_order(url, symbol, "submitted", 0.0) for _ in range(2)]
    pool = await asyncpg.create_pool(url, min_size=3, max_size=3)
    holder = await asyncpg.connect(url)

    def filled(quantity: str, price: str, trade_id: str) -> tuple[OrderState, list[Trade]]:
        trade = Trade(trade_id, Decimal(price), Decimal(quantity), Decimal(0), "USDT")
        return OrderState(trade_id, "filled", Decimal(quantity), Decimal(price)), [trade]

    async def waiting(count: int) -> bool:
        return bool(await holder.fetchval(WAITING) == count)

    try:
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("LOCK TABLE outbox IN EXCLUSIVE MODE")
        booking_first = asyncio.create_task(
            book_report(pool, first, *filled("0.4", "100", "t-a"), "USDT")
        )
        await until(lambda: waiting(1), "the first booking waiting at its event")
        booking_second = asyncio.create_task(
            book_report(pool, second, *filled("0.6", "110", "t-b"), "USDT")
        )
        await until(lambda: waiting(2), "the second booking waiting too")
        await transaction.commit()
        await asyncio.wait_for(asyncio.gather(booking_first, booking_second), 20)
    finally:
        await holder.close()
        await pool.close()
    assert await position_of(url, symbol) == Decimal(1)


class RestingBuy(NamedTuple):
    url: str  # the database's
    recorder: Recorder
    fake: FakeBinance
    client_order_id: str
    symbol: str


@asynccontextmanager
async def resting_buy(trading_env: dict[str, str], **settings: str) -> AsyncIterator[RestingBuy]:
    """A live executor (with `settings`) subscribed to the user-data stream, and a limit buy of
    0.01 at 29000 resting on Binance below its book of 30000."""
    symbol = new_symbol()
    await set_quote(symbol, "29999", "30001")
    fake = FakeBinance(prices={symbol: Decimal(30000)})
    resting = approved(symbol, "buy", "0.01", order_type="limit", limit_price="29000")
    cid = resting["client_order_id"]
    async with live_executor(trading_env, fake, **settings) as (env, recorder, channel):
        await streaming(fake)
        await publish_json(channel, ORDERS.name, "order.approved", resting)
        url = env["DATABASE_URL"]
        await until(lambda: order_status(url, cid, "submitted"), "the order resting")
        yield RestingBuy(url, recorder, fake, cid, symbol)


async def test_a_fill_whose_stream_report_was_missed_is_booked_before_the_order_ends(
    trading_env: dict[str, str],
) -> None:
    """A resting buy fills 0.004 while the user-data stream is away (its report never comes),
    then the other 0.006 with a report: that report books only its own trade, so the order is
    held open (it would never be looked at again once ended) until the poll fetches the missed
    trade from myTrades; then it ends filled, its position and fills holding all 0.01."""
    async with resting_buy(trading_env, BINANCE_POLL_SECONDS="2") as buy:
        url, recorder, fake, cid, symbol = buy
        order = fake.orders[cid]
        fake.push_reports = False  # the stream is away
        fake.fill(order, Decimal("0.004"), Decimal(29000))
        fake.push_reports = True
        fake.fill(order, Decimal("0.006"), Decimal(29000))
        await until(lambda: booked(url, cid, Decimal("0.006")), "the reported trade booked")
        held = await order_row(url, cid)
        filled = (await recorder.wait_for("order.filled"))[0]
        row = await order_row(url, cid)
        fills = await fills_of(url, cid)
        position = await position_of(url, symbol)
    assert (held["status"], held["filled_quantity"]) == ("partially_filled", Decimal("0.01"))
    assert ("GET", "/api/v3/myTrades", 200) in fake.requests
    assert (filled["client_order_id"], Decimal(filled["filled_quantity"])) == (cid, Decimal("0.01"))
    assert (row["status"], row["filled_quantity"]) == ("filled", Decimal("0.01"))
    assert sorted(f["quantity"] for f in fills) == [Decimal("0.004"), Decimal("0.006")]
    assert position == Decimal("0.01")


async def test_an_answer_with_a_price_no_trade_had_is_queried_not_booked(
    trading_env: dict[str, str],
) -> None:
    """Binance fills the buy but its answer carries a negative fill price: nothing of that
    answer is booked; the order is queried at once, and that answer is unusable too (NaN
    executed): the order stays in flight, its approval handled, not dead-lettered, and the
    poll books it: placed once, its trade read from myTrades at its true price, once."""
    symbol = new_symbol()
    await set_quote(symbol, "99", "101")
    fake = FakeBinance(prices={symbol: Decimal(100)}, misbehave=["garbled-after"],
                       query_tricks=["garbled"], push_reports=False)  # fmt: skip
    order = approved(symbol, "buy", "1")
    async with live_executor(trading_env, fake) as (env, recorder, channel):
        before = await dead_letters(env["RABBITMQ_URL"])
        await publish_json(channel, ORDERS.name, "order.approved", order)
        filled = (await recorder.wait_for("order.filled"))[0]
        fills = await fills_of(env["DATABASE_URL"], order["client_order_id"])
        dead = await dead_letters(env["RABBITMQ_URL"]) - before
    assert [(f["price"], f["quantity"]) for f in fills] == [(Decimal(100), Decimal(1))]
    assert dead == 0, "the approval was dead-lettered over an answer that could not be booked"
    assert Decimal(filled["average_price"]) == 100 and len(fake.orders) == 1
    assert ("GET", "/api/v3/myTrades", 200) in fake.requests
    assert len([r for r in fake.requests if r[:2] == ("GET", "/api/v3/order")]) >= 2


async def test_a_trade_report_with_a_price_no_trade_had_is_skipped_and_the_poll_books_it(
    trading_env: dict[str, str],
) -> None:
    """A resting buy fills, and the stream's report of it says the price was negative: the
    report is not booked and the subscription goes on (no reconnect); the poll books the
    trade at its true price, once."""
    async with resting_buy(trading_env, BINANCE_POLL_SECONDS="2") as buy:
        url, recorder, fake, cid, _ = buy
        fake.hold_reports = True
        fake.fill(fake.orders[cid], Decimal("0.01"), Decimal(29000))
        [report] = fake.held
        fake.held, fake.hold_reports = [], False
        fake.push(report | {"L": "-29000"})
        await recorder.wait_for("order.filled")
        fills = await fills_of(url, cid)
    assert [(f["price"], f["quantity"]) for f in fills] == [(Decimal(29000), Decimal("0.01"))]
    assert len(fake.connections) == 1, "the stream reconnected over a report it could not book"
    assert ("GET", "/api/v3/myTrades", 200) in fake.requests


async def test_a_fill_both_the_stream_and_the_poll_report_is_booked_once(
    trading_env: dict[str, str],
) -> None:
    """A resting buy fills 0.004 while the stream lags behind REST (its report held back): the
    poll finds it (the order, then myTrades) and books it; the stream's report of that trade,
    arriving after, books nothing more (by trade id). The other 0.006 is reported on the stream
    while the poll goes on: the order ends filled once, its fills, fee and position counting
    each trade once."""
    async with resting_buy(trading_env) as buy:  # polled every 0.5 s
        url, recorder, fake, cid, symbol = buy
        fake.hold_reports = True
        fake.fill(fake.orders[cid], Decimal("0.004"), Decimal(29000))
        await until(lambda: booked(url, cid, Decimal("0.004")), "the poll booking the trade")
        [report] = fake.held
        fake.release()
        await until(lambda: delivered(fake, report), "the stream's report of the trade sent")
        await asyncio.sleep(1)  # and booked, or not, meanwhile
        first_row, first_fills = await order_row(url, cid), await fills_of(url, cid)
        first_position = await position_of(url, symbol)
        fake.fill(fake.orders[cid], Decimal("0.006"), Decimal(29000))
        await recorder.wait_for("order.filled")
        await asyncio.sleep(1.5)  # the poll, and the stream, go on meanwhile
        row, fills = await order_row(url, cid), await fills_of(url, cid)
        position = await position_of(url, symbol)
    assert ("GET", "/api/v3/myTrades", 200) in fake.requests  # the poll found the first trade
    assert [f["quantity"] for f in first_fills] == [Decimal("0.004")]
    assert (first_row["status"], first_row["filled_quantity"], first_row["fee"]) == (
        "partially_filled", Decimal("0.004"), first_fills[0]["fee"],
    )  # fmt: skip
    assert first_position == Decimal("0.004")
    assert len(recorder.of("order.filled")) == 1
    assert sorted(f["quantity"] for f in fills) == [Decimal("0.004"), Decimal("0.006")]
    assert (row["status"], row["filled_quantity"]) == ("filled", Decimal("0.01"))
    assert row["fee"] == sum(f["fee"] for f in fills) == Decimal("0.29")  # 0.1 % of 290
    assert position == Decimal("0.01")


async def delivered(fake: FakeBinance, event: dict[str, object]) -> bool:
    return any(message.get("event") is event for c in fake.connections for message in c.sent)


async def test_a_sell_of_coins_not_held_is_refused_by_binance_and_rejected(
    trading_env: dict[str, str],
) -> None:
    """The account holds 0.5 of the coin: a sell of 1 is refused by Binance (-2010) and the order
    rejected with its code and message; a sell of the 0.5 fills, the coins leave the account and
    the proceeds, less the commission, come in."""
    symbol, url = new_symbol(), trading_env["DATABASE_URL"]
    coin = symbol.removesuffix("USDT")
    await set_quote(symbol, "99", "101")
    fake = FakeBinance(prices={symbol: Decimal(100)})
    fake.balances = {"USDT": Decimal(1000), coin: Decimal("0.5")}
    await value_of(url, "INSERT INTO positions (environment, symbol, quantity, average_price) "
                   "VALUES ('live', $1, 0.5, 100)", symbol)  # fmt: skip
    too_many, held = approved(symbol, "sell", "1"), approved(symbol, "sell", "0.5")
    async with live_executor(trading_env, fake) as (_, recorder, channel):
        await publish_json(channel, ORDERS.name, "order.approved", too_many)
        rejected = (await recorder.wait_for("order.rejected"))[0]
        await publish_json(channel, ORDERS.name, "order.approved", held)
        filled = (await recorder.wait_for("order.filled"))[0]
        row = await order_row(url, too_many["client_order_id"])
    assert rejected["client_order_id"] == too_many["client_order_id"]
    assert rejected["reason"] == (
        "Binance -2010: Account has insufficient balance for requested action."
    )
    assert (row["status"], row["reason"]) == ("rejected", rejected["reason"])
    assert too_many["client_order_id"] not in fake.orders
    assert filled["client_order_id"] == held["client_order_id"]
    assert filled["filled_quantity"] == "0.5"
    assert fake.balances == {"USDT": Decimal("1049.95"), coin: Decimal(0)}  # 50, less 0.05
    assert await position_of(url, symbol) == Decimal(0)


async def test_books_holding_more_than_binance_raise_one_alert_per_confirmed_drift(
    trading_env: dict[str, str],
) -> None:
    """The books hold 1 coin, Binance 0.4 (0.6 withdrawn outside MasterTrade): the first
    snapshot alone alerts nothing, the second confirms it, and the alert is queued."""
    symbol, url = new_symbol(), trading_env["DATABASE_URL"]
    coin = symbol.removesuffix("USDT")
    fake = FakeBinance(prices={symbol: Decimal(100)}, push_reports=False)
    fake.balances = {"USDT": Decimal(5000), coin: Decimal("0.4")}
    query = "SELECT payload FROM outbox WHERE routing_key = 'alert.position_drift'"
    async with serving(fake) as base_url, venues(url, base_url, 1) as (pool, [venue]):
        await pool.execute("INSERT INTO positions (environment, symbol, quantity, average_price) "
                           "VALUES ('live', $1, 1, 100)", symbol)  # fmt: skip
        await venue.revalue()
        after_one = await pool.fetch(query)
        await venue.revalue()
        after_two = await pool.fetch(query)
    assert after_one == []
    [alert] = [json.loads(row["payload"]) for row in after_two]
    assert (alert["kind"], alert["severity"]) == ("position_drift", "critical")
    assert alert["dedup_key"] == f"position-drift:live:{symbol}:1:0.4"
    assert alert["title"] == f"Live books hold more {coin} than Binance ({symbol})"


async def test_an_order_of_more_trades_than_a_page_holds_has_all_of_them_read() -> None:
    """myTrades answers at most 1000 trades a request (500 unless asked): the trades of an
    order that took 1001 are read in two pages, each once, adding up to what it executed."""
    fake = FakeBinance(prices={"BTCUSDT": Decimal(30000)}, push_reports=False)
    order = fake.place_limit("BTCUSDT", "0.01001", "29000", "mt-many-trades")
    for _ in range(1001):
        fake.fill(order, Decimal("0.00001"), Decimal(29000))
    async with serving(fake) as url:
        client = BinanceClient(url, KEY, SECRET, 1000, timeout=5.0)
        try:
            trades = await client.my_trades("BTCUSDT", order["orderId"])
        finally:
            await client.close()
    assert order["status"] == "FILLED"
    assert len({trade["id"] for trade in trades}) == len(trades) == 1001
    assert sum(Decimal(trade["qty"]) for trade in trades) == Decimal(order["executedQty"])
    pages = [request for request in fake.requests if request[1] == "/api/v3/myTrades"]
    assert pages == [("GET", "/api/v3/myTrades", 200)] * 2


async def test_an_order_waiting_out_the_order_count_asks_binance_nothing(
    trading_env: dict[str, str],
) -> None:
    """While Binance takes no new order (-1015), a market order near the minimum notional is
    left for a later round without asking Binance its average price each round (nor anything
    else); once the pause is over it is checked at that price and sent."""
    url, symbol = trading_env["DATABASE_URL"], new_symbol()
    await set_quote(symbol, "99", "100")
    fake = FakeBinance(prices={symbol: Decimal(100)}, avg_prices={symbol: Decimal(103)})
    cid = await add_order(url, symbol, "new", 0, price=None, quantity="0.0499")
    async with serving(fake) as base_url, venues(url, base_url, 1) as (_, [venue]):
        venue.client.orders_paused_until = time.monotonic() + 0.5
        waiting = [await venue.execute(cid) for _ in range(3)]
        asked_while_paused = list(fake.requests)
        await asyncio.sleep(0.5)
        sent = await venue.execute(cid)
    assert waiting == [None, None, None] and asked_while_paused == []
    assert sent is not None and sent.status == "filled"
    assert ("GET", "/api/v3/avgPrice", 200) in fake.requests
