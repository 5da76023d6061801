"""Booking what Binance reports about an order: fills (once each, by trade id), the order's
status, the position, and the event; plus the account's balances and equity from Binance, and
an alert when the books hold more of a coin than Binance does (domain/drift.py).

An order's fee is its commissions in the quote asset, whatever they were paid in. One in the
quote asset counts as it is, out of the proceeds (the cash is Binance's balance). One in the
base asset (a buyer's, unless BNB pays) counts at the trade's price, out of the coins, so the
position is what the exchange holds. One in a third asset (BNB, when BNB pays the fees:
FEE_ASSETS) counts at that asset's mark: the mid of its quote (BNBUSDT, Redis) at the executor's
latest valuation of the account, the price the equity counts the asset at, so the fee is what
the equity lost; it is used when no older than FEE_MARK_MAX_AGE_SECONDS, and the fill keeps it
(`fee_price`). Without one the commission is left out of the order's fee, never guessed, and a
warning names it (the fill keeps the commission in its own asset, `fee_price` NULL). It also
comes out of the books' position in that coin (BNBUSDT), as much as it holds: left there, the
books would hold BNB Binance has spent, and its sell would be refused. No commission changes
what the traded coins cost: the fees are the order's, the cost basis the trades' prices.

The equity is one Binance snapshot: its quote-asset balance, plus all it holds of the coin of
each symbol the books trade and of each fee asset (BNB, traded or not), each at its mark (the
mid of its quote): cash + coins at market = equity for what Binance holds, whatever the books'
history. A coin with no mark counts at its cost (the books' average price; for coins the books
hold none of, the last mark it had) when dust, and otherwise no equity is stored (domain/
ledger.py); one never marked counts as nothing: the books know no price for it."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg

from mastertrade.core.amounts import exactly
from mastertrade.core.db import Connection
from mastertrade.core.messages import AlertEvent, OrderEvent
from mastertrade.core.outbox import add_to_outbox
from mastertrade.execution.adapters import books
from mastertrade.execution.adapters.orders import TERMINAL, announce, build_event
from mastertrade.execution.domain.binance_status import (
    BinanceAnswerError,
    OrderState,
    Trade,
    base_asset,
    fee_symbols,
    read_amount,
)
from mastertrade.execution.domain.drift import Shortfall, drift_message, shortfalls
from mastertrade.execution.domain.ledger import Position, pay_commission, shift_position
from mastertrade_model.topology import ALERTS

logger = logging.getLogger("mastertrade.execution.live")
FEE_MARK_MAX_AGE_SECONDS = 600.0
"""How recent the mark a commission in a third asset is valued at must be: twice the longest
BINANCE_POLL_SECONDS (300), so that an executor valuing the account has one; older, its
valuations have stopped (Binance's account or the asset's quote missing) for that long."""
BOOKED = "SELECT COALESCE(sum(quantity), 0) FROM fills WHERE client_order_id = $1"
ADD_TRADE = """
INSERT INTO fills (client_order_id, fill_id, price, quantity, fee, fee_asset, fee_price)
VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (client_order_id, fill_id) DO NOTHING
"""
# The asset's mark at the latest valuation that had one, if that was at most $2 seconds ago
FEE_PRICE = """
SELECT mark FROM balances
WHERE environment = 'live' AND asset = $1 AND marked_at >= now() - make_interval(secs => $2)
"""
UPDATE = """
UPDATE orders SET status = $2, exchange_order_id = COALESCE($3, exchange_order_id),
    filled_quantity = $4, average_price = COALESCE($5, average_price),
    fee = fee + $6, reason = $7, updated_at = now() WHERE client_order_id = $1
"""
# `updated_at` is left alone: it stamps the order's last send (live.py's resend rule)
NOTE_REASON = """
UPDATE orders SET reason = $2
WHERE client_order_id = $1 AND status IN ('submitted', 'partially_filled')
"""
LIVE_ASSETS = "SELECT asset FROM balances WHERE environment = 'live'"
# An asset's balance and its mark ($4, NULL: none now, the last one is kept); its last mark
SET_ASSET = """
INSERT INTO balances (environment, asset, free, locked, mark, marked_at)
VALUES ('live', $1, $2, $3, $4::numeric, CASE WHEN $4::numeric IS NULL THEN NULL ELSE now() END)
ON CONFLICT (environment, asset) DO UPDATE SET free = EXCLUDED.free, locked = EXCLUDED.locked,
    mark = COALESCE(EXCLUDED.mark, balances.mark),
    marked_at = COALESCE(EXCLUDED.marked_at, balances.marked_at), updated_at = now()
