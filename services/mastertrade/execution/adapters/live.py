"""The live venue: Binance spot, crash-safe and never assuming an outcome it did not see.

For each order: (1) the order, stored as `new` before anything else, is checked against the
symbol's exchange filters and claimed: marked `submitted` and stamped with the time of this send
(`updated_at`, committed) BEFORE the request leaves, so a crash mid-request leaves an order that
start-up will query, never blindly resend; (2) it is sent with newClientOrderId = our client
order id; (3) a definite answer is booked; a rejection (-2010, -1013, ...) rejects the order
with Binance's code and message; an unknown outcome (timeout, 5xx, -1006/-1007, and -1000,
-1001, -1008, which do not say the order was not placed) is resolved by
querying origClientOrderId, and so are -2010 "Duplicate order sent." (Binance has it open) and an
answer that cannot be booked as it is (domain/binance_status.py: a number not finite, negative
or out of bounds, an id missing); a rate limit (429/418) leaves it in flight, to be resolved
once the client's pause is over. While Binance refuses new orders for the unfilled order count
(-1015, binance.py), an order that would be sent is left as it is (`new`, or `submitted` with
its stamp) for a later round, unclaimed.

An order Binance says does not exist (-2013) is sent again only when the query was asked after
the recvWindow of its last send had passed (from then on Binance would refuse that request, so
it can no longer land beside the second; a query asked earlier may have been answered before the
send landed, however late its answer comes; both times are on the database's clock, which
stamped the send), and only by a handler whose claim finds the row as it read it (same status,
same send stamp): of
the handlers that saw it missing (after a kill -9, the broker's redelivery and the start-up
reconcile), exactly one changes the row, and only that one sends. An order refused for our
clock (-1021) is sent again at once, claimed and stamped the same way, once. So is one refused
for a filter (-1013) whose symbol's filters, fetched again, changed on Binance (it changes a
listed symbol's tickSize, stepSize or minimum notional now and then): rounded to the new ones,
once; under unchanged filters it is rejected. A refusal is Binance's definite answer that it
placed nothing, and the stamp the claim checks is this send's: no other send of it can land.
The filters are fetched again, too, once FILTERS_TTL_SECONDS old.

An order Binance could not take is rejected before it leaves, saying why: its symbol is not
listed (-1121), its client order id is not one Binance accepts, it breaks a filter, or it is a
market buy whose ask is too far above the price it was sized at (domain/price_guard.py). So is
one approved more than APPROVAL_LIFETIME_SECONDS before it is sent, first or again after -2013
(`stale_approval`: an executor away for longer, an approval replayed from the dead letters, a
claimed send that never reached Binance before a long outage).

A market buy that passes goes out as a LIMIT order at its ceiling (the sized price plus
MAX_PRICE_DEVIATION_PCT), immediate-or-cancel: Binance fills a MARKET order level after level
down the book, this one takes what the book offers up to the ceiling, at the book's prices, and
what is left expires, booked `cancelled` with what it filled and why (the reason stored with the
claim). Binance holds its quantity at the ceiling of free quote asset (up to
MAX_PRICE_DEVIATION_PCT more than it spends: -2010 without it) and refuses a ceiling beyond its
PERCENT_PRICE_BY_SIDE (-1013: rejected, as the filters did not change); a part filled below
the minimum notional may be a holding too small to sell. Its notional is checked at its limit,
as Binance checks a LIMIT order's; any other
market order's at the top of book, or, within NOTIONAL_MARGIN of a bound, at Binance's average
price (/api/v3/avgPrice, asked before the claim), as Binance checks it.

While the risk manager's circuit breaker is on (domain/halt.py), no buy adds exposure, and
while its kill switch is on, no order goes on at all: one not sent yet is rejected before it
leaves (asking Binance nothing, so even while
it takes no new orders, -1015), and one open on Binance is cancelled (DELETE /api/v3/order)
when it is next resolved (the executor's loop starts a round within a second of the halt,
`halt_pending`), its reason stored before the cancel goes out; what it filled before is booked
as usual. A cancel refused with -2011 (the order filled or was cancelled meanwhile) is resolved
by querying it, and one that filled is booked without the halt's reason (never cancelled).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

import asyncpg

from mastertrade.core.db import Connection
from mastertrade.core.messages import OrderEvent, not_quoted_reason, stale_approval
from mastertrade.execution.adapters.binance import (
    CANCEL_REJECTED,
    FILTER_FAILURE,
    ORDER_DOES_NOT_EXIST,
    TIMESTAMP_OUTSIDE_WINDOW,
    BinanceClient,
    BinanceRateLimitedError,
    BinanceRejectedError,
    BinanceUnknownError,
    is_duplicate,
)
from mastertrade.execution.adapters.listings import FILTERS_TTL_SECONDS, Listings
from mastertrade.execution.adapters.live_books import (
    BOOKED,
    announce_drift,
    book_report,
    note_reason,
    store_account,
)
from mastertrade.execution.adapters.orders import TERMINAL, reject_order
from mastertrade.execution.adapters.quotes import Quotes
from mastertrade.execution.domain.binance_status import (
    BinanceAnswerError,
    OrderState,
    Trade,
    parse_fill,
    parse_order,
)
from mastertrade.execution.domain.drift import DriftWatch
from mastertrade.execution.domain.filters import (
    FilterError,
    SymbolFilters,
    apply_filters,
    check_client_order_id,
    near_market_notional_bounds,
)
from mastertrade.execution.domain.halt import RISK_STATE, blocks, halt_reason
from mastertrade.execution.domain.price_guard import ceiling, runaway_price

logger = logging.getLogger("mastertrade.execution.live")
# Past a send's stamp (committed after the request's timestamp was taken, so Binance refuses the
# request once recvWindow has passed since the stamp) and its recvWindow, how long before an
# order Binance does not know is sent again: clocks apart, plus Binance's acceptance of a
# timestamp up to 1 s ahead of its clock, plus a client clock that drifted ahead of Binance's
# since the last resync (the offset is corrected only after a -1021), with room to spare.
SEND_MARGIN_SECONDS = 5.0
# The order locked, and whether its last send was more than $2 seconds before $3 (when Binance
# was asked about it; now when not given)
CLAIM = """
SELECT *, updated_at < COALESCE($3, clock_timestamp()) - make_interval(secs => $2) AS window_passed
FROM orders WHERE client_order_id = $1 FOR UPDATE
"""
# Only the row as the claimant read it ($4 status, $5 stamp); stamped for this send, with the
# reason its expiry would carry ($6, a capped market buy's)
SUBMIT = """
UPDATE orders SET status = 'submitted', quantity = $2, price = $3, updated_at = clock_timestamp(),
    reason = $6
