"""Live market messages that are well formed but cannot be true, and a sink under pressure: a
kline or trade from the future, a candle "closed" before its end, a frame on another symbol's
stream, an absurd update id, a skipped minute inside one connection, a writer that hangs, and
a quote that must age however often it is written."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from prometheus_client import CollectorRegistry

from mastertrade.market_data.binance_ws import BinanceStream
from mastertrade.market_data.domain.binance import event_from_frame
from mastertrade.market_data.domain.events import (
    BookTicker,
    ImplausibleEventError,
    Kline,
    MarketEvent,
)
from mastertrade.market_data.domain.sequencing import SequenceGuard, Verdict
from mastertrade.market_data.metrics import MarketMetrics
from mastertrade.market_data.sink import MarketSink
from mastertrade.market_data.writer import as_quote
from tests.fakes.binance import book_frame, kline_frame, trade_frame, wrap

MINUTE_MS = 60_000


def now_ms() -> int:
    return int(time.time() * 1000)


def rejected(registry: CollectorRegistry, source: str, reason: str) -> float:
    labels = {"service": "t", "source": source, "reason": reason}
    return registry.get_sample_value("mastertrade_market_data_rejected_total", labels) or 0.0


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        # a kline from 2128: stored, every real one after it was out of order for good
        (kline_frame("BTCUSDT", 5_000_000_000_000), "opens after it was received"),
        (trade_frame("BTCUSDT", 1, "1", "1", now_ms() + 3_600_000), "trade 1 at"),
        # Binance's close time is always the open time plus the interval less 1 ms
        (kline_frame("BTCUSDT", 1735689600000, T=1735689600000 + 10_000), "is not its end"),
    ],
)
def test_times_ahead_of_their_arrival_are_refused(frame: str, reason: str) -> None:
    with pytest.raises(ImplausibleEventError, match=reason):
        event_from_frame(frame, datetime.now(UTC))


def test_a_candle_marked_closed_before_its_close_time_is_refused_and_the_real_one_kept() -> None:
    """A partial candle flagged `x` 40 s early was stored, and the real close of that minute
    dropped as its duplicate."""
    minute = 1735689600000
    received = datetime.fromtimestamp((minute + 20_000) / 1000, UTC)  # 40 s before its close
    with pytest.raises(ImplausibleEventError, match="marked closed"):
        event_from_frame(kline_frame("BTCUSDT", minute, closed=True), received)
    still_open = event_from_frame(kline_frame("BTCUSDT", minute, closed=False), received)
    assert isinstance(still_open, Kline) and not still_open.closed
    at_close = received + timedelta(seconds=40, milliseconds=5)
    real = event_from_frame(kline_frame("BTCUSDT", minute, closed=True), at_close)
    assert SequenceGuard().check(real) is Verdict.ACCEPTED


def test_a_frame_on_another_symbols_stream_is_refused() -> None:
    frame = wrap(book_frame("ETHUSDT", 5, "1", "2"), "btcusdt@bookTicker")
    with pytest.raises(ImplausibleEventError, match="'btcusdt@bookTicker' carried a ETHUSDT"):
        event_from_frame(frame, datetime.now(UTC))
    ok = event_from_frame(wrap(book_frame("ETHUSDT", 5, "1", "2"), "ethusdt@bookTicker"),
                          datetime.now(UTC))  # fmt: skip
    assert ok.symbol == "ETHUSDT"


def book(update_id: int, bid: str) -> BookTicker:
    price = Decimal(bid)
    return BookTicker("BTCUSDT", update_id, price, Decimal(1), price + 1, Decimal(1),
                      datetime.now(UTC))  # fmt: skip


class Keeping:
    """A writer that keeps what it is given."""

    def __init__(self) -> None:
        self.events: list[MarketEvent] = []

    async def write(self, events: Sequence[MarketEvent]) -> None:
        self.events.extend(events)


def test_one_absurd_update_id_does_not_freeze_the_quote() -> None:
    registry = CollectorRegistry()
    sink = MarketSink(Keeping(), MarketMetrics(registry, "t"), 100, 60)
    assert sink.submit(book(10, "100"), "binance")
    assert sink.submit(book(2**63 - 1, "100"), "binance")  # passes every check of its own
    assert not sink.submit(book(11, "90"), "binance")  # alone, it may be a stale replay
    assert sink.submit(book(12, "89"), "binance")  # the real ones go on from the second
    assert sink.submit(book(13, "88"), "binance")
    assert not sink.submit(book(12, "89"), "binance")  # a real late one is still dropped
    assert rejected(registry, "binance", "out_of_order") == 2
    resets = {"service": "t", "source": "binance", "kind": "ticker"}
    assert registry.get_sample_value("mastertrade_market_data_sequence_resets_total", resets) == 1


def test_one_stale_ticker_far_below_the_newest_never_becomes_the_quote() -> None:
    """A replayed or garbage ticker millions of ids behind: dropped, and the real ones after it
    are not taken for a new start."""
    sink = MarketSink(Keeping(), MarketMetrics(CollectorRegistry(), "t"), 100, 60)
    newest = 70_000_000_000
    assert sink.submit(book(newest, "60000"), "binance")
    assert not sink.submit(book(newest - 2_000_000, "41000"), "binance")
    assert sink.submit(book(newest + 1, "60001"), "binance")
    assert not sink.submit(book(newest - 1_999_999, "41000"), "binance")  # no longer carries on


def test_implausible_frames_are_counted_by_reason_and_never_reach_the_sink() -> None:
    registry = CollectorRegistry()
    metrics = MarketMetrics(registry, "t")
    writer = Keeping()
    sink = MarketSink(writer, metrics, 100, 60)
    stream = stream_of(sink, metrics, [])
    stream.handle_frame(wrap(kline_frame("BTCUSDT", 5_000_000_000_000), "btcusdt@kline_1m"))
    stream.handle_frame(wrap(book_frame("ETHUSDT", 5, "1", "2"), "btcusdt@bookTicker"))
    stream.handle_frame(wrap(kline_frame("BTCUSDT", 1735689600000), "btcusdt@kline_1m"))
    assert rejected(registry, "binance", "implausible") == 2
    assert sink.pending == 1


def stream_of(
    sink: MarketSink, metrics: MarketMetrics, gaps: list[dict[str, datetime]]
) -> BinanceStream:
    async def on_gap(since: Mapping[str, datetime]) -> None:
        gaps.append(dict(since))

    return BinanceStream("ws://127.0.0.1:9", ["btcusdt@kline_1m", "ethusdt@kline_1m"],
                         sink=sink, metrics=metrics, rotate_seconds=3600, max_backoff=1,
                         on_gap=on_gap)  # fmt: skip


async def test_minutes_skipped_inside_one_connection_are_backfilled_from_the_newest_seen() -> None:
    metrics = MarketMetrics(CollectorRegistry(), "t")
    sink = MarketSink(Keeping(), metrics, 100, 60)
    gaps: list[dict[str, datetime]] = []
    stream = stream_of(sink, metrics, gaps)
    t0 = 1735689600000
    # the history backfill, still coming in, has reached minute -100: not a gap the stream made
    page = wrap(kline_frame("BTCUSDT", t0 - 100 * MINUTE_MS), "btcusdt@kline_1m")
    sink.guard.observe(event_from_frame(page, datetime.now(UTC)))
    for symbol, minute in (("BTCUSDT", 0), ("ETHUSDT", 0), ("BTCUSDT", 1), ("ETHUSDT", 1)):
        stream.handle_frame(wrap(kline_frame(symbol, t0 + minute * MINUTE_MS),
                                 f"{symbol.lower()}@kline_1m"))  # fmt: skip
    await asyncio.sleep(0.05)
    assert gaps == []  # minute after minute: nothing missed
    stream.handle_frame(wrap(kline_frame("BTCUSDT", t0 + 5 * MINUTE_MS), "btcusdt@kline_1m"))
    for _ in range(100):
        if gaps:
            break
        await asyncio.sleep(0.01)
    minute_1 = datetime.fromtimestamp((t0 + MINUTE_MS) / 1000, UTC)
    assert gaps == [{"BTCUSDT": minute_1}]  # from minute 1: 2..4 missed


async def test_a_candle_a_backfill_stored_first_still_counts_as_streamed() -> None:
    """The backfill's last page stores minute 1 just before the stream sends it (a duplicate
    then): minute 2 follows minute 1, not minute 0, so no gap."""
    metrics = MarketMetrics(CollectorRegistry(), "t")
    sink = MarketSink(Keeping(), metrics, 100, 60)
    gaps: list[dict[str, datetime]] = []
    stream = stream_of(sink, metrics, gaps)
    t0 = 1735689600000

    def minute(number: int) -> str:
        return wrap(kline_frame("BTCUSDT", t0 + number * MINUTE_MS), "btcusdt@kline_1m")

    stream.handle_frame(minute(0))
    sink.guard.observe(event_from_frame(minute(1), datetime.now(UTC)))  # the backfill's page
    stream.handle_frame(minute(1))
    stream.handle_frame(minute(2))
    await asyncio.sleep(0.05)
    assert gaps == []


class Hanging:
    """A writer whose broker never confirms: every write waits for ever."""

    def __init__(self) -> None:
        self.calls = 0

    async def write(self, events: Sequence[MarketEvent]) -> None:
        self.calls += 1
        await asyncio.Event().wait()


async def test_the_buffer_is_bounded_while_a_write_hangs_and_the_write_times_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("mastertrade.market_data.sink.RETRY_PAUSE", 0.01)
    registry = CollectorRegistry()
    writer = Hanging()
    sink = MarketSink(writer, MarketMetrics(registry, "t"), 50, 0.01, max_buffer=1000)
    sink.write_timeout = 0.2
    candle = event_from_frame(kline_frame("BTCUSDT", 1735689600000), datetime.now(UTC))
    sink.start()
    try:
        assert sink.submit(candle, "binance")
        for update_id in range(1, 20_001):
            sink.submit(book(update_id, "100"), "binance")
            if update_id % 500 == 0:
                await asyncio.sleep(0)
            assert sink.pending <= 1000
        for _ in range(200):
            if writer.calls >= 2:
                break
            await asyncio.sleep(0.01)
        assert writer.calls >= 2  # timed out, and tried again
    finally:
        await asyncio.wait_for(sink.stop(), 5)
    assert rejected(registry, "sink", "buffer_overflow") >= 19_000
    errors = registry.get_sample_value(
        "mastertrade_market_data_write_errors_total", {"service": "t"}
    )
    assert errors is not None and errors >= 1
    # the candle stayed: tickers are shed first
    assert any(isinstance(event, Kline) for event in sink._buffer)


async def test_a_quote_is_stamped_when_submitted_not_when_written() -> None:
    """A simulated ticker written again and again while the broker is away must look as old as
    it is (the executor refuses stale quotes), never fresh."""
    written: list[BookTicker] = []

    class Late:
        async def write(self, events: Sequence[MarketEvent]) -> None:
            written.extend(e for e in events if isinstance(e, BookTicker))

    sink = MarketSink(Late(), MarketMetrics(CollectorRegistry(), "t"), 100, 60)
    simulated_time = datetime.now(UTC) + timedelta(days=3)  # a fast simulated market's clock
    submitted_ms = now_ms()
    sink.submit(BookTicker("SIMUSDT", 1, Decimal(1), Decimal(1), Decimal(2), Decimal(1),
                           simulated_time), "simulated")  # fmt: skip
    await asyncio.sleep(1.0)
    await sink.flush()
    seen_ms = as_quote(written[0], "simulated").seen_ms
    assert seen_ms is not None and abs(seen_ms - submitted_ms) < 500
    assert json.dumps(seen_ms)  # an int, as the executor's hash stores it
