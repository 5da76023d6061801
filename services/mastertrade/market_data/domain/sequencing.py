"""Which live events to keep: duplicates and out-of-order events are dropped and named.

Streams repeat themselves (a reconnect overlaps the old connection, a rotation runs two
connections side by side) and can deliver late. Per kind and symbol the guard remembers the
newest sequence seen: a trade's id, a book ticker's update id, a closed kline's open time. An
event at that sequence is a duplicate, one below it is out of order; neither must overwrite
newer data (the top of book in Redis would go back in time), so both are dropped and counted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from mastertrade.market_data.domain.events import BookTicker, Kline, MarketEvent, to_millis


class Verdict(StrEnum):
    """What the guard says of an event."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    OUT_OF_ORDER = "out_of_order"
    NOT_CLOSED = "not_closed"


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

    def check(self, event: MarketEvent) -> Verdict:
        """Judge an event, and remember it when it is accepted. Klines still open are not
        stored or published (the closed one follows), so they are judged NOT_CLOSED."""
        if isinstance(event, Kline) and not event.closed:
            return Verdict.NOT_CLOSED
        key, sequence = sequence_of(event)
        newest = self._newest.get(key)
        if newest is not None and sequence <= newest:
            return Verdict.DUPLICATE if sequence == newest else Verdict.OUT_OF_ORDER
        self._newest[key] = sequence
        return Verdict.ACCEPTED

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