WHERE client_order_id = $1 AND status = $4 AND updated_at = $5
RETURNING *
"""
OPEN = frozenset({"submitted", "partially_filled"})
# Orders open on Binance that the risk manager's halt stops (domain/halt.py): buys under the
# breaker, any under the kill switch
HALT_PENDING = """
SELECT EXISTS (SELECT FROM orders o JOIN risk_state r USING (environment)
               WHERE o.environment = 'live' AND o.status IN ('submitted', 'partially_filled')
                 AND (r.kill_switch OR r.breaker_open AND o.side = 'buy'))
"""


class Terms(NamedTuple):
    """What is sent: the quantity, a LIMIT price (None: MARKET) and its timeInForce, and why
    what an IOC order does not fill at once expires."""

    quantity: Decimal
    price: Decimal | None
    time_in_force: str = "GTC"
    expiry_reason: str | None = None


class Claimed(NamedTuple):
    """An order claimed for a send: the row as stamped, its request's timestamp, its terms."""

    order: asyncpg.Record
    timestamp: int
    terms: Terms


def claimable(order: asyncpg.Record, seen: asyncpg.Record, resend_after: float | None) -> bool:
    """Is the locked `order` still the `seen` one this handler may send: `new` for a first
    send; for a resend, `submitted` with the same stamp, its last send `resend_after` old."""
    if resend_after is None:
        return bool(order["status"] == "new")
    return bool(
        order["status"] == "submitted"
        and order["updated_at"] == seen["updated_at"]
        and order["window_passed"]
    )


