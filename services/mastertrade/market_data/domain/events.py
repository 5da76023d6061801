"""Market events as they leave the domain: klines, trades and book tickers, in exact decimals.

Every number is a finite, bounded `Decimal` of at most MAX_FRACTION_DIGITS decimal places
(checked by `exact`); times are UTC datetimes between 2000 and 2200 (`from_millis`, `in_utc`):
what PostgreSQL and asyncpg can store, so no message can make a whole batch's write fail.
`routing_key` and `to_message` give the bus shape: routing keys per kind and symbol
(`candle.1m.BTCUSDT`, `trade.BTCUSDT`, `ticker.BTCUSDT`) and JSON bodies with decimals as strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from mastertrade.core import market_messages
from mastertrade.core.amounts import AmountError, check_finite_amount
from mastertrade.core.messages import SYMBOL_PATTERN

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
"""The times a market event may carry (inclusive): anything else is garbage, and a time near
year 1 or 9999 cannot even be converted to UTC (asyncpg does so at write time, failing the
batch)."""
EARLIEST_MS, LATEST_MS = (int(moment.timestamp()) * 1000 for moment in (EARLIEST, LATEST))
MAX_FRACTION_DIGITS = 40
"""The most decimal places a market figure may carry: the smallest non-zero amount
(AMOUNT_FLOOR, 1e-30) with ten significant digits; Binance sends 8. Stricter than what any
amount may carry (core.amounts.MAX_PLACES, what PostgreSQL can store)."""
KLINE_INTERVALS = ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h",
                   "1d", "3d", "1w", "1M")  # fmt: skip
MAX_TRADE_COUNT = 2**63 - 1  # the candles table's BIGINT


class MalformedEventError(ValueError):
    """A market message that cannot be a valid event; the message says which field and why.
    `reason` labels the rejection in the metrics."""

    reason = "malformed"


class ImplausibleEventError(MalformedEventError):
    """A well-formed message that cannot be true as it arrived: a time ahead of its arrival, a
    candle closed before its end, a symbol other than its stream's. Stored, it would pass for
    the newest data and make the real data after it look out of order."""

    reason = "implausible"


def exact(value: object, name: str, *, positive: bool = False) -> Decimal:
    """`value` (a string or int, as exchanges send them) as a finite Decimal within bounds."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise MalformedEventError(f"{name}: expected a decimal string, got {type(value).__name__}")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise MalformedEventError(f"{name}: not a decimal number: {str(value)[:40]!r}") from None
    try:
        check_finite_amount(number)
    except AmountError as error:
        raise MalformedEventError(f"{name}: {error}") from None
    check_digits(number, name)
    if number < 0 or (positive and number == 0):
        expected = "> 0" if positive else ">= 0"
        raise MalformedEventError(f"{name}: must be {expected}, got {number}")
    return number


def check_digits(number: Decimal, name: str) -> Decimal:
    """`number` (finite and within core.amounts' bounds: checked first) when written with at
    most MAX_FRACTION_DIGITS decimal places; else MalformedEventError."""
    places = -int(number.as_tuple().exponent)
    if places > MAX_FRACTION_DIGITS:
        raise MalformedEventError(
            f"{name}: {str(number)[:40]}... has {places} decimal places; at most "
            f"{MAX_FRACTION_DIGITS} are accepted: send it rounded (Binance sends 8)"
        )
    return number


def from_millis(value: object, name: str) -> datetime:
    """Binance's epoch milliseconds as a UTC datetime (bounded to EARLIEST..LATEST)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedEventError(f"{name}: expected integer epoch milliseconds, got {value!r}")
    if not EARLIEST_MS <= value <= LATEST_MS:
        raise MalformedEventError(f"{name}: {value} ms is not a time between 2000 and 2200")
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def in_utc(moment: datetime, name: str) -> datetime:
    """`moment` (carrying its offset) in UTC, between EARLIEST and LATEST; else
    MalformedEventError. Converted here, where the message is refused alone: asyncpg converts
    at write time, and a time such as 9999-12-31T23:00-05:00 overflows there, failing its
    whole batch."""
    if moment.tzinfo is None:
        raise MalformedEventError(f"{name}: the time must carry its UTC offset")
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc <= LATEST:
        raise MalformedEventError(
            f"{name}: {moment.isoformat()} is not between 2000 and 2200 (UTC)"
        )
    return utc


def to_millis(moment: datetime) -> int:
    """A UTC datetime as epoch milliseconds (exact for whole milliseconds)."""
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


@dataclass(frozen=True, slots=True)
class Kline:
    """One candle with Binance's fields; `closed` is False while the interval is still open."""

    symbol: str
    interval: str
    open_time: datetime
    close_time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal
    trade_count: int
    taker_buy_volume: Decimal
    taker_buy_quote_volume: Decimal
    closed: bool = True

    def __post_init__(self) -> None:
        if not self.low <= min(self.open, self.close) <= max(self.open, self.close) <= self.high:
            raise MalformedEventError(
                f"{self.symbol} kline at {self.open_time}: open/close outside [low, high]"
            )
        if self.taker_buy_volume > self.volume or self.trade_count < 0:
            raise MalformedEventError(
                f"{self.symbol} kline at {self.open_time}: taker volume above volume "
                "or a negative trade count"
            )
        if self.close_time < self.open_time:
            raise MalformedEventError(f"{self.symbol} kline: close_time before open_time")


@dataclass(frozen=True, slots=True)
class Trade:
    """One public trade; `buyer_is_maker` means the taker sold."""

    symbol: str
    trade_id: int
    price: Decimal
    quantity: Decimal
    buyer_is_maker: bool
    traded_at: datetime

    @property
    def side(self) -> str:
        """The taker's side, as the `trades` table stores it."""
        return "sell" if self.buyer_is_maker else "buy"