RETURNING mark
"""


async def _book_trades(
    connection: Connection, order: asyncpg.Record, trades: Iterable[Trade], quote_asset: str
) -> Decimal:
    """Insert new trades, move the position; returns the fees newly booked, in the quote
    asset (`fee_value`)."""
    fees, base = Decimal(0), base_asset(order["symbol"], quote_asset)
    for trade in trades:
        third = bool(trade.fee) and trade.fee_asset not in (base, quote_asset)
        price = await _mark_of(connection, trade.fee_asset) if third else None
        status = await connection.execute(
            ADD_TRADE, order["client_order_id"], trade.trade_id, trade.price, trade.quantity,
            trade.fee, trade.fee_asset, price,
        )  # fmt: skip
        if not status.endswith(" 1"):
            continue  # already booked: from the REST answer, the stream or a query
        in_coin = trade.fee if base and trade.fee_asset == base else Decimal(0)
        position = await books.lock_position(connection, "live", order["symbol"])
        moved = shift_position(position, order["side"], trade.quantity, trade.price, in_coin)
        await books.set_position(connection, "live", order["symbol"], moved)
        if third:
            await _pay_from_held(connection, trade.fee_asset + quote_asset, trade.fee)
            if price is None:
                _warn_unvalued(order["client_order_id"], trade, quote_asset)
        fees = _plus(fees, fee_value(trade, base, quote_asset, price))
    return fees


@exactly
def fee_value(trade: Trade, base: str, quote_asset: str, price: Decimal | None) -> Decimal:
    """A trade's commission in the quote asset: as it is; in the base asset at the trade's
    price; in a third asset at `price` (its mark), or 0 without one (none is guessed)."""
    if trade.fee_asset == quote_asset:
        return trade.fee
    if base and trade.fee_asset == base:
        return trade.fee * trade.price
    return trade.fee * price if price is not None else Decimal(0)


@exactly
def _plus(total: Decimal, amount: Decimal) -> Decimal:
    """As the fill's fee column adds it (`fee + $6`): the published fee is the stored one."""
    return total + amount


async def _mark_of(connection: Connection, asset: str) -> Decimal | None:
    """The asset's price in the quote asset at the executor's latest valuation that had one,
    if at most FEE_MARK_MAX_AGE_SECONDS old (`store_account`); None otherwise."""
    price = await connection.fetchval(FEE_PRICE, asset, FEE_MARK_MAX_AGE_SECONDS)
    return price if isinstance(price, Decimal) else None


def _warn_unvalued(client_order_id: str, trade: Trade, quote_asset: str) -> None:
    logger.warning(
        "order %s: the commission of trade %s, %s %s, is not counted in the order's fee: no "
        "%s price of %s from the executor's valuations of the last %.0fs (is %s%s quoted in "
        "Redis?); the fill keeps it in %s (fills.fee_price NULL)", client_order_id,
        trade.trade_id, trade.fee, trade.fee_asset, quote_asset, trade.fee_asset,
        FEE_MARK_MAX_AGE_SECONDS, trade.fee_asset, quote_asset, trade.fee_asset,
    )  # fmt: skip


async def _pay_from_held(connection: Connection, symbol: str, fee: Decimal) -> None:
    """A commission in a third coin out of the books' position in it, if they hold one (locked
    after the trade's own position: a commission in a third coin is never in the trade's own
    symbol, and one in BNB on a BNB pair is taken from that trade's coins, not here);
    what is left cost what it cost each. The part the books do not hold came from coins bought
    outside MasterTrade. Either way the order's fee counts the commission at its mark."""
    row = await connection.fetchrow(books.LOCK_POSITION, "live", symbol)
    if row is None or row["quantity"] <= 0:
        return
    held = Position(row["quantity"], row["average_price"])
    await books.set_position(connection, "live", symbol, pay_commission(held, fee))


