"""A local server speaking Binance spot's REST and user-data stream, for the live tests.

It checks what the real one checks: the X-MBX-APIKEY header (-2015), the HMAC-SHA256 signature
of the query string (-1022), the timestamp against recvWindow (-1021), symbol filters (-1013;
MARKET_LOT_SIZE for market orders), the balance (-2010), duplicate open client order ids (-2010
"Duplicate order sent."), unknown orders (-2013), cancels of orders not open (-2011), unknown
symbols (-1121), unknown listen keys (-1125). It answers in Binance's shapes (FULL order
answers with fills, executionReport events, `listenKeyExpired`), takes a buyer's commission in
the base asset when asked (as Binance does unless BNB pays), and can misbehave on purpose: time
out or fail with a 5xx before or after taking an order, answer -1007 (execution status unknown)
after taking it, rate-limit an order with 429 or 418 and a Retry-After (a request sent during
that pause is answered 418, as Binance bans such clients), answer a query slowly or as if the
order did not exist, forget a listen key, fill an order just before its cancel lands. It
cancels open orders (DELETE /api/v3/order) with Binance's answer and a CANCELED report.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
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
FILTERS = [
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


@dataclass
class FakeBinance:
    """The exchange's state and the misbehaviour asked for."""

    prices: dict[str, Decimal] = field(default_factory=dict)
    balances: dict[str, Decimal] = field(default_factory=lambda: {"USDT": Decimal(10000)})
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    trades: list[dict[str, Any]] = field(default_factory=list)
    clock_skew_ms: int = 0
    misbehave: list[str] = field(default_factory=list)  # "timeout-after", "502-before", ...
    requests: list[tuple[str, str, int]] = field(default_factory=list)  # method, path, status
    streams: dict[str, list[WebSocket]] = field(default_factory=dict)
    push_reports: bool = True
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))
    placed: Counter[str] = field(default_factory=Counter)  # orders taken, by newClientOrderId
    query_tricks: list[str] = field(default_factory=list)  # "slow", "lost", one per GET /order
    slow_seconds: float = 0.5  # how late a "slow" query is answered
    query_errors: dict[str, BinanceError] = field(default_factory=dict)  # by origClientOrderId
    commission_in_base: bool = False  # a buyer's commission in the base asset (no BNB)
    bnb_pays_at: Decimal | None = None  # BNB pays every commission (25 % off), BNB at this price
    retry_after: int = 1  # seconds, of a 429/418 asked for with misbehave
    paused_until: float = 0.0  # monotonic; a request before it is answered 418
    listen_keys: list[str] = field(default_factory=list)  # alive; a keep-alive of another: -1125
    fill_before_cancel: bool = False  # the order fills at its price just before a cancel lands

    def expire(self, key: str) -> None:
        """Binance's `listenKeyExpired` event on the key's connections; the key is gone."""
        event = {"e": "listenKeyExpired", "E": self.now_ms(), "listenKey": key}
        for socket in self.streams.get(key, []):
            asyncio.get_running_loop().create_task(socket.send_json(event))
        self.listen_keys.remove(key)

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

    def check_signed(self, request: Request) -> dict[str, str]:
        if request.headers.get("X-MBX-APIKEY") != KEY:
            raise BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        query = request.url.query
        payload, _, signature = query.rpartition("&signature=")
        expected = hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature, expected):
            raise BinanceError(400, -1022, "Signature for this request is not valid.")
        params = dict(parse_qsl(payload))
        stamp, window = int(params["timestamp"]), int(params.get("recvWindow", "5000"))
        if not (stamp < self.now_ms() + 1000 and self.now_ms() - stamp <= window):
            raise BinanceError(
                400, -1021, "Timestamp for this request is outside of the recvWindow."
            )
        return params

    def check_filters(self, qty: Decimal, price: Decimal, kind: str) -> None:
        step, tick = Decimal("0.00001"), Decimal("0.01")
        if qty < Decimal("0.00001") or qty % step != 0:
            raise BinanceError(400, -1013, "Filter failure: LOT_SIZE")
        if kind == "MARKET" and qty > 50:
            raise BinanceError(400, -1013, "Filter failure: MARKET_LOT_SIZE")
        if price % tick != 0:
            raise BinanceError(400, -1013, "Filter failure: PRICE_FILTER")
        if qty * price < 5:
            raise BinanceError(400, -1013, "Filter failure: NOTIONAL")

    def place(self, params: dict[str, str]) -> dict[str, Any]:
        symbol, side, kind = params["symbol"], params["side"], params["type"]
        cid, qty = params["newClientOrderId"], Decimal(params["quantity"])
        old = self.orders.get(cid)
        if old is not None and old["status"] == "NEW":
            raise BinanceError(400, -2010, "Duplicate order sent.")
        market = self.prices[symbol]
        price = Decimal(params["price"]) if kind == "LIMIT" else market
        self.check_filters(qty, price, kind)
        if side == "BUY" and qty * price * Decimal("1.001") > self.balances.get("USDT", Decimal(0)):
            raise BinanceError(400, -2010, "Account has insufficient balance for requested action.")
        self.placed[cid] += 1
        order = {
            "symbol": symbol,
            "orderId": next(self.ids),
            "clientOrderId": cid,
            "price": str(price if kind == "LIMIT" else 0),
            "origQty": str(qty),
            "executedQty": "0",
            "cummulativeQuoteQty": "0",
            "status": "NEW",
            "type": kind,
            "side": side,
            "transactTime": self.now_ms(),
            "fills": [],
        }
        self.orders[cid] = order
        crosses = (
            kind == "MARKET"
            or (side == "BUY" and price >= market)
            or (side == "SELL" and price <= market)
        )
        if crosses:
            self.fill(order, qty, market if kind == "MARKET" else price)
        return order

    def fill(self, order: dict[str, Any], qty: Decimal, price: Decimal) -> None:
        """A trade of `qty` of the order at `price` (all of it, or a part), reported."""
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
        quote_fee = fee if fee_asset == "USDT" else Decimal(0)
        cost = qty * price + quote_fee if order["side"] == "BUY" else -(qty * price - quote_fee)
        self.balances["USDT"] = self.balances.get("USDT", Decimal(0)) - cost
        executed = Decimal(order["executedQty"]) + qty  # a part of it, or the rest
        order |= {
            "status": "FILLED" if executed == Decimal(order["origQty"]) else "PARTIALLY_FILLED",
            "executedQty": str(executed),
            "cummulativeQuoteQty": str(Decimal(order["cummulativeQuoteQty"]) + qty * price),
        }
        order["fills"] = [
            {
                "price": str(price),
                "qty": str(qty),
                "commission": str(fee),
                "commissionAsset": fee_asset,
                "tradeId": trade["id"],
            }
        ]
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

    def push(self, event: dict[str, Any]) -> None:
        if not self.push_reports:
            return
        for sockets in self.streams.values():
            for socket in sockets:
                asyncio.get_running_loop().create_task(socket.send_json(event))

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
        return {
            "timezone": "UTC",
            "serverTime": fake.now_ms(),
            "symbols": [
                {
                    "symbol": symbol,
                    "status": "TRADING",
                    "baseAsset": symbol[:-4],
                    "quoteAsset": "USDT",
                    "filters": FILTERS,
                }
            ],
        }

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
        if trick == "1007-after":  # a 4xx status, yet the outcome is unknown
            return JSONResponse({"code": -1007, "msg": "Timeout waiting for response from "
                                 "backend server. Send status unknown; execution status "
                                 "unknown."}, status_code=400)  # fmt: skip
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
        return {key: value for key, value in order.items() if key != "fills"}

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
                {"asset": asset, "free": str(amount), "locked": "0"}
                for asset, amount in fake.balances.items()
            ]
        }

    @app.post("/api/v3/userDataStream")
    async def listen_key(request: Request) -> Any:
        if request.headers.get("X-MBX-APIKEY") != KEY:
            raise BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        key = f"lk{next(fake.ids)}"
        fake.streams[key] = []
        fake.listen_keys.append(key)
        return {"listenKey": key}

    @app.put("/api/v3/userDataStream")
    async def keep_alive(listenKey: str) -> dict[str, Any]:  # noqa: N803 - Binance's name
        if listenKey not in fake.listen_keys:
            raise BinanceError(400, -1125, "This listenKey does not exist.")
        return {}

    @app.websocket("/ws/{key}")
    async def stream(socket: WebSocket, key: str) -> None:
        await socket.accept()
        fake.streams.setdefault(key, []).append(socket)
        try:
            while True:
                await socket.receive_text()
        except WebSocketDisconnect:
            fake.streams[key].remove(socket)


@asynccontextmanager
async def serving(fake: FakeBinance) -> AsyncIterator[str]:
    """The fake on a free loopback port; yields its base URL (http://...)."""
    async with serve_app(build_app(fake)) as url:
        yield url
