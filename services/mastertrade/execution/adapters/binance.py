"""Binance spot REST, signed as Binance documents it (the SIGNED endpoints of /api/v3).

A SIGNED request carries `timestamp` (ms) and `recvWindow`; `signature` is the HMAC-SHA256 of
the whole query string under the API secret, hex encoded, appended last; the key goes in the
`X-MBX-APIKEY` header. Answers are sorted into kinds, because they call for different actions:
`BinanceRejectedError` (a 4xx with Binance's `{"code", "msg"}`: the order was not placed, e.g.
-2010 insufficient balance, -1013 filter failure), `BinanceUnknownError` (a timeout, a 5xx, a
broken connection, or -1006/-1007 "execution status unknown" whatever the HTTP status: the order
MAY have been placed, so query it by origClientOrderId, never assume), `BinanceRateLimitedError`
(429, or 418 once banned: -1003), and success. A rate limit pauses the client for the answer's
Retry-After: any request until then fails at once without being sent, since Binance bans (418)
a client that keeps sending. On -1021 (timestamp outside recvWindow) the client re-syncs its
clock offset from /api/v3/time and retries once, except an order: each of its sends is stamped
by the caller (see live.py), so it gets the -1021, the clock synced.

A SIGNED request of the WebSocket API (user_stream.py's subscription) carries the same key,
`recvWindow` and `timestamp` (with the same clock offset) among its `params`; its signature is
the HMAC-SHA256 of all params but `signature`, sorted by name, as `name=value` joined with `&`.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import httpx

TIMESTAMP_OUTSIDE_WINDOW = -1021
ORDER_DOES_NOT_EXIST = -2013
CANCEL_REJECTED = -2011  # "Unknown order sent.": not open (filled, cancelled, or never placed)
ORDER_REFUSED = -2010  # insufficient balance, ..., and "Duplicate order sent."
INVALID_SYMBOL = -1121
STATUS_UNKNOWN = frozenset({-1006, -1007})  # "execution status unknown"
TOO_MANY_REQUESTS = -1003
RATE_LIMITED_STATUSES = frozenset({418, 429})
DEFAULT_RETRY_AFTER = 60.0
MAX_RETRY_AFTER = 3 * 86400.0  # Binance's longest ban
MY_TRADES_PAGE = 1000  # trades per /api/v3/myTrades request: Binance's most (default 500)


class BinanceError(Exception):
    """Any failure of a Binance request."""


class BinanceRejectedError(BinanceError):
    """Binance answered with an error code: nothing was done."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(f"Binance error {code}: {message} (HTTP {status})")
        self.status, self.code, self.message = status, code, message


class BinanceUnknownError(BinanceError):
    """No definite answer (timeout, 5xx, connection lost): the request may have taken effect."""