def not_behind(order: asyncpg.Record, state: OrderState) -> OrderState:
    """Binance's word on an open order, unless the books already hold a later one: a query's
    answer can arrive after the stream's report of a later fill (the query was answered first,
    or was slow), and would otherwise take back the status and the filled quantity."""
    if state.status in TERMINAL or state.filled_quantity >= order["filled_quantity"]:
        return state
    return OrderState(state.exchange_order_id, order["status"], order["filled_quantity"],
                      order["average_price"])  # fmt: skip


def held_open(state: OrderState, booked: Decimal) -> OrderState:
    """Binance's final word on an order whose trades the books do not all hold yet, as open
    (`partially_filled`): a stream report was missed (the websocket was reconnecting, or its
    booking failed) and the final one books only its own trade. Ended, the order would never be
    looked at again and the missed trade never booked; open, the next poll queries it and books
    what is missing from myTrades, then ends it."""
    if state.status not in TERMINAL or booked >= state.filled_quantity:
        return state
    return OrderState(state.exchange_order_id, "partially_filled", state.filled_quantity,
                      state.average_price)  # fmt: skip


def kept_reason(order: asyncpg.Record, status: str) -> str | None:
    """The order's reason once it is booked `status`. A live order in flight carries one only
    when noted for its cancel (`note_reason`), or, a market buy capped at its ceiling, for what
    of it expires (set by the claim, adapters/live.py); it holds while the order is open (the
    cancel's report, from the answer or the stream, is still to come) and once it is cancelled,
    not when it filled or was rejected instead: that order was never cancelled (a -2011 to the
    cancel)."""
    return None if status in ("filled", "rejected") else order["reason"]


async def book_report(
    pool: asyncpg.Pool,
    client_order_id: str,
    state: OrderState,
    trades: Iterable[Trade],
    quote_asset: str,
) -> OrderEvent | None:
    """Apply Binance's word on an order; the event when its status changed."""
    async with pool.acquire() as connection, connection.transaction():
        order = await connection.fetchrow(
            "SELECT * FROM orders WHERE client_order_id = $1 FOR UPDATE", client_order_id
        )
        if order is None or order["status"] in TERMINAL:
            return None
        fees = await _book_trades(connection, order, trades, quote_asset)
        booked = await connection.fetchval(BOOKED, client_order_id)
        state = held_open(not_behind(order, state), booked)
        reason = kept_reason(order, state.status)
        await connection.execute(
            UPDATE, client_order_id, state.status, state.exchange_order_id or None,
            state.filled_quantity, state.average_price, fees, reason,
        )  # fmt: skip
        if state.status in (order["status"], "partially_filled"):
            return None
        event = build_event(order, state.status, filled_quantity=state.filled_quantity,
                            average_price=state.average_price, fee=_plus(order["fee"], fees),
                            reason=reason)  # fmt: skip
        await announce(connection, event)
        return event


async def note_reason(pool: asyncpg.Pool, client_order_id: str, reason: str) -> None:
    """Store why the order is about to be cancelled, before the cancel is sent: the report that
    books the cancellation, from the answer or the stream, carries it (one that books a fill
    instead clears it: `kept_reason`)."""
    await pool.execute(NOTE_REASON, client_order_id, reason)


@dataclass(frozen=True)
class Valuation:
    """What a revaluation stored, and what the books hold beyond Binance's snapshot."""

    equity: Decimal | None  # None: a position had no mark, nothing was stored
    short: dict[str, Shortfall]


async def store_account(
    pool: asyncpg.Pool, balances: Iterable[Mapping[str, Any]], quote_asset: str,
    marks: Mapping[str, Decimal],
) -> Valuation:  # fmt: skip
    """Binance's balances (and each coin's mark) into `balances`, then the equity for the risk
    manager: the cash and the coins (`valued_coins`) both from this one snapshot. The books'
    positions may be a fill ahead of it or behind it (booked from the stream before or after
    the snapshot was taken), and cash and coins from two moments would make an equity the
    account never had, which the peak would keep (migration 0033) and the breaker trip on."""
    async with pool.acquire() as connection, connection.transaction():
        holdings, last_marks = await _store_balances(connection, balances, quote_asset, marks)
        traded = await books.fetch_positions(connection, "live")
        coins = valued_coins(traded, holdings, quote_asset, last_marks)
        cash = holdings.get(quote_asset, Decimal(0))
        equity = await books.store_valuation(connection, "live", cash, coins, marks)
    booked = {symbol: position.quantity for symbol, position in traded.items()}
    return Valuation(equity, shortfalls(booked, holdings, quote_asset))