@dataclass(frozen=True, slots=True)
class BookTicker:
    """Best bid and ask with their quantities; `update_id` grows with every book change."""

    symbol: str
    update_id: int
    bid_price: Decimal
    bid_quantity: Decimal
    ask_price: Decimal
    ask_quantity: Decimal
    at: datetime
    received_at: datetime | None = field(default=None, compare=False)
    """When the service got it, on its own clock (`MarketSink.submit` stamps it): what a quote's
    age is measured from. `at` is the market's time, which a simulated market runs ahead of."""

    def __post_init__(self) -> None:
        if self.bid_price > self.ask_price:
            raise MalformedEventError(
                f"{self.symbol} book ticker {self.update_id}: bid {self.bid_price} "
                f"above ask {self.ask_price}"
            )


MarketEvent = Kline | Trade | BookTicker


def kind_of(event: MarketEvent) -> str:
    """`candle`, `trade` or `ticker`: the first word of the routing key."""
    if isinstance(event, Kline):
        return "candle"
    return "trade" if isinstance(event, Trade) else "ticker"


def routing_key(event: MarketEvent) -> str:
    """`candle.<interval>.<symbol>`, `trade.<symbol>` or `ticker.<symbol>`."""
    if isinstance(event, Kline):
        return f"candle.{event.interval}.{event.symbol}"
    return f"{kind_of(event)}.{event.symbol}"


def _kline_message(kline: Kline) -> dict[str, Any]:
    return {
        "type": "candle",
        "symbol": kline.symbol,
        "interval": kline.interval,
        "open_time": kline.open_time.isoformat(),
        "close_time": kline.close_time.isoformat(),
        "open": str(kline.open),
        "high": str(kline.high),
        "low": str(kline.low),
        "close": str(kline.close),
        "volume": str(kline.volume),
        "quote_volume": str(kline.quote_volume),
        "trade_count": kline.trade_count,
        "taker_buy_volume": str(kline.taker_buy_volume),
        "taker_buy_quote_volume": str(kline.taker_buy_quote_volume),
        "closed": kline.closed,
    }


def _book_message(book: BookTicker, venue: str) -> dict[str, Any]:
    """The bus contract its consumers parse (`core.market_messages.BookTicker`), built by that
    model itself, so that what is published is what they accept."""
    message = market_messages.BookTicker(
        symbol=book.symbol, bid=book.bid_price, bid_qty=book.bid_quantity, ask=book.ask_price,
        ask_qty=book.ask_quantity, time=book.at, venue=venue, update_id=book.update_id,
    )  # fmt: skip
    return {"type": "ticker", **message.model_dump(mode="json")}


def to_message(event: MarketEvent, venue: str = market_messages.DEFAULT_VENUE) -> dict[str, Any]:
    """The JSON body published for an event (decimals as strings, times as ISO 8601 UTC); a book
    ticker names the `venue` it was quoted on (the service's source)."""
    if isinstance(event, Kline):
        return _kline_message(event)
    if isinstance(event, Trade):
        return {
            "type": "trade",
            "symbol": event.symbol,
            "trade_id": event.trade_id,
            "price": str(event.price),
            "quantity": str(event.quantity),
            "side": event.side,
            "traded_at": event.traded_at.isoformat(),
        }
    return _book_message(event, venue)


def _time(value: object, name: str) -> datetime:
    if not isinstance(value, str):
        raise MalformedEventError(f"{name}: expected an ISO 8601 time, got {value!r}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise MalformedEventError(f"{name}: not an ISO 8601 time: {value[:40]!r}") from None
    return in_utc(moment, name)


def _symbol(value: object) -> str:
    if not isinstance(value, str) or not SYMBOL_PATTERN.fullmatch(value):
        raise MalformedEventError(f"symbol: expected letters and digits such as BTCUSDT, got "
                                  f"{str(value)[:40]!r}")  # fmt: skip
    return value


def _interval(value: object) -> str:
    if value not in KLINE_INTERVALS:
        known = ", ".join(KLINE_INTERVALS)
        raise MalformedEventError(f"interval: expected one of Binance's kline intervals ({known})"
                                  f", got {str(value)[:40]!r}")  # fmt: skip
    return str(value)


def _trade_count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedEventError("trade_count: expected an integer")
    if not 0 <= value <= MAX_TRADE_COUNT:
        raise MalformedEventError(f"trade_count: {value} is not between 0 and {MAX_TRADE_COUNT}")
    return value


def kline_from_message(body: dict[str, Any]) -> Kline:
    """A candle message of the bus (what `to_message` publishes) back into a Kline; every field
    checked, so what reaches the database always fits it (a batch the database refused would
    be handed back to the broker again and again)."""
    try:
        return Kline(
            symbol=_symbol(body["symbol"]),
            interval=_interval(body["interval"]),
            open_time=_time(body["open_time"], "open_time"),
            close_time=_time(body["close_time"], "close_time"),
            open=exact(body["open"], "open", positive=True),
            high=exact(body["high"], "high", positive=True),
            low=exact(body["low"], "low", positive=True),
            close=exact(body["close"], "close", positive=True),
            volume=exact(body["volume"], "volume"),
            quote_volume=exact(body["quote_volume"], "quote_volume"),
            trade_count=_trade_count(body["trade_count"]),
            taker_buy_volume=exact(body["taker_buy_volume"], "taker_buy_volume"),
            taker_buy_quote_volume=exact(body["taker_buy_quote_volume"], "taker_buy_quote_volume"),
            closed=body.get("closed", True) is True,
        )
    except KeyError as missing:
        raise MalformedEventError(f"candle message without {missing}") from None