class LiveVenue:
    """Orders on Binance; the account's balances and equity from Binance too."""

    in_flight: tuple[str, ...] = ("new", "submitted", "partially_filled")

    def __init__(
        self,
        pool: Callable[[], asyncpg.Pool],
        client: BinanceClient,
        quote_asset: str,
        quotes: Quotes,
        max_price_deviation: Decimal = Decimal(0),
        *,
        filters_ttl: float = FILTERS_TTL_SECONDS,
    ) -> None:
        self.pool, self.client, self.quote_asset, self.quotes = pool, client, quote_asset, quotes
        self.max_price_deviation = max_price_deviation
        self.drift = DriftWatch()
        self.listings = Listings(client, filters_ttl)

    async def revalue(self) -> Decimal | None:
        """Binance's balances into the books, then the equity at Redis marks (None: a coin the
        equity counts, a position's or BNB, has no mark and is beyond dust: no equity stored,
        adapters/live_books.py); a drift of the books beyond Binance's holdings, seen
        twice in a row, is alerted."""
        account = await self.client.request("GET", "/api/v3/account")
        held = await self.pool().fetch("SELECT symbol FROM positions WHERE environment = 'live'")
        marks = await self.quotes.marks([row["symbol"] for row in held])
        valuation = await store_account(self.pool(), account["balances"], self.quote_asset, marks)
        if confirmed := self.drift.observe(valuation.short):
            for symbol, (books, binance) in confirmed.items():
                logger.error("the live books hold %s of %s, Binance's account %s: sells beyond "
                             "that will be refused; alerting", books, symbol, binance)  # fmt: skip
            await announce_drift(self.pool(), confirmed, self.quote_asset)
        return valuation.equity

    async def execute(self, client_order_id: str) -> OrderEvent | None:
        """Send, or resolve, the order; None when nothing changed."""
        order = await self.pool().fetchrow(
            "SELECT * FROM orders WHERE client_order_id = $1", client_order_id
        )
        if order is None or order["status"] in TERMINAL:
            return None
        if order["status"] == "new":
            return await self._send(order)
        return await self._resolve(order)

    async def _reference(self, symbol: str, side: str) -> Decimal | None:
        quote = await self.quotes.quote(symbol)
        if isinstance(quote, str):
            return None
        return quote.ask if side == "buy" else quote.bid

    async def _listing(
        self, order: asyncpg.Record, unbookable: str | None, halted: bool
    ) -> SymbolFilters | str | None:
        """What the order is sized under: its symbol's filters, or why it cannot be sent; None
        for a halted buy, which the claim rejects without them (or, the halt lifted meanwhile,
        leaves for the next round)."""
        if unbookable:
            return f"not sent: {unbookable}"
        if halted:
            return None
        return await self.listings.get(order["symbol"])

    async def _market_prices(
        self, order: asyncpg.Record, listing: SymbolFilters | str | None
    ) -> tuple[Decimal | None, Decimal | None]:
        """(top of book, Binance's average price) a market order is checked at; the average
        (/api/v3/avgPrice, weight 2) only near a notional bound (domain/filters.py), asked here,
        before the claim, so that no Binance request waits inside its transaction."""
        if order["type"] == "limit" or not isinstance(listing, SymbolFilters):
            return None, None
        reference = await self._reference(order["symbol"], order["side"])
        if (
            reference is None
            or self._ceiling(order) is not None  # sent as LIMIT: no average
            or not near_market_notional_bounds(listing, order["quantity"], reference)
        ):
            return reference, None
        return reference, await self.client.average_price(order["symbol"])

    def _ceiling(self, order: asyncpg.Record) -> Decimal | None:
        """The price a market buy is capped at (domain/price_guard.py), None if it is not."""
        return ceiling(order["side"], order["type"], order["price"], self.max_price_deviation)

    def _terms(
        self,
        order: asyncpg.Record,
        listing: SymbolFilters | str,
        market: tuple[Decimal | None, Decimal | None],
    ) -> Terms | str:
        """What to send, or why Binance could not take the order; `market`: the top of book
        and average price of `_market_prices`."""
        if isinstance(listing, str):
            return listing
        try:
            check_client_order_id(order["client_order_id"])
        except FilterError as error:
            return f"not sent: {error}"
        # a market order goes out as MARKET, whatever price it carries, or capped at its ceiling
        cap = self._ceiling(order)
        limit = order["price"] if order["type"] == "limit" else cap
        top, average = market
        reference = order["price"] if order["type"] == "limit" else top
        if reason := runaway_price(order["side"], order["type"], order["price"], reference,
                                   self.max_price_deviation):  # fmt: skip
            return f"not sent: {reason}"
        try:
            quantity, price = apply_filters(listing, order["side"], order["quantity"], limit,
                                            reference, average_price=average)  # fmt: skip
        except FilterError as error:
            return f"exchange filter: {error}"
        if cap is None or price is None:
            return Terms(quantity, price)
        return capped(quantity, price, cap, order["price"], top)

    async def _claim(
        self,
        seen: asyncpg.Record,
        listing: SymbolFilters | str | None,
        market: tuple[Decimal | None, Decimal | None],
        resend_after: float | None,
        asked_at: datetime | None,
    ) -> Claimed | None:
        """The order marked `submitted` and stamped for this send (committed), with its
        request's timestamp and terms (`_stamp`), or None when it
        is not this handler's to send (see `claimable`), was rejected here, or cannot be sent
        yet (Binance refuses new orders for a while, or no `listing` was fetched for a buy
        halted then: left as it is, for a later round)."""
        async with self.pool().acquire() as connection, connection.transaction():
            order = await connection.fetchrow(
                CLAIM, seen["client_order_id"], resend_after or 0.0, asked_at
            )
            if order is None or not claimable(order, seen, resend_after):
                return None  # another handler got there first, or the last send could land
            if blocks(order["side"], halted := await self.halted(connection)):
                await reject_order(connection, order, f"not sent: {halted}")
                return None
            if listing is None:
                return None  # the halt was lifted since `_send` looked: sized at the next round
            terms = self._terms(order, listing, market)
            if isinstance(terms, str):
                await reject_order(connection, order, terms)
                return None
            if (wait := self.client.pause_left()) > 0:
                logger.info("order %s waits %.1fs: Binance takes no new orders until then",
                            order["client_order_id"], wait)  # fmt: skip
                return None
            return await self._stamp(connection, order, terms)

    async def _stamp(
        self, connection: Connection, order: asyncpg.Record, terms: Terms
    ) -> Claimed | None:
        """The order stamped for this send, and the request's timestamp (Binance's clock, ms),
        taken just before the stamp: however long the request then takes to leave (a stalled
        pod, a slow commit), Binance refuses it once recvWindow has passed since, when another
        handler may send the order again. A market order keeps the price it was sized at."""
        price = terms.price if order["type"] == "limit" else order["price"]
        timestamp = self.client.timestamp()
        stamped = await connection.fetchrow(
            SUBMIT, order["client_order_id"], terms.quantity, price, order["status"],
            order["updated_at"], terms.expiry_reason,
        )  # fmt: skip
        return None if stamped is None else Claimed(stamped, timestamp, terms)

    def _claimed_too_late(self, order: asyncpg.Record, stamp: int) -> bool:
        """Whether the claim ended past recvWindow after its request's timestamp, which Binance
        would refuse: not sent then, the order stays in flight, and the reconcile queries it
        and sends it again once this send's window has passed (without the needless -1021 and
        clock resync of a send bound to be refused)."""
        late = self.client.timestamp() - stamp
        if late <= self.client.recv_window:
            return False
        logger.warning("order %s claimed %d ms after its request's timestamp, past recvWindow: "
                       "not sent now, sent again by the reconcile", order["client_order_id"],
                       late)  # fmt: skip
        return True

    async def _send(
        self,
        seen: asyncpg.Record,
        resend_after: float | None = None,
        retried: frozenset[int] = frozenset(),
        asked_at: datetime | None = None,
    ) -> OrderEvent | None:
        """Claim the order as `seen` (a first send, or a resend when Binance was `asked_at` more
        than `resend_after` seconds after the last, or at once after a refusal whose code is in
        `retried`), send it, book or resolve the answer."""
        # a symbol the books cannot hold, or an approval too old, is refused before Binance is
        # asked anything; a resend too (the claim lets it go only once Binance would refuse the
        # last send, so the order is on the risk checks of its approval, as the first send was)
        unbookable = not_quoted_reason(seen["symbol"], seen["side"], self.quote_asset)
        approved_at = seen["approved_at"] or seen["created_at"]  # recorded before 0039: created
        unbookable = unbookable or stale_approval(approved_at, datetime.now(UTC))
        # a halted buy is rejected by the claim, which asks Binance nothing: even while Binance
        # takes no new order, else it stays in flight and every halt check starts a round for it
        halted = blocks(seen["side"], await self.halted())
        if not (unbookable or halted) and self.client.pause_left() > 0:
            return None  # Binance takes no new order yet: nothing is asked of it (avgPrice, ...)
        listing = await self._listing(seen, unbookable, halted)
        market = await self._market_prices(seen, listing)
        claimed = await self._claim(seen, listing, market, resend_after, asked_at)
        if claimed is None or self._claimed_too_late(claimed.order, claimed.timestamp):
            return None
        order, terms = claimed.order, claimed.terms
        cid = order["client_order_id"]
        try:
            answer = await self.client.new_order(
                cid, order["symbol"], order["side"], terms.quantity, terms.price,
                time_in_force=terms.time_in_force, timestamp=claimed.timestamp,
            )  # fmt: skip
        except BinanceRateLimitedError as error:
            logger.warning("order %s not taken (%s): it stays in flight, resolved and sent "
                           "again once the pause is over", cid, error)  # fmt: skip
            return None
        except BinanceUnknownError as error:
            logger.warning("outcome of %s unknown (%s): querying it", cid, error)
            return await self._resolve(order)
        except BinanceRejectedError as error:
            return await self._refused(order, error, listing, retried)
        return await self._book_answer(order, answer)

    async def _book_answer(self, order: asyncpg.Record, answer: Any) -> OrderEvent | None:
        """Book Binance's FULL answer to the order; one that cannot be booked as it is (a
        number or an id unusable, its fills missing) is an unknown outcome: the order is
        queried instead."""
        try:
            state, trades = parse_order(answer), [parse_fill(item) for item in answer["fills"]]
        except (BinanceAnswerError, KeyError, TypeError) as error:
            logger.warning("Binance's answer to order %s is unusable (%s: %s): querying the "
                           "order instead", order["client_order_id"], type(error).__name__,
                           error)  # fmt: skip
            return await self._resolve(order)
        return await self._book(order["client_order_id"], state, trades)

    async def _refused(
        self,
        order: asyncpg.Record,
        error: BinanceRejectedError,
        listing: SymbolFilters | str | None,
        retried: frozenset[int],
    ) -> OrderEvent | None:
        """Book Binance's refusal of the order sent under `listing`; or, once for each, send it
        again at once when it was refused for our clock or for filters that changed since."""
        cid, again = order["client_order_id"], retried | {error.code}
        if is_duplicate(error):
            logger.warning("order %s: Binance has it open already (%s): querying it", cid,
                           error.message)  # fmt: skip
            return await self._resolve(order)
        if error.code == TIMESTAMP_OUTSIDE_WINDOW and error.code not in retried:
            logger.warning(
                "order %s refused for its timestamp (-1021: our clock, or a request "
                "that left late): clock resynced, sending it again",
                cid,
            )
            return await self._send(order, resend_after=0.0, retried=again)
        if (error.code == FILTER_FAILURE and error.code not in retried
                and await self.listings.changed(order["symbol"], listing)):  # fmt: skip
            logger.warning("order %s refused for a filter (%s): %s's filters changed on "
                           "Binance; sending it under the new ones", cid, error.message,
                           order["symbol"])  # fmt: skip
            return await self._send(order, resend_after=0.0, retried=again)
        return await self._reject(cid, f"Binance {error.code}: {error.message}")

    async def _reject(self, client_order_id: str, reason: str) -> OrderEvent | None:
        async with self.pool().acquire() as connection, connection.transaction():
            order = await connection.fetchrow(
                "SELECT * FROM orders WHERE client_order_id = $1 FOR UPDATE", client_order_id
            )
            if order is None or order["status"] in TERMINAL:
                return None
            return await reject_order(connection, order, reason)

    async def _resolve(self, order: asyncpg.Record) -> OrderEvent | None:
        """Binance's word on a sent order, booked; one it never got is sent again when safe.
        A query Binance refuses otherwise raises (the loop logs it and goes on)."""
        cid, symbol = order["client_order_id"], order["symbol"]
        asked_at = await self.pool().fetchval("SELECT clock_timestamp()")
        try:
            answer = await self.client.query_order(symbol, cid)
        except BinanceUnknownError as error:  # rate limits included
            logger.warning("querying %s failed (%s): next round", cid, error)
            return None
        except BinanceRejectedError as error:
            if error.code != ORDER_DOES_NOT_EXIST:
                raise
            window = self.client.recv_window / 1000 + SEND_MARGIN_SECONDS
            return await self._send(order, resend_after=window, asked_at=asked_at)
        state = parse_order(answer)
        if state.status in OPEN and blocks(order["side"], halted := await self.halted()):
            return await self._cancel(order, halted or "")
        return await self._book(cid, state, await self._missing_trades(order, state))

    async def halt_pending(self) -> bool:
        """Are orders the halt stops open on Binance (to cancel now, not at the poll)?"""
        return bool(await self.pool().fetchval(HALT_PENDING))

    async def halted(self, db: Connection | None = None) -> str | None:
        """Why orders are halted now (the risk manager's breaker or kill switch), if they are."""
        row = await (db or self.pool()).fetchrow(RISK_STATE, "live")
        return None if row is None else halt_reason(row["breaker_open"], row["kill_switch"])

    async def _cancel(self, order: asyncpg.Record, reason: str) -> OrderEvent | None:
        """Cancel the open order on Binance for `reason` and book what it became."""
        cid, symbol = order["client_order_id"], order["symbol"]
        await note_reason(self.pool(), cid, reason)
        try:
            answer = await self.client.cancel_order(symbol, cid)
        except BinanceUnknownError as error:  # rate limits included
            logger.warning("cancelling %s failed (%s): next round", cid, error)
            return None
        except BinanceRejectedError as error:
            if error.code != CANCEL_REJECTED:
                raise
            answer = await self.client.query_order(symbol, cid)  # it filled or went meanwhile
        else:
            logger.warning("order %s cancelled on Binance: %s", cid, reason)
        state = parse_order(answer)
        return await self._book(cid, state, await self._missing_trades(order, state))

    async def _missing_trades(self, order: asyncpg.Record, state: OrderState) -> list[Trade]:
        """The order's trades (myTrades, weight 20) when Binance filled more than the books
        hold; none otherwise, so a resting order costs one query (weight 4) per poll."""
        if state.filled_quantity <= 0:
            return []
        booked = await self.pool().fetchval(BOOKED, order["client_order_id"])
        if state.filled_quantity <= booked:
            return []
        found = await self.client.my_trades(order["symbol"], int(state.exchange_order_id))
        return [parse_fill(item) for item in found]

    async def _book(
        self, client_order_id: str, state: OrderState, trades: list[Trade]
    ) -> OrderEvent | None:
        return await book_report(self.pool(), client_order_id, state, trades, self.quote_asset)


def capped(
    quantity: Decimal, price: Decimal, cap: Decimal, sized_price: Decimal, ask: Decimal | None
) -> Terms | str:
    """A capped market buy's terms (`price`: its `cap` rounded down to the tick), with the
    reason its rest expires; or why it is not sent: under the `ask`, it could only expire."""
    if ask is not None and ask > price:
        return (f"not sent: the ask {ask.normalize():f} is above {price.normalize():f}, the "
                f"most the market buy may pay ({cap.normalize():f}, MAX_PRICE_DEVIATION_PCT "
                "above the price it was sized at, rounded down to the tick): it would expire "
                "unfilled")  # fmt: skip
    return Terms(quantity, price, "IOC", expiry_reason(price, sized_price))


def expiry_reason(cap: Decimal, sized_price: Decimal) -> str:
    """Why a capped market buy filled less than asked, if it does: true of it from its send on
    (the books show it while it is in flight; a fill of all of it clears it)."""
    return (f"sent as a LIMIT IOC at {cap.normalize():f} (MAX_PRICE_DEVIATION_PCT above the "
            f"{sized_price.normalize():f} it was sized at, rounded down to the tick): what the "
            "book did not offer at or below it expires unfilled")  # fmt: skip
