"""A local server that speaks Binance's market-data protocol, for tests (127.0.0.1 only).

REST: `GET /api/v3/klines` with Binance's parameters and semantics (symbol, interval, startTime,
endTime, limit default 500 and at most 1000, rows in the 12-column layout, errors as
`{"code", "msg"}`), request weight counted per minute in `X-MBX-USED-WEIGHT-1M`, 429 with
Retry-After on demand or over the limit, and 418 for a request sent during a Retry-After pause
(as Binance bans such clients). Its klines are a pure function of the minute, so tests know
every expected row.

WebSocket: `/stream?streams=a/b` (combined: `{"stream", "data"}`) and `/ws/<stream>` (raw).
The server pings (aiohttp heartbeat: a client that does not answer pongs is dropped), tests push
frames to every open connection (valid or malformed), drop connections at will, and can cut
each connection after `max_connection_seconds`, a compressed stand-in for Binance's 24 h cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import WSMsgType, web

INTERVAL_MS = {"1m": 60_000, "5m": 300_000, "1h": 3_600_000}
KLINES_WEIGHT = 2


def kline_row(symbol: str, open_ms: int, interval_ms: int = 60_000) -> list[Any]:
    """The fake's kline of a minute: prices follow the minute, so tests can predict them."""
    minute = open_ms // 60_000
    base = Decimal(100 + len(symbol)) + Decimal(minute % 97) / 100
    volume = Decimal(minute % 13 + 1)
    return [
        open_ms, str(base), str(base + Decimal("0.50")), str(base - Decimal("0.25")),
        str(base + Decimal("0.10")), str(volume), open_ms + interval_ms - 1,
        str(volume * base), 7, str(volume / 2), str(volume * base / 2), "0",
    ]  # fmt: skip


