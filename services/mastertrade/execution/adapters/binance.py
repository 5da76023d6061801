"""Binance spot REST, signed as Binance documents it (the SIGNED endpoints of /api/v3).

A SIGNED request carries `timestamp` (ms) and `recvWindow`; `signature` is the HMAC-SHA256 of
the whole query string under the API secret, hex encoded, appended last; the key goes in the
`X-MBX-APIKEY` header. Answers are sorted into kinds, because they call for different actions:
`BinanceRejectedError` (a 4xx with Binance's `{"code", "msg"}`: the order was not placed, e.g.
-2010 insufficient balance, -1013 filter failure), `BinanceUnknownError` (a timeout, a 5xx, a
broken connection, or -1006/-1007 "execution status unknown", -1000 unknown error, -1001 internal
error or -1008 server overloaded, whatever the HTTP status: the order MAY have been placed, so
query it by origClientOrderId, never assume), `BinanceRateLimitedError`
(429, or 418 once banned), and success.

Binance has two kinds of rate limit, and the client pauses for each what it blocks. The request
weight (-1003, per IP; 429, then 418 bans) pauses every request for the answer's Retry-After:
any request until then fails at once without being sent, since Binance bans a client that keeps
sending. The unfilled order count (-1015 "Too many new orders", per account; 429 without
Retry-After) refuses only new orders: only they (POST /api/v3/order...) are held, until the
interval its message names rolls over (Binance counts in intervals fixed from the epoch,
12:34:00-12:34:10, ...); queries and cancels go on, so a halt can still cancel the buys resting.
A 429 to a new order without Retry-After or -1003 is taken for the order count.

On -1021 (timestamp outside recvWindow) the client re-syncs its clock offset from /api/v3/time
and retries once, except an order: each of its sends is stamped by the caller (see live.py), so
it gets the -1021, the clock synced.

A SIGNED request of the WebSocket API (user_stream.py's subscription) carries the same key,
`recvWindow` and `timestamp` (with the same clock offset) among its `params`; its signature is
the HMAC-SHA256 of all params but `signature`, sorted by name, as `name=value` joined with `&`.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import httpx

from mastertrade.execution.domain.binance_status import BinanceAnswerError, read_amount, read_id

TIMESTAMP_OUTSIDE_WINDOW = -1021
ORDER_DOES_NOT_EXIST = -2013
CANCEL_REJECTED = -2011  # "Unknown order sent.": not open (filled, cancelled, or never placed)
ORDER_REFUSED = -2010  # insufficient balance, ..., and "Duplicate order sent."
INVALID_SYMBOL = -1121
# errors that do not say whether an order was placed: -1006/-1007 "execution status unknown",
# and -1000 unknown error, -1001 internal error, -1008 server overloaded, which do not say it
# was not (Binance's "Error codes" page): the order is queried, never taken for refused
STATUS_UNKNOWN = frozenset({-1000, -1001, -1006, -1007, -1008})
FILTER_FAILURE = -1013
TOO_MANY_REQUESTS = -1003  # request weight, per IP: every request paused
TOO_MANY_ORDERS = -1015  # unfilled order count, per account: new orders paused
RATE_LIMITED_STATUSES = frozenset({418, 429})
DEFAULT_RETRY_AFTER = 60.0
MAX_RETRY_AFTER = 3 * 86400.0  # Binance's longest ban
ORDER_PATH = "/api/v3/order"
# Binance's shortest ORDERS interval (exchangeInfo rateLimits: 10 SECOND), the one a burst of
# orders meets; taken when a -1015 does not name its own. Were it the daily count, new orders
# would be refused again every 10 s, at a weight of 1 each, and refused orders are not counted.
ORDER_COUNT_INTERVAL = 10.0
# Waited past the end of an ORDERS interval on our clock (Binance's plus the offset measured at
# the last -1021): it may run up to 1 s ahead of Binance's without a -1021 (Binance takes a
# timestamp up to 1 s ahead), and an order sent early would only be refused again
ROLLOVER_MARGIN = 1.0
ORDER_LIMIT = re.compile(r"per (\d+) (SECOND|MINUTE|HOUR|DAY)")  # "... 50 orders per 10 SECOND."
INTERVAL_SECONDS = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86400}
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


def places_order(method: str, path: str) -> bool:
    """Does the request place an order (counted by Binance's unfilled order count)?"""
    return method == "POST" and path.startswith(ORDER_PATH)


def order_interval_seconds(message: str) -> float:
    """The ORDERS interval a -1015's message names, or ORDER_COUNT_INTERVAL."""
    if (found := ORDER_LIMIT.search(message)) is None:
        return ORDER_COUNT_INTERVAL
    return float(int(found[1]) * INTERVAL_SECONDS[found[2]])


def until_rollover(interval: float, now_ms: int) -> float:
    """Seconds from `now_ms` (Binance's clock) until its ORDERS `interval` rolls over, with
    ROLLOVER_MARGIN: Binance's intervals are fixed from the epoch, as a minute starts at :00."""
    return interval - (now_ms / 1000) % interval + ROLLOVER_MARGIN


def _code_and_message(body: Any) -> tuple[int, str]:
    """Binance's `{"code", "msg"}` of an error answer ((0, text) when it is not that shape)."""
    if not isinstance(body, dict):
        return 0, str(body)
    try:
        return int(body.get("code", 0)), str(body.get("msg", ""))
    except (TypeError, ValueError):
        return 0, str(body)


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
        self.paused_until = 0.0  # monotonic; no request leaves before it (request weight)
        self.orders_paused_until = 0.0  # monotonic; no new order leaves before it (order count)
        self.http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout)

    async def close(self) -> None:
        await self.http.aclose()

    def pause_requests(self, seconds: float) -> None:
        """Send no request for `seconds` (a rate limit met elsewhere: the WebSocket API's
        answer to the stream's subscription counts against the same IP weight)."""
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)

    def pause_left(self, method: str = "POST", path: str = ORDER_PATH) -> float:
        """Seconds before such a request may leave (0: now); by default, a new order."""
        until = self.paused_until
        if places_order(method, path):
            until = max(until, self.orders_paused_until)
        return max(0.0, until - time.monotonic())

    async def _send(self, method: str, path: str, query: str, signed: bool) -> Any:
        if (wait := self.pause_left(method, path)) > 0:
            raise BinanceRateLimitedError(f"{method} {path}: not sent, rate limited", wait)
        headers = {"X-MBX-APIKEY": self.api_key} if signed else {}
        try:
            response = await self.http.request(method, f"{path}?{query}", headers=headers)
        except httpx.HTTPError as error:  # timeouts included: the outcome is unknown
            raise BinanceUnknownError(f"{method} {path}: {error!r}") from error
        if response.status_code in RATE_LIMITED_STATUSES:
            raise self._pause(method, path, response)
        if response.status_code >= 500:
            raise BinanceUnknownError(f"{method} {path}: HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError as error:
            raise BinanceUnknownError(f"{method} {path}: unreadable answer") from error
        if response.status_code >= 400:
            code, message = _code_and_message(body)
            if code in STATUS_UNKNOWN:
                raise BinanceUnknownError(f"{method} {path}: Binance {code}: {message}")
            if code in (TOO_MANY_REQUESTS, TOO_MANY_ORDERS):
                raise self._pause(method, path, response)
            raise BinanceRejectedError(response.status_code, code, message)
        return body

    def _pause(self, method: str, path: str, response: httpx.Response) -> BinanceRateLimitedError:
        """Pause what the rate limit blocks (new orders, or every request); the error to raise."""
        try:
            code, message = _code_and_message(response.json())
        except ValueError:
            code, message = 0, ""
        header = response.headers.get("Retry-After")
        status = response.status_code
        order_count = status != 418 and (code == TOO_MANY_ORDERS or (
            code != TOO_MANY_REQUESTS and header is None and places_order(method, path)
        ))  # fmt: skip
        if not order_count:
            seconds = retry_after_seconds(header)
            self.paused_until = max(self.paused_until, time.monotonic() + seconds)
            return BinanceRateLimitedError(f"{method} {path}: rate limited (HTTP {status}, "
                                           f"{code}), pausing {seconds:.0f}s", seconds)  # fmt: skip
        seconds = retry_after_seconds(header) if header is not None else min(
            until_rollover(order_interval_seconds(message), self.timestamp()), MAX_RETRY_AFTER
        )  # fmt: skip
        self.orders_paused_until = max(self.orders_paused_until, time.monotonic() + seconds)
        return BinanceRateLimitedError(
            f"{method} {path}: too many new orders (HTTP {status}, {code} {message}), new orders "
            f"paused {seconds:.1f}s; queries and cancels go on", seconds,
        )  # fmt: skip

    def timestamp(self) -> int:
        """Now on Binance's clock, in ms: ours plus the offset `sync_time` measured."""
        return int(time.time() * 1000) + self.offset_ms

    def _query(self, params: dict[str, Any], signed: bool) -> str:
        items = {key: _plain(value) for key, value in params.items() if value is not None}
        if not signed:
            return urlencode(items)
        items["recvWindow"] = str(self.recv_window)
        items.setdefault("timestamp", str(self.timestamp()))  # a new order's: its claim's
        query = urlencode(items)
        return f"{query}&signature={sign(self._secret, query)}"

    def ws_api_params(self, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The `params` of a SIGNED WebSocket API request: `params` with the key, recvWindow,
        timestamp and their signature (all but it, sorted by name, `name=value&...`)."""
        items = {key: value for key, value in (params or {}).items() if value is not None}
        items |= {"apiKey": self.api_key, "recvWindow": self.recv_window,
                  "timestamp": self.timestamp()}  # fmt: skip
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

    async def average_price(self, symbol: str) -> Decimal:
        """GET /api/v3/avgPrice (weight 2): the price over the last avgPriceMins Binance checks a
        market order's notional at."""
        answer = await self.request("GET", "/api/v3/avgPrice", {"symbol": symbol}, signed=False)
        try:
            return read_amount(answer, "price", positive=True)
        except BinanceAnswerError as error:
            raise BinanceUnknownError(f"GET /api/v3/avgPrice: no usable price ({error})") from None

    async def new_order(
        self,
        client_order_id: str,
        symbol: str,
        side: str,
        quantity: Decimal,
        price: Decimal | None = None,
        *,
        time_in_force: str = "GTC",
        timestamp: int | None = None,
    ) -> Any:
        """POST /api/v3/order: MARKET, or LIMIT when `price` is given (GTC, or IOC: what does
        not trade at once expires); the FULL answer.
        Sent once: a -1021 is raised (the clock synced) for the caller to send it again.
        `timestamp` (Binance's clock, ms; now if not given) is the request's: one taken before
        the order was claimed makes Binance refuse the request once recvWindow has passed since
        the claim, however long it then took to leave."""
        params: dict[str, Any] = {
            "symbol": symbol, "side": side.upper(),
            "type": "MARKET" if price is None else "LIMIT",
            "quantity": quantity, "newClientOrderId": client_order_id,
            "newOrderRespType": "FULL",
        }  # fmt: skip
        if price is not None:
            params |= {"price": price, "timeInForce": time_in_force}
        if timestamp is not None:
            params["timestamp"] = timestamp
        return await self.request("POST", ORDER_PATH, params, resend=False)

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
            params["fromId"] = max(int(read_id(trade, "id")) for trade in page) + 1
