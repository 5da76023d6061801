"""A local server speaking Binance spot's REST and WebSocket API, for the live tests.

It checks what the real one checks: the API key (-2015), the HMAC-SHA256 signature (-1022: of
the query string on REST; of the params but `signature`, sorted by name, on the WebSocket API),
the timestamp against recvWindow (-1021), a LIMIT order's timeInForce (-1102; none on a MARKET
order, -1106), each symbol's filters (-1013; MARKET_LOT_SIZE for
market orders, whose notional is checked at the average price /api/v3/avgPrice serves, as
Binance does; `set_filter` changes a filter as Binance does now and then on a live symbol), the
unfilled order count when given a limit (429 -1015 "Too many new orders", without Retry-After,
counted in fixed intervals from the epoch, a fill taking its order off the count; queries and
cancels still served), the balance (-2010: the quote asset a buy costs, the coins a sell
gives), duplicate client order ids of open orders (-2010 "Duplicate order sent.", while NEW or
PARTIALLY_FILLED), unknown orders (-2013), cancels of orders not open (-2011), unknown symbols
(-1121). An order trades at once what crosses, at the book's price (a symbol's `asks` make a
buy walk their levels, up to its limit); what is left rests (GTC) or expires (IOC and MARKET:
EXPIRED, with what it filled). A fill moves
the quote asset and the coin (less a commission taken in it), and BNB when BNB pays. It answers
in Binance's shapes (FULL order answers with fills; on the WebSocket API
`userDataStream.subscribe.signature` answered with a subscriptionId, then executionReport events
as `{"subscriptionId": N, "event": {...}}`: NEW for every order taken, TRADE for each fill,
CANCELED), takes a buyer's commission in the base asset when asked (as Binance does unless BNB
pays), and can misbehave on purpose: time out or fail with a 5xx before or after taking an
order, answer -1007 (execution status unknown) after taking it, rate-limit an order with 429 or
418 and a Retry-After (a request sent during that pause is answered 418, as Binance bans such
clients), answer a query slowly or as if the order did not exist, hold the stream's reports
back (a stream lagging behind REST), end the subscriptions (`eventStreamTerminated`), drop the
WebSocket API connections (as Binance does after 24 h), fill an order just before its cancel
lands. It cancels open orders (DELETE /api/v3/order) with Binance's answer and a CANCELED report.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse

from tests.services.trading import serve_app

KEY, SECRET = "test-api-key", "test-api-secret"
WS_API_PATH = "/ws-api/v3"
SUBSCRIBE = "userDataStream.subscribe.signature"
INVALID_KEY = "Invalid API-key, IP, or permissions for action."
INSUFFICIENT = "Account has insufficient balance for requested action."
FILTERS: list[dict[str, Any]] = [
    {
        "filterType": "PRICE_FILTER",
        "minPrice": "0.01",
        "maxPrice": "1000000.00",
        "tickSize": "0.01",
    },
    {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000.00000", "stepSize": "0.00001"},
    # as BTCUSDT's: market orders capped tighter than limit orders, no step of their own
    {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000", "maxQty": "50.00000", "stepSize": "0"},
    {
        "filterType": "NOTIONAL",
        "minNotional": "5.00",
        "applyMinToMarket": True,
        "maxNotional": "9000000.00",
        "applyMaxToMarket": False,
        "avgPriceMins": 5,
    },
]


class BinanceError(Exception):
    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


# Binance's errors that do not say whether the order was placed (its "Error codes" page)
UNKNOWN_OUTCOMES = {
    "1007-after": "Timeout waiting for response from backend server. Send status unknown; "
    "execution status unknown.",
    "1000-after": "An unknown error occurred while processing the request.",
    "1001-after": "Internal error; unable to process your request. Please try again.",
    "1008-after": "Spot server is currently overloaded with other requests. Please try again "
    "in a few minutes.",
}


@dataclass
class ApiConnection:
    """One WebSocket API connection: its subscriptions (ids counted per connection, as
    Binance's) and what is queued to go out on it, in order."""

    opened_at: float = field(default_factory=time.monotonic)
    outbox: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    subscriptions: list[int] = field(default_factory=list)
    ids: itertools.count[int] = field(default_factory=itertools.count)
    sent: list[dict[str, Any]] = field(default_factory=list)
    open: bool = True
    close: asyncio.Event = field(default_factory=asyncio.Event)  # set: the server drops it


def check_time_in_force(kind: str, time_in_force: str | None) -> str | None:
    """A LIMIT order's timeInForce, GTC or IOC (-1102 without one); a MARKET order takes none
    (-1106). Binance takes FOK too; the executor never sends it, and it is not modelled here:
    refused like a missing one, so that a test sending it fails loudly."""
    if kind == "MARKET":
        if time_in_force is not None:
            raise BinanceError(400, -1106, "Parameter 'timeInForce' sent when not required.")
        return None
    if time_in_force not in ("GTC", "IOC"):
        raise BinanceError(400, -1102, "Mandatory parameter 'timeInForce' was not sent, was "
                           "empty/null, or malformed.")  # fmt: skip
    return time_in_force


def ws_payload(params: dict[str, Any]) -> str:
    """What a WebSocket API request's signature signs: all params but `signature`, sorted by
    name, as `name=value` joined with `&` (JSON true/false as Binance spells them)."""

    def text(value: Any) -> str:
        return json.dumps(value) if isinstance(value, bool) else str(value)

    return "&".join(f"{name}={text(value)}" for name, value in sorted(params.items())
                    if name != "signature")  # fmt: skip


@dataclass
class FakeBinance:
    """The exchange's state and the misbehaviour asked for."""

    prices: dict[str, Decimal] = field(default_factory=dict)
    balances: dict[str, Decimal] = field(default_factory=lambda: {"USDT": Decimal(10000)})
    """Free, by asset; what resting orders hold back is in `locked`, as Binance keeps it."""
    locked: dict[str, Decimal] = field(default_factory=dict)
    holds: dict[str, tuple[str, Decimal]] = field(default_factory=dict)  # by client order id
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    trades: list[dict[str, Any]] = field(default_factory=list)
    clock_skew_ms: int = 0
    misbehave: list[str] = field(default_factory=list)  # "timeout-after", "garbled-after", ...
    requests: list[tuple[str, str, int]] = field(default_factory=list)  # method, path, status
    # ("WS", method, status) for WebSocket API requests
    keys: dict[str, str] = field(default_factory=lambda: {KEY: SECRET})  # API key: its secret
    connections: list[ApiConnection] = field(default_factory=list)  # every one opened
    push_reports: bool = True  # False: reports are lost (the stream away)
    hold_reports: bool = False  # True: reports wait for `release` (the stream lagging)
    held: list[dict[str, Any]] = field(default_factory=list)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))
    placed: Counter[str] = field(default_factory=Counter)  # orders taken, by newClientOrderId
    query_tricks: list[str] = field(default_factory=list)  # "slow", "lost", "garbled": per GET
    slow_seconds: float = 0.5  # how late a "slow" query is answered
    query_errors: dict[str, BinanceError] = field(default_factory=dict)  # by origClientOrderId
    commission_in_base: bool = False  # a buyer's commission in the base asset (no BNB)
    bnb_pays_at: Decimal | None = None  # BNB pays every commission (25 % off), BNB at this price
    retry_after: int = 1  # seconds, of a 429/418 asked for with misbehave
    paused_until: float = 0.0  # monotonic; a request before it is answered 418
    fill_before_cancel: bool = False  # the order fills at its price just before a cancel lands
    symbol_filters: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # or FILTERS
    avg_prices: dict[str, Decimal] = field(default_factory=dict)  # /api/v3/avgPrice, or prices
    orders_limit: int = 0  # unfilled orders per `orders_interval` (0: no limit), per account
    orders_interval: int = 10  # seconds, as Binance's ORDERS limit of 10 SECOND
    order_counts: Counter[int] = field(default_factory=Counter)  # by interval since the epoch
    asks: dict[str, list[tuple[Decimal, Decimal]]] = field(default_factory=dict)
    """A symbol's order book on the ask side, (price, quantity) from the best: a buy walks it,
    taking what it offers up to the buy's limit. A symbol not here trades at its price."""

    @property
    def subscribed(self) -> list[ApiConnection]:
        """The open connections with a user-data subscription."""
        return [c for c in self.connections if c.open and c.subscriptions]

    def terminate(self) -> None:
        """End every subscription (`eventStreamTerminated`); their connections stay open."""
        for connection in self.subscribed:
            for subscription in connection.subscriptions:
                connection.outbox.put_nowait({"subscriptionId": subscription, "event": {
                    "e": "eventStreamTerminated", "E": self.now_ms()}})  # fmt: skip
            connection.subscriptions.clear()

    def disconnect(self) -> None:
        """Drop every WebSocket API connection, as Binance does after 24 h."""
        for connection in self.connections:
            connection.close.set()

    def release(self) -> None:
        """Send the reports held back, in order, and hold no more."""
        self.hold_reports = False
        for event in self.held:
            self.push(event)
        self.held.clear()

    def rate_limit(self, status: int) -> JSONResponse:
        self.paused_until = time.monotonic() + self.retry_after
        return JSONResponse(
            {"code": -1003, "msg": "Too much request weight used; current limit is 6000 request "
             "weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid "
             "polling the API."},
            status_code=status, headers={"Retry-After": str(self.retry_after)},
        )  # fmt: skip

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.clock_skew_ms

    def filters_of(self, symbol: str) -> list[dict[str, Any]]:
        return self.symbol_filters.get(symbol, FILTERS)

    def set_filter(self, symbol: str, kind: str, **fields: str) -> None:
        """Change fields of one of the symbol's filters (a new stepSize, ...) from now on."""
        self.symbol_filters[symbol] = [item | fields if item["filterType"] == kind else item
                                       for item in self.filters_of(symbol)]  # fmt: skip

    def average_price(self, symbol: str) -> Decimal:
        return self.avg_prices.get(symbol, self.prices[symbol])

    def order_interval(self) -> int:
        """The ORDERS interval now: Binance counts from the epoch (12:34:00 to 12:34:10, ...)."""
        return self.now_ms() // (self.orders_interval * 1000)

    def check_order_count(self) -> None:
        if self.orders_limit and self.order_counts[self.order_interval()] >= self.orders_limit:
            raise BinanceError(
                429,
                -1015,
                f"Too many new orders; current limit is "
                f"{self.orders_limit} orders per {self.orders_interval} SECOND.",
            )

    def check_signed(self, request: Request) -> dict[str, str]:
        query = request.url.query
        payload, _, signature = query.rpartition("&signature=")
        params = dict(parse_qsl(payload))
        self.check_signature(request.headers.get("X-MBX-APIKEY"), payload, signature, params)
        return params

    def check_ws_signed(self, params: dict[str, Any]) -> None:
        """A SIGNED WebSocket API request's params: apiKey, timestamp and signature."""
        for name in ("apiKey", "timestamp", "signature"):
            malformed = name == "timestamp" and not str(params.get(name)).isdigit()
            if params.get(name) in (None, "") or malformed:
                raise BinanceError(400, -1102, f"Mandatory parameter '{name}' was not sent, "
                                   "was empty/null, or malformed.")  # fmt: skip
        self.check_signature(params["apiKey"], ws_payload(params), str(params["signature"]),
                             params)  # fmt: skip

    def check_signature(
        self, key: str | None, payload: str, signature: str, params: dict[str, Any]
    ) -> None:
        secret = self.keys.get(key or "")
        if secret is None:
            raise BinanceError(401, -2015, INVALID_KEY)
        expected = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature.lower(), expected):  # HMAC's: any letter case
            raise BinanceError(400, -1022, "Signature for this request is not valid.")
        stamp, window = int(params["timestamp"]), int(params.get("recvWindow", 5000))
        if not (stamp < self.now_ms() + 1000 and self.now_ms() - stamp <= window):
            raise BinanceError(
                400, -1021, "Timestamp for this request is outside of the recvWindow."
            )

    def answer(self, connection: ApiConnection, request: Any) -> dict[str, Any]:
        """Binance's answer to a WebSocket API request (the executor sends only SUBSCRIBE)."""
        request = request if isinstance(request, dict) else {}
        request_id, method = request.get("id"), str(request.get("method"))
        try:
            if method != SUBSCRIBE:
                raise BinanceError(400, -1000, f"Unknown method '{method}' (not faked)")
            params = request.get("params")
            self.check_ws_signed(params if isinstance(params, dict) else {})
            subscription = next(connection.ids)
            connection.subscriptions.append(subscription)
            answer = {"id": request_id, "status": 200, "result": {"subscriptionId": subscription}}
        except BinanceError as error:
            answer = {"id": request_id, "status": error.status,
                      "error": {"code": error.code, "msg": error.msg}}  # fmt: skip
        self.requests.append(("WS", method, answer["status"]))
        return answer

    def check_filters(self, symbol: str, qty: Decimal, price: Decimal, kind: str) -> None:
        """The symbol's filters; `price` a limit order's, or the average price (MARKET)."""
        found = {item["filterType"]: item for item in self.filters_of(symbol)}
        lot, market_lot = found["LOT_SIZE"], found["MARKET_LOT_SIZE"]
        if qty < Decimal(lot["minQty"]) or qty % Decimal(lot["stepSize"]) != 0:
            raise BinanceError(400, -1013, "Filter failure: LOT_SIZE")
        if kind == "MARKET" and qty > Decimal(market_lot["maxQty"]):
            raise BinanceError(400, -1013, "Filter failure: MARKET_LOT_SIZE")
        if kind == "LIMIT" and price % Decimal(found["PRICE_FILTER"]["tickSize"]) != 0:
            raise BinanceError(400, -1013, "Filter failure: PRICE_FILTER")
        if qty * price < Decimal(found["NOTIONAL"]["minNotional"]):
            raise BinanceError(400, -1013, "Filter failure: NOTIONAL")

    def place(self, params: dict[str, str]) -> dict[str, Any]:
        self.check_order_count()
        symbol, side, kind = params["symbol"], params["side"], params["type"]
        cid, qty = params["newClientOrderId"], Decimal(params["quantity"])
        time_in_force = check_time_in_force(kind, params.get("timeInForce"))
        old = self.orders.get(cid)
        if old is not None and old["status"] in ("NEW", "PARTIALLY_FILLED"):  # open
            raise BinanceError(400, -2010, "Duplicate order sent.")
        market = self.prices[symbol]
        price = Decimal(params["price"]) if kind == "LIMIT" else market
        self.check_filters(symbol, qty, price if kind == "LIMIT" else self.average_price(symbol),
                           kind)  # fmt: skip
        if side == "BUY" and qty * price * Decimal("1.001") > self.balances.get("USDT", Decimal(0)):
            raise BinanceError(400, -2010, INSUFFICIENT)
        if side == "SELL" and qty > self.balances.get(self.coin(symbol), Decimal(0)):
            raise BinanceError(400, -2010, INSUFFICIENT)
        self.placed[cid] += 1
        order: dict[str, Any] = {
            "symbol": symbol,
            "orderId": next(self.ids),
            "clientOrderId": cid,
            "price": str(price if kind == "LIMIT" else 0),
            "origQty": str(qty),
            "executedQty": "0",
            "cummulativeQuoteQty": "0",
            "status": "NEW",
            "timeInForce": time_in_force or "GTC",  # as Binance answers a MARKET order too
            "type": kind,
            "side": side,
            "transactTime": self.now_ms(),
            "fills": [],
        }
        self.orders[cid] = order
        self.order_counts[self.order_interval()] += 1
        self.push(self.execution_report(order, "NEW"))  # Binance's, often before the answer
        for level_price, level_qty in self.take(symbol, side, qty, None if kind == "MARKET"
                                                else price):  # fmt: skip
            self.fill(order, level_qty, level_price)
        left = qty - Decimal(order["executedQty"])
        if left and (kind == "MARKET" or time_in_force == "IOC"):  # what did not trade at once
            order["status"] = "EXPIRED"
            self.push(self.execution_report(order, "EXPIRED"))
        elif left:  # resting: what it may spend is locked until it fills or is cancelled
            self.lock(cid, "USDT" if side == "BUY" else self.coin(symbol),
                      left * price * Decimal("1.001") if side == "BUY" else left)  # fmt: skip
        return order

    def place_limit(
        self, symbol: str, quantity: str, price: str, client_order_id: str
    ) -> dict[str, Any]:
        """A LIMIT GTC buy placed as if sent by someone: what a test puts on the book."""
        return self.place({"symbol": symbol, "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                           "quantity": quantity, "price": price,
                           "newClientOrderId": client_order_id})  # fmt: skip

    def take(
        self, symbol: str, side: str, qty: Decimal, limit: Decimal | None
    ) -> list[tuple[Decimal, Decimal]]:
        """The trades a taker order of `qty` makes at once: at each level's price (the maker's,
        never the taker's limit), up to `limit` if it has one, levels used up as they trade.
        A symbol with no `asks` (and every sell) trades in full at its price when it crosses."""
        levels = self.asks.get(symbol) if side == "BUY" else None
        if levels is None:
            market = self.prices[symbol]
            crosses = limit is None or (market <= limit if side == "BUY" else market >= limit)
            return [(market, qty)] if crosses else []
        trades: list[tuple[Decimal, Decimal]] = []
        while qty and levels and (limit is None or levels[0][0] <= limit):
            level_price, available = levels[0]
            traded = min(qty, available)
            trades.append((level_price, traded))
            qty -= traded
            if traded == available:
                levels.pop(0)
            else:
                levels[0] = (level_price, available - traded)
        return trades

    def lock(self, cid: str, asset: str, amount: Decimal) -> None:
        self.balances[asset] = self.balances.get(asset, Decimal(0)) - amount
        self.locked[asset] = self.locked.get(asset, Decimal(0)) + amount
        self.holds[cid] = (asset, amount)

    def unlock(self, cid: str, share: Decimal = Decimal(1)) -> None:
        """Give back `share` of what the order's hold locked (all of it by default)."""
        if cid not in self.holds:
            return
        asset, amount = self.holds[cid]
        freed = amount * share
        self.balances[asset] += freed
        self.locked[asset] -= freed
        if freed == amount:
            del self.holds[cid]
        else:
            self.holds[cid] = (asset, amount - freed)

    def fill(self, order: dict[str, Any], qty: Decimal, price: Decimal) -> None:
        """A trade of `qty` of the order at `price` (all of it, or a part), reported; a resting
        order's lock gives back the part this trade takes."""
        left = Decimal(order["origQty"]) - Decimal(order["executedQty"])
        self.unlock(order["clientOrderId"], qty / left)
        fee = (qty * price * Decimal("0.001")).quantize(Decimal("0.00000001"))
        fee_asset = "USDT"
        if self.commission_in_base and order["side"] == "BUY":  # taken from what was bought
            fee = (qty * Decimal("0.001")).quantize(Decimal("0.00000001"))
            fee_asset = order["symbol"].removesuffix("USDT")
        if self.bnb_pays_at is not None:
            fee = (qty * price * Decimal("0.00075") / self.bnb_pays_at).quantize(Decimal("1e-8"))
            fee_asset = "BNB"
            self.balances["BNB"] = self.balances.get("BNB", Decimal(0)) - fee
        trade = {
            "symbol": order["symbol"],
            "id": next(self.ids),
            "orderId": order["orderId"],
            "price": str(price),
            "qty": str(qty),
            "commission": str(fee),
            "commissionAsset": fee_asset,
            "isBuyer": order["side"] == "BUY",
        }
        self.trades.append(trade)
        coin = self.coin(order["symbol"])
        quote_fee = fee if fee_asset == "USDT" else Decimal(0)
        # BNB paying for a BNBUSDT trade came out of the BNB balance above already
        coin_fee = fee if fee_asset == coin and self.bnb_pays_at is None else Decimal(0)
        cost = qty * price + quote_fee if order["side"] == "BUY" else -(qty * price - quote_fee)
        coins = qty - coin_fee if order["side"] == "BUY" else -qty
        self.balances["USDT"] = self.balances.get("USDT", Decimal(0)) - cost
        self.balances[coin] = self.balances.get(coin, Decimal(0)) + coins
        if order["executedQty"] == "0" and self.order_counts[self.order_interval()] > 0:
            self.order_counts[self.order_interval()] -= 1  # filled orders are off the count
        executed = Decimal(order["executedQty"]) + qty  # a part of it, or the rest
        order |= {
            "status": "FILLED" if executed == Decimal(order["origQty"]) else "PARTIALLY_FILLED",
            "executedQty": str(executed),
            "cummulativeQuoteQty": str(Decimal(order["cummulativeQuoteQty"]) + qty * price),
        }
        order["fills"].append({
            "price": str(price), "qty": str(qty), "commission": str(fee),
            "commissionAsset": fee_asset, "tradeId": trade["id"],
        })  # fmt: skip
        self.report(order, trade)

    def cancel(self, params: dict[str, str]) -> dict[str, Any]:
        """DELETE /api/v3/order: an open order cancelled, as Binance answers it."""
        order = self.orders.get(params["origClientOrderId"])
        if order is None or order["symbol"] != params["symbol"]:
            raise BinanceError(400, -2011, "Unknown order sent.")
        if self.fill_before_cancel and order["status"] == "NEW":
            self.fill(order, Decimal(order["origQty"]), Decimal(order["price"]))
        if order["status"] not in ("NEW", "PARTIALLY_FILLED"):
            raise BinanceError(400, -2011, "Unknown order sent.")
        order["status"] = "CANCELED"
        self.unlock(order["clientOrderId"])
        cancel_id = f"cancel-{next(self.ids)}"
        self.push(self.execution_report(order, "CANCELED", c=cancel_id,
                                        C=order["clientOrderId"]))  # fmt: skip
        answer = {key: value for key, value in order.items() if key != "fills"}
        return answer | {"origClientOrderId": order["clientOrderId"], "clientOrderId": cancel_id,
                         "orderListId": -1, "transactTime": self.now_ms(),
                         "timeInForce": "GTC", "selfTradePreventionMode": "NONE"}  # fmt: skip

    def execution_report(
        self, order: dict[str, Any], execution: str, **fields: Any
    ) -> dict[str, Any]:
        """A user-data `executionReport` of the order as it stands (a trade's fields to add)."""
        return {
            "e": "executionReport", "E": self.now_ms(), "s": order["symbol"],
            "c": order["clientOrderId"], "S": order["side"], "o": order["type"],
            "q": order["origQty"], "p": order["price"], "x": execution, "X": order["status"],
            "i": order["orderId"], "l": "0", "z": order["executedQty"], "L": "0", "n": "0",
            "N": None, "t": -1, "Z": order["cummulativeQuoteQty"], "C": "",
        } | fields  # fmt: skip

    @staticmethod
    def coin(symbol: str) -> str:
        """The base asset of a symbol quoted in USDT, the fake's one quote asset."""
        return symbol.removesuffix("USDT")

    def push(self, event: dict[str, Any]) -> None:
        """An event to every subscription, queued in order behind what its connection has yet
        to send; lost while `push_reports` is off, kept back while `hold_reports` is on."""
        if not self.push_reports:
            return
        if self.hold_reports:
            self.held.append(event)
            return
        for connection in self.subscribed:
            for subscription in connection.subscriptions:
                connection.outbox.put_nowait({"subscriptionId": subscription, "event": event})

    def report(self, order: dict[str, Any], trade: dict[str, Any]) -> None:
        self.push(self.execution_report(
            order, "TRADE", l=trade["qty"], L=trade["price"], n=trade["commission"],
            N=trade["commissionAsset"], t=trade["id"],
        ))  # fmt: skip