@dataclass
class FakeBinance:
    """State and controls of the fake; `start()` serves it on a free loopback port."""

    history_start_ms: int
    history_end_ms: int  # klines exist with open time in [start, end)
    weight_limit: int = 6000
    retry_after: int = 1
    fail_next: int = 0  # the next n klines requests answer 429
    weight_offset: int = 0  # added to the reported used weight (another client's use)
    max_connection_seconds: float | None = None
    refuse_connections: bool = False  # new WebSocket connections answered 503 (a failing server)
    heartbeat: float = 1.0
    requests: list[dict[str, str]] = field(default_factory=list)
    request_times: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    ws_connections: int = 0
    cuts: int = 0
    _weights: dict[int, int] = field(default_factory=dict)
    _paused_until: float = 0.0
    _sockets: set[web.WebSocketResponse] = field(default_factory=set)
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> None:
        await self.start_on(0)

    async def start_on(self, port: int) -> None:
        """Serve on `port` (0: a free one)."""
        app = web.Application()
        app.router.add_get("/api/v3/klines", self._klines)
        app.router.add_get("/stream", self._stream)
        app.router.add_get("/ws/{stream}", self._stream)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        await self.drop_connections()
        if self._runner is not None:
            await self._runner.cleanup()

    # --- REST ------------------------------------------------------------------------------

    def _error(self, status: int, code: int, msg: str, **headers: str) -> web.Response:
        self.statuses.append(status)
        return web.json_response({"code": code, "msg": msg}, status=status, headers=headers)

    def _spend(self) -> int:
        window = int(time.time() // 60)
        self._weights[window] = self._weights.get(window, 0) + KLINES_WEIGHT
        return self._weights[window] + self.weight_offset

    def ban(self, seconds: float) -> None:
        """Answer 418 to every klines request for `seconds`."""
        self._paused_until = time.monotonic() + seconds

    async def _klines(self, request: web.Request) -> web.Response:
        now = time.monotonic()
        self.requests.append(dict(request.query))
        self.request_times.append(now)
        if now < self._paused_until:
            return self._error(418, -1003, "Way too many requests; IP banned")
        used = self._spend()
        headers = {"X-MBX-USED-WEIGHT-1M": str(used)}
        if self.fail_next > 0 or used > self.weight_limit:
            self.fail_next = max(0, self.fail_next - 1)
            self._paused_until = now + self.retry_after
            return self._error(429, -1003, "Too many requests", **headers,
                               **{"Retry-After": str(self.retry_after)})  # fmt: skip
        query = request.query
        interval = query.get("interval", "")
        if "symbol" not in query or interval not in INTERVAL_MS:
            return self._error(400, -1100, "Illegal characters found in parameter 'interval'")
        limit = int(query.get("limit", "500"))
        if not 1 <= limit <= 1000:
            return self._error(400, -1130, "Invalid data sent for a parameter: limit")
        self.statuses.append(200)
        rows = self._rows(query["symbol"], INTERVAL_MS[interval], query, limit)
        return web.json_response(rows, headers=headers)

    def _rows(self, symbol: str, step: int, query: Any, limit: int) -> list[list[Any]]:
        first = -(-self.history_start_ms // step) * step
        end = min(int(query.get("endTime", self.history_end_ms)), self.history_end_ms - 1)
        if "startTime" in query:
            start = max(first, -(-int(query["startTime"]) // step) * step)
            opens = range(start, end + 1, step)[:limit]
        else:
            last = end // step * step
            opens = range(max(first, last - (limit - 1) * step), last + 1, step)
        return [kline_row(symbol, open_ms, step) for open_ms in opens]

    # --- WebSocket -------------------------------------------------------------------------

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        if self.refuse_connections:
            return web.Response(status=503, text="Service Unavailable")
        socket = web.WebSocketResponse(heartbeat=self.heartbeat)
        await socket.prepare(request)
        self.ws_connections += 1
        self._sockets.add(socket)
        cut = None
        if self.max_connection_seconds is not None:
            cut = asyncio.get_running_loop().call_later(
                self.max_connection_seconds, lambda: asyncio.ensure_future(self._cut(socket))
            )
        try:
            async for message in socket:
                if message.type == WSMsgType.ERROR:
                    break
        finally:
            self._sockets.discard(socket)
            if cut is not None:
                cut.cancel()
        return socket

    async def _cut(self, socket: web.WebSocketResponse) -> None:
        if not socket.closed:
            self.cuts += 1
            await socket.close()

    @property
    def open_connections(self) -> int:
        return len(self._sockets)

    async def push(self, *frames: str | bytes, stream: str | None = None) -> None:
        """Send frames to every open connection (wrapped as combined-stream messages when a
        stream name is given and the frame is a JSON object)."""
        for socket in list(self._sockets):
            with contextlib.suppress(ConnectionResetError):  # closing as we send: it is gone
                for frame in frames:
                    if isinstance(frame, bytes):
                        await socket.send_bytes(frame)
                    else:
                        await socket.send_str(wrap(frame, stream))

    async def drop_connections(self) -> None:
        """Close every open connection, as a network failure or a server restart would."""
        for socket in list(self._sockets):
            await socket.close()


def wrap(frame: str, stream: str | None) -> str:
    """A payload as a combined-stream message; anything that is not a JSON object as is."""
    try:
        payload = json.loads(frame)
    except ValueError:
        return frame
    if stream is None or not isinstance(payload, dict):
        return frame
    return json.dumps({"stream": stream, "data": payload})


def trade_frame(symbol: str, trade_id: int, price: str, quantity: str, at_ms: int) -> str:
    """A `<symbol>@trade` payload as Binance sends it."""
    return json.dumps({"e": "trade", "E": at_ms + 1, "s": symbol, "t": trade_id, "p": price,
                       "q": quantity, "T": at_ms, "m": trade_id % 2 == 0, "M": True})  # fmt: skip


def book_frame(symbol: str, update_id: int, bid: str, ask: str) -> str:
    """A `<symbol>@bookTicker` payload as Binance sends it."""
    return json.dumps({"u": update_id, "s": symbol, "b": bid, "B": "1.5", "a": ask, "A": "2.25"})


def kline_frame(symbol: str, open_ms: int, closed: bool = True, **override: Any) -> str:
    """A `<symbol>@kline_1m` payload as Binance sends it, from the fake's kline of the minute."""
    row = kline_row(symbol, open_ms)
    k = {"t": row[0], "T": row[6], "s": symbol, "i": "1m", "f": 100, "L": 106, "o": row[1],
         "c": row[4], "h": row[2], "l": row[3], "v": row[5], "n": row[8], "x": closed,
         "q": row[7], "V": row[9], "Q": row[10], "B": "0"}  # fmt: skip
    k.update(override)
    return json.dumps({"e": "kline", "E": row[6] + 1, "s": symbol, "k": k})
