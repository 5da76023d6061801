"""Binance's market data formats, parsed into exact events (pure: no I/O).

- REST `GET /api/v3/klines` rows and the public bulk files' CSV rows share one column layout:
  open time, open, high, low, close, volume, close time, quote volume, number of trades,
  taker buy base volume, taker buy quote volume, ignore. Bulk spot files from 2025 on carry
  microseconds instead of milliseconds; both are read.
- WebSocket payloads: kline `{"e":"kline","E","s","k":{t,T,s,i,o,c,h,l,v,n,x,q,V,Q}}`, trade
  `{e,E,s,t,p,q,T,m}`, bookTicker `{u,s,b,B,a,A}`, and combined streams `{"stream","data"}`.
Anything else raises `MalformedEventError` naming what is wrong. A well-formed event that
cannot be true as it arrived raises `ImplausibleEventError` (`check_plausible`): a kline or trade
time more than CLOCK_TOLERANCE ahead of its arrival, a kline closed before its close time or
whose close time is not its open time plus its interval less 1 ms, a payload whose symbol is not
its combined stream's. Each would otherwise be stored as the newest of its symbol, and every
real event after it dropped as out of order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from mastertrade.core.messages import SYMBOL_PATTERN
from mastertrade.market_data.domain.events import (
    BookTicker,
    ImplausibleEventError,
    Kline,
    MalformedEventError,
    MarketEvent,
    Trade,
    exact,
    from_millis,
    to_millis,
)

INTERVAL_MS: Mapping[str, int] = {
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "1d": 86_400_000,
}
KLINE_COLUMNS = 12
MICROSECONDS_FROM = 10**14  # an epoch time above this is in microseconds (ms would be year 5138)
MAX_FRAME_CHARS = 1_000_000
CLOCK_TOLERANCE = timedelta(seconds=5)
"""How far ahead of its arrival an event's time may be: Binance's clock and ours disagree by
a few hundred milliseconds at most; more is a broken or forged message."""


def _symbol(value: object) -> str:
    if not isinstance(value, str) or not SYMBOL_PATTERN.fullmatch(value):
        raise MalformedEventError(f"symbol: not a trading pair: {str(value)[:30]!r}")
    return value


def _interval(value: object) -> str:
    if value not in INTERVAL_MS:
        raise MalformedEventError(
            f"interval: {str(value)[:10]!r} is not one of {list(INTERVAL_MS)}"
        )
    return str(value)


BIGINT_MAX = 2**63 - 1
"""A book ticker's update id is stored as BIGINT, and a larger one would fail its whole batch at
the insert; every integer Binance sends is held to the same bound."""


def _integer(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= BIGINT_MAX:
        raise MalformedEventError(
            f"{name}: expected an integer from 0 to {BIGINT_MAX}, got {str(value)[:40]}"
        )
    return value


def _epoch_ms(value: object, name: str) -> int:
    number = int(value) if isinstance(value, str) and value.isdigit() else value
    if isinstance(number, int) and not isinstance(number, bool) and number >= MICROSECONDS_FROM:
        number //= 1000
    return _integer(number, name)


def kline_from_row(row: Sequence[object], symbol: str, interval: str) -> Kline:
    """A REST or bulk-file kline row (12 columns) as a closed Kline."""
    if len(row) < KLINE_COLUMNS - 1:
        raise MalformedEventError(f"kline row: expected {KLINE_COLUMNS} columns, got {len(row)}")
    open_ms = _epoch_ms(row[0], "open time")
    count = int(row[8]) if isinstance(row[8], str) and row[8].isdigit() else row[8]
    return Kline(
        symbol=_symbol(symbol),
        interval=_interval(interval),
        open_time=from_millis(open_ms, "open time"),
        close_time=from_millis(_epoch_ms(row[6], "close time"), "close time"),
        open=exact(row[1], "open", positive=True),
        high=exact(row[2], "high", positive=True),
        low=exact(row[3], "low", positive=True),
        close=exact(row[4], "close", positive=True),
        volume=exact(row[5], "volume"),
        quote_volume=exact(row[7], "quote volume"),
        trade_count=_integer(count, "number of trades"),
        taker_buy_volume=exact(row[9], "taker buy base volume"),
        taker_buy_quote_volume=exact(row[10], "taker buy quote volume"),
    )


def _field(payload: Mapping[str, Any], key: str) -> Any:
    if key not in payload:
        raise MalformedEventError(f"missing field {key!r}")
    return payload[key]


def kline_from_stream(payload: Mapping[str, Any]) -> Kline:
    """A `<symbol>@kline_<interval>` payload."""
    k = _field(payload, "k")
    if not isinstance(k, Mapping):
        raise MalformedEventError("field 'k' is not an object")
    return Kline(
        symbol=_symbol(_field(k, "s")),
        interval=_interval(_field(k, "i")),
        open_time=from_millis(_field(k, "t"), "t"),
        close_time=from_millis(_field(k, "T"), "T"),
        open=exact(_field(k, "o"), "o", positive=True),
        high=exact(_field(k, "h"), "h", positive=True),
        low=exact(_field(k, "l"), "l", positive=True),
        close=exact(_field(k, "c"), "c", positive=True),
        volume=exact(_field(k, "v"), "v"),
        quote_volume=exact(_field(k, "q"), "q"),
        trade_count=_integer(_field(k, "n"), "n"),
        taker_buy_volume=exact(_field(k, "V"), "V"),
        taker_buy_quote_volume=exact(_field(k, "Q"), "Q"),
        closed=_field(k, "x") is True,
    )


def trade_from_stream(payload: Mapping[str, Any]) -> Trade:
    """A `<symbol>@trade` payload."""
    maker = _field(payload, "m")
    if not isinstance(maker, bool):
        raise MalformedEventError("m: expected true or false")
    return Trade(
        symbol=_symbol(_field(payload, "s")),
        trade_id=_integer(_field(payload, "t"), "t"),
        price=exact(_field(payload, "p"), "p", positive=True),
        quantity=exact(_field(payload, "q"), "q", positive=True),
        buyer_is_maker=maker,
        traded_at=from_millis(_field(payload, "T"), "T"),
    )


def book_ticker_from_stream(payload: Mapping[str, Any], received: datetime) -> BookTicker:
    """A `<symbol>@bookTicker` payload (it carries no time: `received` stamps it)."""
    return BookTicker(
        symbol=_symbol(_field(payload, "s")),
        update_id=_integer(_field(payload, "u"), "u"),
        bid_price=exact(_field(payload, "b"), "b", positive=True),
        bid_quantity=exact(_field(payload, "B"), "B", positive=True),
        ask_price=exact(_field(payload, "a"), "a", positive=True),
        ask_quantity=exact(_field(payload, "A"), "A", positive=True),
        at=received,
    )


def event_from_payload(payload: object, received: datetime) -> MarketEvent:
    """A raw-stream or combined-stream payload as an event; anything unreadable in it (a list
    where a string belongs, a number beyond Decimal's range) raises MalformedEventError."""
    try:
        return _event_from_payload(payload, received)
    except MalformedEventError:
        raise
    except (TypeError, KeyError, AttributeError, ArithmeticError, ValueError) as error:
        raise MalformedEventError(f"unreadable event: {error!r}"[:200]) from None


def _event_from_payload(payload: object, received: datetime) -> MarketEvent:
    stream = None
    if isinstance(payload, Mapping) and "stream" in payload and "data" in payload:
        stream, payload = payload["stream"], payload["data"]
    if not isinstance(payload, Mapping):
        raise MalformedEventError("frame is not a JSON object")
    event = _parse(payload, received)
    check_plausible(event, received, stream if isinstance(stream, str) else None)
    return event


def _parse(payload: Mapping[str, Any], received: datetime) -> MarketEvent:
    kind = payload.get("e")
    if kind == "kline":
        return kline_from_stream(payload)
    if kind == "trade":
        return trade_from_stream(payload)
    if kind is None and "u" in payload and "b" in payload:
        return book_ticker_from_stream(payload, received)
    raise MalformedEventError(f"unknown event type {str(kind)[:20]!r}")


def check_plausible(event: MarketEvent, received: datetime, stream: str | None = None) -> None:
    """Raise ImplausibleEventError when `event`, received at `received` on `stream` (a combined
    stream's name, None on a raw stream), cannot be true (see the module's docstring)."""
    if stream is not None and stream.partition("@")[0] != event.symbol.lower():
        raise ImplausibleEventError(f"stream {stream[:40]!r} carried a {event.symbol} event")
    latest = received + CLOCK_TOLERANCE
    if isinstance(event, Trade) and event.traded_at > latest:
        raise ImplausibleEventError(
            f"{event.symbol} trade {event.trade_id} at {event.traded_at}, received {received}"
        )
    if isinstance(event, Kline):
        _check_kline_times(event, received, latest)


def _check_kline_times(kline: Kline, received: datetime, latest: datetime) -> None:
    name = f"{kline.symbol} {kline.interval} kline opened {kline.open_time}"
    end = to_millis(kline.open_time) + INTERVAL_MS[kline.interval] - 1
    if to_millis(kline.close_time) != end:
        raise ImplausibleEventError(f"{name}: close time {kline.close_time} is not its end")
    if kline.open_time > latest:
        raise ImplausibleEventError(f"{name}: opens after it was received ({received})")
    if kline.closed and kline.close_time > latest:
        raise ImplausibleEventError(
            f"{name}: marked closed, received {received} before its close {kline.close_time}"
        )


def event_from_frame(text: str | bytes, received: datetime) -> MarketEvent:
    """A WebSocket text frame as an event; malformed JSON raises MalformedEventError."""
    if len(text) > MAX_FRAME_CHARS:
        raise MalformedEventError(f"frame of {len(text)} characters is too long")
    try:
        payload = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise MalformedEventError(f"frame is not JSON: {error!r}"[:200]) from None
    return event_from_payload(payload, received)


def stream_names(symbols: Sequence[str], kinds: Sequence[str]) -> list[str]:
    """Combined-stream names: `btcusdt@trade`, `btcusdt@kline_1m`, `btcusdt@bookTicker`."""
    return [f"{symbol.lower()}@{kind}" for symbol in symbols for kind in kinds]


def interval_delta(interval: str) -> timedelta:
    """The length of an interval."""
    return timedelta(milliseconds=INTERVAL_MS[_interval(interval)])