def _error(error: BinanceError) -> JSONResponse:
    return JSONResponse({"code": error.code, "msg": error.msg}, status_code=error.status)


def build_app(fake: FakeBinance) -> FastAPI:
    app = FastAPI()

    @app.middleware("http")
    async def record(request: Request, call_next: Any) -> Any:
        if time.monotonic() < fake.paused_until:  # sent during a Retry-After: banned
            response = fake.rate_limit(418)
            fake.requests.append((request.method, request.url.path, response.status_code))
            return response
        try:
            response = await call_next(request)
        except BinanceError as error:
            response = _error(error)
        fake.requests.append((request.method, request.url.path, response.status_code))
        return response

    @app.get("/api/v3/time")
    async def server_time() -> dict[str, int]:
        return {"serverTime": fake.now_ms()}

    @app.get("/api/v3/exchangeInfo")
    async def exchange_info(symbol: str) -> dict[str, Any]:
        if symbol not in fake.prices:
            raise BinanceError(400, -1121, "Invalid symbol.")
        orders = {"rateLimitType": "ORDERS", "interval": "SECOND",
                  "intervalNum": fake.orders_interval, "limit": fake.orders_limit}  # fmt: skip
        return {
            "timezone": "UTC",
            "serverTime": fake.now_ms(),
            "rateLimits": [orders] if fake.orders_limit else [],
            "symbols": [
                {
                    "symbol": symbol,
                    "status": "TRADING",
                    "baseAsset": symbol[:-4],
                    "quoteAsset": "USDT",
                    "filters": fake.filters_of(symbol),
                }
            ],
        }

    @app.get("/api/v3/avgPrice")
    async def avg_price(symbol: str) -> dict[str, Any]:
        if symbol not in fake.prices:
            raise BinanceError(400, -1121, "Invalid symbol.")
        return {"mins": 5, "price": str(fake.average_price(symbol)), "closeTime": fake.now_ms()}

    @app.post("/api/v3/order")
    async def new_order(request: Request) -> Any:
        params = fake.check_signed(request)
        trick = fake.misbehave.pop(0) if fake.misbehave else ""
        if trick == "502-before":
            return JSONResponse({}, status_code=502)
        if trick in ("429", "418"):
            return fake.rate_limit(int(trick))
        order = fake.place(params)
        if trick == "timeout-after":
            await asyncio.sleep(3)
        if trick == "503-after":
            return JSONResponse({"code": -1001, "msg": "Internal error"}, status_code=503)
        if trick == "garbled-after":  # placed and filled, answered with a price no trade had
            return order | {"fills": [fill | {"price": "-" + fill["price"]}
                                      for fill in order["fills"]]}  # fmt: skip
        if trick in UNKNOWN_OUTCOMES:  # a 4xx status, yet the order may have been placed
            code = -int(trick.removesuffix("-after"))
            return JSONResponse({"code": code, "msg": UNKNOWN_OUTCOMES[trick]}, status_code=400)
        return order

    @app.get("/api/v3/order")
    async def query_order(request: Request) -> Any:
        params = fake.check_signed(request)
        cid = params["origClientOrderId"]
        if cid in fake.query_errors:
            raise fake.query_errors[cid]
        trick = fake.query_tricks.pop(0) if fake.query_tricks else ""
        order = None if trick == "lost" else fake.orders.get(cid)
        if trick == "slow":  # decided now, answered later
            await asyncio.sleep(fake.slow_seconds)
        if order is None:
            raise BinanceError(400, -2013, "Order does not exist.")
        answer = {key: value for key, value in order.items() if key != "fills"}
        return answer | ({"executedQty": "NaN"} if trick == "garbled" else {})

    @app.delete("/api/v3/order")
    async def cancel_order(request: Request) -> Any:
        return fake.cancel(fake.check_signed(request))

    add_account_routes(app, fake)
    return app


