"""The live venue: Binance spot, crash-safe and never assuming an outcome it did not see.

For each order: (1) the order, stored as `new` before anything else, is checked against the
symbol's exchange filters and marked `submitted` (committed) BEFORE the request leaves, so a
crash mid-request leaves an order that start-up will query, never blindly resend; (2) it is
sent with newClientOrderId = our client order id; (3) a definite answer is booked; a rejection
(-2010, -1013, ...) rejects the order with Binance's code and message; an unknown outcome
(timeout, 5xx) is resolved by querying origClientOrderId. An order Binance says does not exist
(-2013) is sent again only once the first request's recvWindow has passed: from then on Binance
would refuse that request, so it can no longer land beside the second.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg

from mastertrade.core.messages import OrderEvent
from mastertrade.execution.adapters.binance import (
    ORDER_DOES_NOT_EXIST,
    BinanceClient,
    BinanceRejectedError,
    BinanceUnknownError,
)
from mastertrade.execution.adapters.live_books import book_report, store_account
from mastertrade.execution.adapters.orders import TERMINAL, reject_order
from mastertrade.execution.adapters.quotes import Quotes
from mastertrade.execution.domain.binance_status import parse_fill, parse_order
from mastertrade.execution.domain.filters import (
    FilterError,
    SymbolFilters,
    apply_filters,
    find_symbol,
    parse_filters,
)

logger = logging.getLogger("mastertrade.execution.live")
SUBMIT = """
UPDATE orders SET status = 'submitted', quantity = $2, price = $3, updated_at = now()
WHERE client_order_id = $1
"""


class LiveVenue:
    """Orders on Binance; the account's balances and equity from Binance too."""

    in_flight: tuple[str, ...] = ("new", "submitted", "partially_filled")

    def __init__(
        self,
        pool: Callable[[], asyncpg.Pool],
        client: BinanceClient,
        quote_asset: str,
        quotes: Quotes,
    ) -> None:
        self.pool, self.client, self.quote_asset, self.quotes = pool, client, quote_asset, quotes
        self._filters: dict[str, SymbolFilters] = {}

    async def revalue(self) -> Decimal:
        """Binance's balances into the books, then the equity at Redis marks."""
        account = await self.client.request("GET", "/api/v3/account")
        held = await self.pool().fetch("SELECT symbol FROM positions WHERE environment = 'live'")
        marks = await self.quotes.marks([row["symbol"] for row in held])
        return await store_account(self.pool(), account["balances"], self.quote_asset, marks)

    async def filters(self, symbol: str) -> SymbolFilters:
        if symbol not in self._filters:
            info = await self.client.exchange_info(symbol)
            self._filters[symbol] = parse_filters(find_symbol(info, symbol))
        return self._filters[symbol]

    async def execute(self, client_order_id: str) -> OrderEvent | None:
        """Send, or resolve, the order; None when nothing changed."""
        order = await self.pool().fetchrow(
            "SELECT * FROM orders WHERE client_order_id = $1", client_order_id
        )
        if order is None or order["status"] in TERMINAL:
            return None
        if order["status"] == "new":
            return await self._send(client_order_id, await self.filters(order["symbol"]))
        return await self._resolve(order)

    async def _reference(self, symbol: str, side: str) -> Decimal | None:
        quote = await self.quotes.quote(symbol)
        if isinstance(quote, str):
            return None
        return quote.ask if side == "buy" else quote.bid

    async def _mark_submitted(
        self, client_order_id: str, filters: SymbolFilters
    ) -> asyncpg.Record | None:
        async with self.pool().acquire() as connection, connection.transaction():
            order = await connection.fetchrow(
                "SELECT * FROM orders WHERE client_order_id = $1 FOR UPDATE", client_order_id
            )
            if order is None or order["status"] != "new":
                return None  # another replica got there first
            reference = order["price"] or await self._reference(order["symbol"], order["side"])
            try:
                quantity, price = apply_filters(
                    filters, order["side"], order["quantity"], order["price"], reference
                )
            except FilterError as error:
                await reject_order(connection, order, f"exchange filter: {error}")
                return None
            await connection.execute(SUBMIT, client_order_id, quantity, price)
            return await connection.fetchrow(
                "SELECT * FROM orders WHERE client_order_id = $1", client_order_id
            )

    async def _send(self, client_order_id: str, filters: SymbolFilters) -> OrderEvent | None:
        order = await self._mark_submitted(client_order_id, filters)
        if order is None:
            return None
        try:
            answer = await self.client.new_order(
                client_order_id, order["symbol"], order["side"], order["quantity"], order["price"]
            )
        except BinanceRejectedError as error:
            return await self._reject(client_order_id, f"Binance {error.code}: {error.message}")
        except BinanceUnknownError as error:
            logger.warning("outcome of %s unknown (%s): querying it", client_order_id, error)
            return await self._resolve(order)
        trades = [parse_fill(item) for item in answer.get("fills", [])]
        return await book_report(
            self.pool(), client_order_id, parse_order(answer), trades, self.quote_asset
        )

    async def _reject(self, client_order_id: str, reason: str) -> OrderEvent | None:
        async with self.pool().acquire() as connection, connection.transaction():
            order = await connection.fetchrow(
                "SELECT * FROM orders WHERE client_order_id = $1 FOR UPDATE", client_order_id
            )
            if order is None or order["status"] in TERMINAL:
                return None
            return await reject_order(connection, order, reason)

    async def _resolve(self, order: asyncpg.Record) -> OrderEvent | None:
        cid, symbol = order["client_order_id"], order["symbol"]
        try:
            answer = await self.client.query_order(symbol, cid)
        except BinanceUnknownError as error:
            logger.warning("querying %s failed (%s): next round", cid, error)
            return None
        except BinanceRejectedError as error:
            if error.code != ORDER_DOES_NOT_EXIST:
                raise
            return await self._resend_when_safe(order)
        state = parse_order(answer)
        trades = []
        if state.filled_quantity > 0:
            found = await self.client.my_trades(symbol, int(answer["orderId"]))
            trades = [parse_fill(item) for item in found]
        return await book_report(self.pool(), cid, state, trades, self.quote_asset)

    async def _resend_when_safe(self, order: asyncpg.Record) -> OrderEvent | None:
        window = timedelta(milliseconds=self.client.recv_window + 1000)
        if datetime.now(UTC) - order["updated_at"] < window:
            return None  # the first request could still land: ask again next round
        async with self.pool().acquire() as connection:
            await connection.execute(
                "UPDATE orders SET status = 'new' WHERE client_order_id = $1 "
                "AND status = 'submitted'", order["client_order_id"],
            )  # fmt: skip
        return await self._send(order["client_order_id"], await self.filters(order["symbol"]))
