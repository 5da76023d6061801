"""Booking what Binance reports about an order: fills (once each, by trade id), the order's
status, the position, and the event; plus the account's balances and equity from Binance, and
an alert when the books hold more of a coin than Binance does (domain/drift.py).

A commission comes out of what the trade paid: in the quote asset, out of the proceeds (the
cash is Binance's balance, and the order's fee says it); in the base asset (a buyer's, unless
BNB pays), out of the coins, so the position is what the exchange holds, and the order's fee
counts it at the trade's price. One in a third asset (BNB, when BNB pays the fees) comes out of
the books' position in that coin (BNBUSDT), as much as it holds: left there, the books would
hold BNB Binance has spent, and its sell would be refused; the order's fee counts what the
coins paid cost the books (their average price), and the fill keeps the fee in its own asset.
Paid from coins the books do not hold, it is on the fill alone: the books know no price for
them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg

from mastertrade.core.amounts import exact_arithmetic, exactly
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
    read_amount,
)
from mastertrade.execution.domain.drift import Shortfall, drift_message, shortfalls
from mastertrade.execution.domain.ledger import Position, pay_commission, shift_position
from mastertrade_model.topology import ALERTS

BOOKED = "SELECT COALESCE(sum(quantity), 0) FROM fills WHERE client_order_id = $1"
ADD_TRADE = """
INSERT INTO fills (client_order_id, fill_id, price, quantity, fee, fee_asset)
VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (client_order_id, fill_id) DO NOTHING
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
SET_ASSET = """
INSERT INTO balances (environment, asset, free, locked) VALUES ('live', $1, $2, $3)
ON CONFLICT (environment, asset) DO UPDATE SET free = EXCLUDED.free, locked = EXCLUDED.locked,
    updated_at = now()
"""


async def _book_trades(
    connection: Connection, order: asyncpg.Record, trades: Iterable[Trade], quote_asset: str
) -> Decimal:
    """Insert new trades, move the position; returns the fees newly booked, in the quote
    asset (one in the base asset at the trade's price, one in a third coin at what the books
    paid for it)."""
    fees, base = Decimal(0), base_asset(order["symbol"], quote_asset)
    for trade in trades:
        status = await connection.execute(
            ADD_TRADE, order["client_order_id"], trade.trade_id, trade.price, trade.quantity,
            trade.fee, trade.fee_asset,
        )  # fmt: skip
        if not status.endswith(" 1"):
            continue  # already booked: from the REST answer, the stream or a query
        in_coin = trade.fee if base and trade.fee_asset == base else Decimal(0)
        position = await books.lock_position(connection, "live", order["symbol"])
        moved = shift_position(position, order["side"], trade.quantity, trade.price, in_coin)
        await books.set_position(connection, "live", order["symbol"], moved)
        if trade.fee and trade.fee_asset not in (base, quote_asset):
            paid = await _pay_from_held(connection, trade.fee_asset + quote_asset, trade.fee)
            fees = _plus(fees, paid)
        fees = _plus(
            fees, trade.fee if trade.fee_asset == quote_asset else _times(in_coin, trade.price)
        )
    return fees


@exactly
def _times(quantity: Decimal, price: Decimal) -> Decimal:
    return quantity * price


@exactly
def _plus(total: Decimal, amount: Decimal) -> Decimal:
    """As the fill's fee column adds it (`fee + $6`): the published fee is the stored one."""
    return total + amount


async def _pay_from_held(connection: Connection, symbol: str, fee: Decimal) -> Decimal:
    """A commission in a third coin out of the books' position in it, if they hold one (locked
    after the trade's own position: a trade's commission is never in its own symbol's coin);
    what the coins paid cost the books, in the quote asset. Coins the books do not hold (bought
    outside MasterTrade) have no cost here: that part of the fee is on the fill alone."""
    row = await connection.fetchrow(books.LOCK_POSITION, "live", symbol)
    if row is None or row["quantity"] <= 0:
        return Decimal(0)
    held = Position(row["quantity"], row["average_price"])
    await books.set_position(connection, "live", symbol, pay_commission(held, fee))
    with exact_arithmetic():
        return min(fee, held.quantity) * held.average_price


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
    when noted for its cancel (`note_reason`); it holds while the order is open (the cancel's
    report, from the answer or the stream, is still to come) and once it is cancelled, not when
    it filled or was rejected instead: that order was never cancelled (a -2011 to the cancel)."""
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
    """Binance's balances into `balances`, then the equity for the risk manager: the cash and
    the coins of each symbol traded both from this one snapshot. The books' positions may be a
    fill ahead of it or behind it (booked from the stream before or after the snapshot was
    taken), and cash and coins from two moments would make an equity the account never had,
    which the peak would keep (migration 0033) and the breaker trip on."""
    holdings: dict[str, Decimal] = {}
    async with pool.acquire() as connection, connection.transaction():
        # an asset held before and now at zero (sold, withdrawn) is set to zero, not left as it
        # was: Binance lists it at 0, or not at all (omitZeroBalances)
        stored = {row["asset"] for row in await connection.fetch(LIVE_ASSETS)}
        for item in balances:
            free, locked = _balance(item)
            holdings[item["asset"]] = _plus(free, locked)
            if free or locked or item["asset"] in stored | {quote_asset}:
                await connection.execute(SET_ASSET, item["asset"], free, locked)
        for asset in stored - holdings.keys():
            await connection.execute(SET_ASSET, asset, Decimal(0), Decimal(0))
        traded = await books.fetch_positions(connection, "live")
        coins = {
            symbol: Position(
                holdings.get(base_asset(symbol, quote_asset), Decimal(0)), position.average_price
            )
            for symbol, position in traded.items()
        }
        cash = holdings.get(quote_asset, Decimal(0))
        equity = await books.store_valuation(connection, "live", cash, coins, marks)
    booked = {symbol: position.quantity for symbol, position in traded.items()}
    return Valuation(equity, shortfalls(booked, holdings, quote_asset))


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