def add_account_routes(app: FastAPI, fake: FakeBinance) -> None:
    """The trades, the account and the user-data stream."""

    @app.get("/api/v3/myTrades")
    async def my_trades(request: Request) -> Any:
        params = fake.check_signed(request)
        limit = int(params.get("limit", 500))  # Binance's default; at most 1000
        if not 1 <= limit <= 1000:
            raise BinanceError(400, -1100, "Illegal characters found in parameter 'limit'.")
        trades = sorted((t for t in fake.trades if t["orderId"] == int(params["orderId"])),
                        key=lambda t: t["id"])  # fmt: skip
        if "fromId" in params:  # the trades from that id on, oldest first
            return [t for t in trades if t["id"] >= int(params["fromId"])][:limit]
        return trades[-limit:]  # otherwise the most recent

    @app.get("/api/v3/account")
    async def account(request: Request) -> Any:
        fake.check_signed(request)
        return {
            "balances": [
                {"asset": asset, "free": str(amount), "locked": str(fake.locked.get(asset, 0))}
                for asset, amount in fake.balances.items()
            ]
        }

    @app.websocket(WS_API_PATH)
    async def ws_api(socket: WebSocket) -> None:
        """Requests answered in order; events sent as they are queued; dropped on `close`."""
        await socket.accept()
        connection = ApiConnection()
        fake.connections.append(connection)
        tasks = [asyncio.create_task(_send_queued(socket, connection)),
                 asyncio.create_task(_answer_requests(socket, connection, fake)),
                 asyncio.create_task(connection.close.wait())]  # fmt: skip
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            connection.open = False
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if connection.close.is_set():  # dropped by the server, not by the client
                await socket.close()


async def _answer_requests(socket: WebSocket, connection: ApiConnection, fake: FakeBinance) -> None:
    try:
        while True:
            raw = await socket.receive_text()
            try:
                request = json.loads(raw)
            except ValueError:
                request = None
            connection.outbox.put_nowait(fake.answer(connection, request))
    except WebSocketDisconnect:
        return


async def _send_queued(socket: WebSocket, connection: ApiConnection) -> None:
    while True:
        message = await connection.outbox.get()
        await socket.send_json(message)
        connection.sent.append(message)


@asynccontextmanager
async def serving(fake: FakeBinance) -> AsyncIterator[str]:
    """The fake on a free loopback port; yields its base URL (http://...)."""
    async with serve_app(build_app(fake)) as url:
        yield url
