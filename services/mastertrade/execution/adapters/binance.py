"""Binance spot REST, signed as Binance documents it (the SIGNED endpoints of /api/v3).

A SIGNED request carries `timestamp` (ms) and `recvWindow`; `signature` is the HMAC-SHA256 of
the whole query string under the API secret, hex encoded, appended last; the key goes in the
`X-MBX-APIKEY` header. Answers are sorted into three kinds, because they call for different
actions: `BinanceRejectedError` (a 4xx with Binance's `{"code", "msg"}`: the order was not
placed, e.g. -2010 insufficient balance, -1013 filter failure), `BinanceUnknownError` (a
timeout, a 5xx, a broken connection: the order MAY have been placed, so query it by
origClientOrderId, never assume), and success. On -1021 (timestamp outside recvWindow) the
client re-syncs its clock offset from /api/v3/time and retries once.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import httpx

TIMESTAMP_OUTSIDE_WINDOW = -1021
ORDER_DOES_NOT_EXIST = -2013


class BinanceRejectedError(Exception):
    """Binance answered with an error code: nothing was done."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(f"Binance error {code}: {message} (HTTP {status})")
        self.status, self.code, self.message = status, code, message


class BinanceUnknownError(Exception):
    """No definite answer (timeout, 5xx, connection lost): the request may have taken effect."""


def sign(secret: str, query: str) -> str:
    """Binance's signature of a query string: HMAC-SHA256 hex."""
    return hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()


def _plain(value: Any) -> str:
    return format(value, "f") if isinstance(value, Decimal) else str(value)


class BinanceClient:
    """The few endpoints an order executor needs."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        api_secret: str,
        recv_window: int = 5000,
        timeout: float = 10.0,
    ) -> None:
        self.api_key, self._secret, self.recv_window = api_key, api_secret, recv_window
        self.offset_ms = 0
        self.http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout)

    async def close(self) -> None:
        await self.http.aclose()

    async def _send(self, method: str, path: str, query: str, signed: bool) -> Any:
        headers = {"X-MBX-APIKEY": self.api_key} if signed or "userDataStream" in path else {}
        try:
            response = await self.http.request(method, f"{path}?{query}", headers=headers)
        except httpx.HTTPError as error:  # timeouts included: the outcome is unknown
            raise BinanceUnknownError(f"{method} {path}: {error!r}") from error
        if response.status_code >= 500:
            raise BinanceUnknownError(f"{method} {path}: HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError as error:
            raise BinanceUnknownError(f"{method} {path}: unreadable answer") from error
        if response.status_code >= 400:
            code = int(body.get("code", 0)) if isinstance(body, dict) else 0
            message = str(body.get("msg", "")) if isinstance(body, dict) else str(body)
            raise BinanceRejectedError(response.status_code, code, message)
        return body

    def _query(self, params: dict[str, Any], signed: bool) -> str:
        items = {key: _plain(value) for key, value in params.items() if value is not None}
        if not signed:
            return urlencode(items)
        items["recvWindow"] = str(self.recv_window)
        items["timestamp"] = str(int(time.time() * 1000) + self.offset_ms)
        query = urlencode(items)
        return f"{query}&signature={sign(self._secret, query)}"

    async def request(
        self, method: str, path: str, params: dict[str, Any] | None = None, signed: bool = True
    ) -> Any:
        """One call; a -1021 re-syncs the clock and is retried once."""
        try:
            return await self._send(method, path, self._query(params or {}, signed), signed)
        except BinanceRejectedError as error:
            if error.code != TIMESTAMP_OUTSIDE_WINDOW:
                raise
        await self.sync_time()
        return await self._send(method, path, self._query(params or {}, signed), signed)

    async def sync_time(self) -> None:
        """Set the offset between Binance's clock and ours."""
        before = int(time.time() * 1000)
        server = await self._send("GET", "/api/v3/time", "", signed=False)
        after = int(time.time() * 1000)
        self.offset_ms = int(server["serverTime"]) - (before + after) // 2

    async def exchange_info(self, symbol: str) -> Any:
        return await self.request("GET", "/api/v3/exchangeInfo", {"symbol": symbol}, signed=False)

    async def new_order(
        self,
        client_order_id: str,
        symbol: str,
        side: str,
        quantity: Decimal,
        price: Decimal | None = None,
    ) -> Any:
        """POST /api/v3/order: MARKET, or LIMIT GTC when `price` is given; the FULL answer."""
        params: dict[str, Any] = {
            "symbol": symbol, "side": side.upper(), "type": "LIMIT" if price else "MARKET",
            "quantity": quantity, "newClientOrderId": client_order_id,
            "newOrderRespType": "FULL",
        }  # fmt: skip
        if price is not None:
            params |= {"price": price, "timeInForce": "GTC"}
        return await self.request("POST", "/api/v3/order", params)

    async def query_order(self, symbol: str, client_order_id: str) -> Any:
        """GET /api/v3/order by origClientOrderId (raises -2013 when it does not exist)."""
        params = {"symbol": symbol, "origClientOrderId": client_order_id}
        return await self.request("GET", "/api/v3/order", params)

    async def my_trades(self, symbol: str, order_id: int) -> Any:
        """GET /api/v3/myTrades of one order (its fills, with trade ids and commissions)."""
        return await self.request(
            "GET", "/api/v3/myTrades", {"symbol": symbol, "orderId": order_id}
        )

    async def new_listen_key(self) -> str:
        body = await self.request("POST", "/api/v3/userDataStream", signed=False)
        return str(body["listenKey"])

    async def keep_alive(self, listen_key: str) -> None:
        await self.request("PUT", "/api/v3/userDataStream", {"listenKey": listen_key}, signed=False)
