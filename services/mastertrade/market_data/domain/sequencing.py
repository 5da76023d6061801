"""Which live events to keep: duplicates and out-of-order events are dropped and named.

Streams repeat themselves (a reconnect overlaps the old connection, a rotation runs two
connections side by side) and can deliver late. Per kind and symbol the guard remembers the
newest sequence seen: a trade's id, a book ticker's update id, a closed kline's open time. An
event at that sequence is a duplicate, one below it is out of order; neither must overwrite
newer data (the top of book in Redis would go back in time), so both are dropped and counted.

One absurd id (a book ticker's update id 2^63-1, passed by every check of its own) must not
freeze its symbol: every real one after it would be "out of order" for ever. A late event is
seconds late, so a trade or ticker more than MAX_REWIND below the newest cannot be late: the
newest was the absurd one (or the venue started its ids again), or this event is itself garbage
(a replayed message). Which of the two only the next event can tell: the first such event is
dropped and remembered, and when the next one is also that far below and carries on from it,
the guard forgets the absurd newest and starts again from there (Verdict.RESET: accepted, and
counted), so the symbol recovers on its second real message and a lone stale one never becomes
the top of book. A forward jump is not judged: after hours away, a real one can be any size.
Candles need no such rule: their times are held to the clock when they arrive
(`binance.check_plausible`), so none can be from the far future.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from mastertrade.market_data.domain.events import BookTicker, Kline, MarketEvent, to_millis

MAX_REWIND = 1_000_000
"""The furthest a trade id or book ticker update id may be below the newest seen and still be a
late message: minutes of Binance's busiest book at least (a late message is seconds late), and
far below what an absurd id puts between itself and the real ones."""


class Verdict(StrEnum):
    """What the guard says of an event."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    OUT_OF_ORDER = "out_of_order"
    NOT_CLOSED = "not_closed"
    RESET = "sequence_reset"  # accepted: the newest seen before it was absurd (see above)


def sequence_of(event: MarketEvent) -> tuple[tuple[str, str], int]:
    """The guard's key (kind, symbol/interval) and the event's sequence number."""
    if isinstance(event, Kline):
        return ("candle", f"{event.symbol}/{event.interval}"), to_millis(event.open_time)
    if isinstance(event, BookTicker):
        return ("ticker", event.symbol), event.update_id
    return ("trade", event.symbol), event.trade_id


class SequenceGuard:
    """The newest sequence seen per kind and symbol."""

    def __init__(self) -> None:
        self._newest: dict[tuple[str, str], int] = {}
        self._rewound: dict[tuple[str, str], int] = {}  # a first event far below the newest

    def check(self, event: MarketEvent) -> Verdict:
        """Judge an event, and remember it when it is accepted. Klines still open are not
        stored or published (the closed one follows), so they are judged NOT_CLOSED."""
        if isinstance(event, Kline) and not event.closed:
            return Verdict.NOT_CLOSED
        key, sequence = sequence_of(event)
        newest = self._newest.get(key)
        if newest is not None and sequence <= newest:
            if key[0] != "candle" and newest - sequence > MAX_REWIND:
                return self._rewind(key, sequence)
            return Verdict.DUPLICATE if sequence == newest else Verdict.OUT_OF_ORDER
        self._newest[key] = sequence
        self._rewound.pop(key, None)
        return Verdict.ACCEPTED

    def _rewind(self, key: tuple[str, str], sequence: int) -> Verdict:
        """An event far below the newest: dropped, unless it carries on from the one before it
        that was (then the newest was the absurd one: start again from here)."""
        first = self._rewound.get(key)
        if first is not None and first < sequence <= first + MAX_REWIND:
            self._newest[key] = sequence
            del self._rewound[key]
            return Verdict.RESET
        self._rewound[key] = sequence
        return Verdict.OUT_OF_ORDER

    def newest_candles(self, interval: str) -> dict[str, datetime]:
        """The open time of the newest candle of `interval` seen, per symbol."""
        found = {}
        for (kind, name), sequence in self._newest.items():
            symbol, _, of = name.partition("/")
            if kind == "candle" and of == interval:
                found[symbol] = datetime.fromtimestamp(sequence / 1000, UTC)
        return found

    def observe(self, event: MarketEvent) -> None:
        """Remember an event stored by another path (a backfill) as seen."""
        key, sequence = sequence_of(event)
        self._newest[key] = max(sequence, self._newest.get(key, sequence))