class BinanceRateLimitedError(BinanceUnknownError):
    """Refused for the request rate (429/418), or not sent during the pause that follows. Taken
    for an unknown outcome by callers that do not tell it apart: querying is always safe."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def is_duplicate(error: BinanceRejectedError) -> bool:
    """-2010 "Duplicate order sent.": the client order id is open on Binance already."""
    return error.code == ORDER_REFUSED and "duplicate" in error.message.lower()


def retry_after_seconds(header: str | None) -> float:
    """Retry-After (seconds) as a finite wait within [1 s, MAX_RETRY_AFTER]."""
    try:
        seconds = float(header) if header is not None else DEFAULT_RETRY_AFTER
    except ValueError:
        seconds = DEFAULT_RETRY_AFTER
    if not math.isfinite(seconds):
        seconds = DEFAULT_RETRY_AFTER
    return min(max(seconds, 1.0), MAX_RETRY_AFTER)


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
        self.paused_until = 0.0  # monotonic; no request leaves before it (rate limited)
        self.http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout)

    async def close(self) -> None:
        await self.http.aclose()

    async def _send(self, method: str, path: str, query: str, signed: bool) -> Any:
        if (wait := self.paused_until - time.monotonic()) > 0:
            raise BinanceRateLimitedError(f"{method} {path}: not sent, rate limited", wait)
        headers = {"X-MBX-APIKEY": self.api_key} if signed else {}
        try:
            response = await self.http.request(method, f"{path}?{query}", headers=headers)
        except httpx.HTTPError as error:  # timeouts included: the outcome is unknown
            raise BinanceUnknownError(f"{method} {path}: {error!r}") from error
        if response.status_code in RATE_LIMITED_STATUSES:
            raise self._pause(f"{method} {path}", response)
        if response.status_code >= 500:
            raise BinanceUnknownError(f"{method} {path}: HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError as error:
            raise BinanceUnknownError(f"{method} {path}: unreadable answer") from error
        if response.status_code >= 400:
            code = int(body.get("code", 0)) if isinstance(body, dict) else 0
            message = str(body.get("msg", "")) if isinstance(body, dict) else str(body)
            if code in STATUS_UNKNOWN:
                raise BinanceUnknownError(f"{method} {path}: Binance {code}: {message}")
            if code == TOO_MANY_REQUESTS:
                raise self._pause(f"{method} {path}", response)
            raise BinanceRejectedError(response.status_code, code, message)
        return body

    def _pause(self, what: str, response: httpx.Response) -> BinanceRateLimitedError:
        """Stop every request for the answer's Retry-After; the error to raise."""
        seconds = retry_after_seconds(response.headers.get("Retry-After"))
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)
        return BinanceRateLimitedError(
            f"{what}: rate limited (HTTP {response.status_code}), pausing {seconds:.0f}s", seconds
        )

    def _timestamp(self) -> int:
        """Now on Binance's clock, in ms: ours plus the offset `sync_time` measured."""
        return int(time.time() * 1000) + self.offset_ms

    def _query(self, params: dict[str, Any], signed: bool) -> str:
        items = {key: _plain(value) for key, value in params.items() if value is not None}
        if not signed:
            return urlencode(items)
        items["recvWindow"] = str(self.recv_window)
        items["timestamp"] = str(self._timestamp())
        query = urlencode(items)
        return f"{query}&signature={sign(self._secret, query)}"

    def ws_api_params(self, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The `params` of a SIGNED WebSocket API request: `params` with the key, recvWindow,
        timestamp and their signature (all but it, sorted by name, `name=value&...`)."""
        items = {key: value for key, value in (params or {}).items() if value is not None}
        items |= {"apiKey": self.api_key, "recvWindow": self.recv_window,
                  "timestamp": self._timestamp()}  # fmt: skip
        payload = "&".join(f"{key}={_plain(value)}" for key, value in sorted(items.items()))
        return items | {"signature": sign(self._secret, payload)}

    async def request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        signed: bool = True,
        resend: bool = True,
    ) -> Any:
        """One call; a -1021 re-syncs the clock and is sent again once (when `resend`)."""
        try:
            return await self._send(method, path, self._query(params or {}, signed), signed)
        except BinanceRejectedError as error:
            if error.code != TIMESTAMP_OUTSIDE_WINDOW:
                raise
            await self.sync_time()
            if not resend:
                raise
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
        """POST /api/v3/order: MARKET, or LIMIT GTC when `price` is given; the FULL answer.
        Sent once: a -1021 is raised (the clock synced) for the caller to send it again."""
        params: dict[str, Any] = {
            "symbol": symbol, "side": side.upper(),
            "type": "MARKET" if price is None else "LIMIT",
            "quantity": quantity, "newClientOrderId": client_order_id,
            "newOrderRespType": "FULL",
        }  # fmt: skip
        if price is not None:
            params |= {"price": price, "timeInForce": "GTC"}
        return await self.request("POST", "/api/v3/order", params, resend=False)

    async def query_order(self, symbol: str, client_order_id: str) -> Any:
        """GET /api/v3/order by origClientOrderId (raises -2013 when it does not exist)."""
        params = {"symbol": symbol, "origClientOrderId": client_order_id}
        return await self.request("GET", "/api/v3/order", params)

    async def cancel_order(self, symbol: str, client_order_id: str) -> Any:
        """DELETE /api/v3/order by origClientOrderId: the order as cancelled (raises -2011 when
        it is not open). Safe to send again: a second cancel of the same order is refused."""
        params = {"symbol": symbol, "origClientOrderId": client_order_id}
        return await self.request("DELETE", "/api/v3/order", params)

    async def my_trades(self, symbol: str, order_id: int) -> list[Any]:
        """GET /api/v3/myTrades of one order: all its fills, with trade ids and commissions,
        a page of MY_TRADES_PAGE at a time from the first (`orderId` + `fromId`, a combination
        Binance supports), however many trades a large order took."""
        found: list[Any] = []
        params: dict[str, Any] = {"symbol": symbol, "orderId": order_id, "fromId": 0,
                                  "limit": MY_TRADES_PAGE}  # fmt: skip
        while True:
            page = await self.request("GET", "/api/v3/myTrades", params)
            found.extend(page)
            if len(page) < MY_TRADES_PAGE:
                return found
            params["fromId"] = max(int(trade["id"]) for trade in page) + 1