async def _store_balances(
    connection: Connection, balances: Iterable[Mapping[str, Any]], quote_asset: str,
    marks: Mapping[str, Decimal],
) -> tuple[dict[str, Decimal], dict[str, Decimal]]:  # fmt: skip
    """Each asset's balance, with its mark now (the last one kept when it has none); returns
    what Binance holds of each asset, and each stored coin's last mark."""
    holdings: dict[str, Decimal] = {}
    last_marks: dict[str, Decimal] = {}
    # an asset held before and now at zero (sold, withdrawn) is set to zero, not left as it
    # was: Binance lists it at 0, or not at all (omitZeroBalances)
    stored = {row["asset"] for row in await connection.fetch(LIVE_ASSETS)}
    for item in balances:
        free, locked = _balance(item)
        asset = item["asset"]
        holdings[asset] = _plus(free, locked)
        if free or locked or asset in stored | {quote_asset}:
            mark = None if asset == quote_asset else marks.get(f"{asset}{quote_asset}")
            last = await connection.fetchval(SET_ASSET, asset, free, locked, mark)
            if last is not None:
                last_marks[asset] = last
    for asset in stored - holdings.keys():
        await connection.execute(SET_ASSET, asset, Decimal(0), Decimal(0), None)
    return holdings, last_marks


def valued_coins(
    traded: Mapping[str, Position], holdings: Mapping[str, Decimal], quote_asset: str,
    last_marks: Mapping[str, Decimal],
) -> dict[str, Position]:  # fmt: skip
    """What the equity counts beside the cash, by symbol: all Binance `holdings` of the coin of
    each symbol the books trade, and of each fee asset held (BNB), traded or not. Each carries
    its cost, what it counts at without a mark: the books' average price, else (coins the books
    hold none of) the coin's last mark, else nothing."""
    coins = {symbol: base_asset(symbol, quote_asset) for symbol in traded}
    fee_coins = {symbol: base_asset(symbol, quote_asset) for symbol in fee_symbols(quote_asset)}
    coins |= {symbol: coin for symbol, coin in fee_coins.items() if holdings.get(coin)}
    return {
        symbol: Position(
            holdings.get(coin, Decimal(0)),
            traded.get(symbol, Position()).average_price or last_marks.get(coin, Decimal(0)),
        )
        for symbol, coin in coins.items()
    }


def _balance(item: Mapping[str, Any]) -> tuple[Decimal, Decimal]:
    """(free, locked) of one of GET /api/v3/account's balances; BinanceAnswerError naming the
    asset when unusable: the whole snapshot is refused (no equity is stored from it), since the
    account's equity is no longer known."""
    try:
        return read_amount(item, "free"), read_amount(item, "locked")
    except BinanceAnswerError as error:
        asset = item.get("asset") if isinstance(item, Mapping) else None
        raise BinanceAnswerError(
            f"GET /api/v3/account, the balance of {asset!r}: {error}"
        ) from None


async def announce_drift(
    pool: asyncpg.Pool, short: Mapping[str, Shortfall], quote_asset: str
) -> None:
    """Queue a critical alert for each confirmed shortfall (domain/drift.py); the alert
    system's dedup window makes the repeats of each poll one alert."""
    async with pool.acquire() as connection, connection.transaction():
        for symbol, shortfall in short.items():
            title, message = drift_message(symbol, shortfall, quote_asset)
            figures = ":".join(f"{amount.normalize():f}" for amount in shortfall)
            alert = AlertEvent(
                kind="position_drift", severity="critical", source="order_executor",
                title=title, message=message, dedup_key=f"position-drift:live:{symbol}:{figures}",
            )  # fmt: skip
            await add_to_outbox(connection, ALERTS.name, "alert.position_drift", alert.to_json())
