"""Pure market-data logic: the simulated market, Binance's formats, sequencing, rate limits."""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from mastertrade.market_data.domain.binance import (
    book_ticker_from_stream,
    event_from_frame,
    kline_from_row,
    stream_names,
)
from mastertrade.market_data.domain.events import (
    BookTicker,
    Kline,
    MalformedEventError,
    Trade,
    routing_key,
    to_message,
)
from mastertrade.market_data.domain.market import TICK, SimulatedMarket
from mastertrade.market_data.domain.ratelimit import WeightBudget, backoff_delay
from mastertrade.market_data.domain.sequencing import SequenceGuard, Verdict
from mastertrade.market_data.domain.simulator import (
    INSTRUMENTS,
    SYMBOLS,
    block_table,
    instrument_columns,
    usd_prices,
)
from mastertrade.market_data.metrics import MarketMetrics
from mastertrade.market_data.sink import MarketSink
from mastertrade.market_data.writer import as_quote
from tests.fakes.binance import book_frame, kline_frame, trade_frame

START = 29_000_000  # an epoch minute in 2025
NOW = datetime(2025, 3, 1, tzinfo=UTC)


def test_the_simulated_market_is_identical_for_a_seed_and_differs_for_another() -> None:
    first = SimulatedMarket(7, START).generate(3000)
    again = SimulatedMarket(7, START).generate(3000)
    other = SimulatedMarket(8, START).generate(3000)
    assert list(first.klines()) == list(again.klines())
    assert not np.array_equal(first.close, other.close)


def test_the_simulated_market_does_not_depend_on_how_minutes_are_asked_for() -> None:
    whole = SimulatedMarket(3, START).generate(500)
    market = SimulatedMarket(3, START)
    pieces = [market.generate(1) for _ in range(7)] + [market.generate(493)]
    closes = np.vstack([piece.close for piece in pieces])
    assert np.array_equal(closes, whole.close)
    assert np.array_equal(np.concatenate([p.regimes for p in pieces]), whole.regimes)
    live_again = SimulatedMarket(3, START)
    block = live_again.generate(1)
    assert live_again.live_events(block, 0) == market_events_of(3, START)


def market_events_of(seed: int, start: int) -> list[object]:
    market = SimulatedMarket(seed, start)
    block = market.generate(1)
    return list(market.live_events(block, 0))


def test_candles_are_consistent_and_quantised_to_tick_and_lot() -> None:
    block = SimulatedMarket(11, START).generate(2000)
    for kline in block.klines():
        spec = INSTRUMENTS[SYMBOLS.index(kline.symbol)]
        assert kline.low <= min(kline.open, kline.close) <= max(kline.open, kline.close)
        assert max(kline.open, kline.close) <= kline.high
        assert kline.low > 0 and kline.volume > 0
        assert kline.taker_buy_volume <= kline.volume
        assert kline.close.as_tuple().exponent == -spec.tick_places
        assert kline.volume.as_tuple().exponent == -spec.lot_places
        assert kline.quote_volume.as_tuple().exponent == -spec.quote_places
    assert np.array_equal(block.open[1:], block.close[:-1])  # each candle opens at the last close


def test_the_triangle_holds_within_a_few_basis_points() -> None:
    block = SimulatedMarket(5, START).generate(20_000)
    btc, eth, cross = (SYMBOLS.index(s) for s in ("BTCUSDT", "ETHUSDT", "ETHBTC"))
    implied = block.close[:, cross] * 1e-5 * block.close[:, btc] * 1e-2
    deviation = np.abs(implied / (block.close[:, eth] * 1e-2) - 1)
    # ETHBTC carries 1 bp of basis noise and 0.5 tick of rounding (about 2 bp at 0.05)
    assert deviation.max() < 0.0015
    assert deviation.mean() > 0  # not an identity: the cross has noise of its own


def test_symbols_are_correlated_and_regimes_change() -> None:
    block = SimulatedMarket(9, START).generate(60_000)
    returns = np.diff(np.log(block.close.astype(float)), axis=0)
    btc, eth = SYMBOLS.index("BTCUSDT"), SYMBOLS.index("ETHUSDT")
    assert np.corrcoef(returns[:, btc], returns[:, eth])[0, 1] > 0.5
    assert set(np.unique(block.regimes)) == {0, 1, 2}
    calm = returns[block.regimes[1:] == 0, btc].std()
    volatile = returns[block.regimes[1:] == 2, btc].std()
    assert volatile > 2 * calm


def test_live_events_spread_books_and_trades_with_growing_ids() -> None:
    market = SimulatedMarket(1, START)
    events = [event for block in (market.generate(1), market.generate(1))
              for _, event in market.live_events(block, 0)]  # fmt: skip
    books = [e for e in events if isinstance(e, BookTicker) and e.symbol == "BTCUSDT"]
    trades = [e for e in events if isinstance(e, Trade) and e.symbol == "BTCUSDT"]
    assert all(book.bid_price < book.ask_price for book in books)
    assert [b.update_id for b in books] == sorted({b.update_id for b in books})
    assert [t.trade_id for t in trades] == sorted({t.trade_id for t in trades})
    assert sum(isinstance(e, Kline) for e in events) == 2 * len(SYMBOLS)


def test_block_table_rows_match_the_candles() -> None:
    block = SimulatedMarket(2, START).generate(10)
    table = block_table(block, instrument_columns(["ETHBTC", "BTCUSDT"]))
    assert len(table) == 20
    assert [INSTRUMENTS[i].symbol for i in table["symbol"][[0, 10]]] == ["ETHBTC", "BTCUSDT"]
    assert table["close"][10] == block.close[0, SYMBOLS.index("BTCUSDT")]
    with pytest.raises(ValueError, match="has no DOGEUSDT"):
        instrument_columns(["DOGEUSDT"])


def test_binance_payloads_parse_into_exact_events() -> None:
    trade = event_from_frame(trade_frame("BTCUSDT", 12345, "60000.01", "0.002", 1735689600000), NOW)
    assert trade == Trade("BTCUSDT", 12345, Decimal("60000.01"), Decimal("0.002"), False,
                          datetime(2025, 1, 1, tzinfo=UTC))  # fmt: skip
    assert trade.side == "buy"
    book = event_from_frame(book_frame("ETHBTC", 400900217, "0.05010", "0.05011"), NOW)
    assert isinstance(book, BookTicker) and book.ask_price == Decimal("0.05011")
    combined = json.dumps({"stream": "ethusdt@kline_1m",
                           "data": json.loads(kline_frame("ETHUSDT", 1735689600000))})  # fmt: skip
    kline = event_from_frame(combined, NOW)
    assert isinstance(kline, Kline) and kline.closed and kline.trade_count == 7
    assert routing_key(kline) == "candle.1m.ETHUSDT"
    assert to_message(kline)["close"] == str(kline.close)
    assert routing_key(book) == "ticker.ETHBTC" and routing_key(trade) == "trade.BTCUSDT"
    assert stream_names(["BTCUSDT"], ["trade", "bookTicker"]) == [
        "btcusdt@trade",
        "btcusdt@bookTicker",
    ]


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("{not json", "not JSON"),
        ('{"e": "trade"}', "missing field"),
        (trade_frame("BTCUSDT", 1, "NaN", "1", 1735689600000), "not a finite number"),
        (trade_frame("BTCUSDT", 1, "Infinity", "1", 1735689600000), "not a finite number"),
        (trade_frame("BTCUSDT", 1, "-5", "1", 1735689600000), "must be > 0"),
        (trade_frame("BTCUSDT", 1, "1e30", "1", 1735689600000), "out of bounds"),
        (book_frame("BTCUSDT", 5, "101", "100"), "above ask"),
        ('{"u": 5, "s": "BTCUSDT", "b": "100", "B": "0", "a": "101", "A": "1"}', "B: must be > 0"),
        (book_frame("BTCUSDT", 2**63, "100", "101"), "u: expected an integer from 0 to"),
        (kline_frame("BTCUSDT", 1735689600000, h="1"), "outside"),
        ('{"e": "depthUpdate"}', "unknown event type"),
        ("[1, 2]", "not a JSON object"),
        # these raised past the parser: the reader task died, or a batch failed for ever
        (book_frame("BTCUSDT\n", 5, "100", "101"), "not a trading pair"),
        (kline_frame("BTCUSDT", 1735689600000, i=["1m"]), "unreadable event"),
        (kline_frame("BTCUSDT", 1735689600000, o="1E+1000000"), "out of bounds"),
        ("[" * 100_000 + "]" * 100_000, "not JSON"),
    ],
)
def test_malformed_frames_are_refused_with_the_reason(frame: str, reason: str) -> None:
    with pytest.raises(MalformedEventError, match=reason):
        event_from_frame(frame, NOW)


def test_bulk_rows_in_microseconds_read_like_milliseconds() -> None:
    millis = ["1735689600000", "1", "2", "0.5", "1.5", "10", "1735689659999", "15", "3", "4",
              "6", "0"]  # fmt: skip
    micros = [millis[0] + "000", *millis[1:6], millis[6] + "999", *millis[7:]]
    assert kline_from_row(millis, "BTCUSDT", "1m") == kline_from_row(micros, "BTCUSDT", "1m")


def test_the_guard_drops_duplicates_and_out_of_order_events() -> None:
    guard = SequenceGuard()
    trade = event_from_frame(trade_frame("BTCUSDT", 10, "1", "1", 1735689600000), NOW)
    older = event_from_frame(trade_frame("BTCUSDT", 9, "1", "1", 1735689600000), NOW)
    other = event_from_frame(trade_frame("ETHUSDT", 9, "1", "1", 1735689600000), NOW)
    open_kline = event_from_frame(kline_frame("BTCUSDT", 1735689600000, closed=False), NOW)
    assert guard.check(trade) is Verdict.ACCEPTED
    assert guard.check(trade) is Verdict.DUPLICATE
    assert guard.check(older) is Verdict.OUT_OF_ORDER
    assert guard.check(other) is Verdict.ACCEPTED
    assert guard.check(open_kline) is Verdict.NOT_CLOSED


def test_the_weight_budget_stops_before_the_limit_and_honours_retry_after() -> None:
    budget = WeightBudget(10)
    budget.report(8, now=120.0)
    assert budget.wait_before(2, now=121.0) == 0
    budget.spend(2, now=121.0)
    assert budget.wait_before(2, now=125.0) == pytest.approx(180.25 - 125.0)
    assert budget.wait_before(2, now=180.5) == 0  # a new minute, a new window
    budget.pause(30, now=181.0)
    assert budget.wait_before(1, now=190.0) == pytest.approx(21.0)


def test_backoff_grows_with_jitter_up_to_the_cap() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(attempt, 0.5, 8.0, rng) for attempt in range(1, 40)]
    assert all(0 <= delay <= 8.0 for delay in delays)
    assert len(set(delays)) == len(delays)


class FlakyWriter:
    """Fails its first `failures` writes (a database away), then keeps what it is given."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.batches: list[list[object]] = []

    async def write(self, events: object) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("database away")
        assert isinstance(events, list)
        self.batches.append(list(events))


def some_trades(count: int) -> list[Trade]:
    return [
        Trade("BTCUSDT", i, Decimal("1.5"), Decimal("2"), False, NOW) for i in range(1, count + 1)
    ]


async def test_the_sink_keeps_a_failed_batch_and_writes_it_once_when_the_writer_recovers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("mastertrade.market_data.sink.RETRY_PAUSE", 0.01)
    registry = CollectorRegistry()
    writer = FlakyWriter(failures=2)
    sink = MarketSink(writer, MarketMetrics(registry, "t"), batch_size=10, flush_interval=0.01)
    sink.start()
    for trade in some_trades(25):
        sink.submit(trade, "test")
    for _ in range(300):
        if sink.written == 25:
            break
        await asyncio.sleep(0.01)
    await sink.stop()
    written = [event for batch in writer.batches for event in batch]
    assert written == some_trades(25)  # all of them, once, in order
    assert (
        registry.get_sample_value("mastertrade_market_data_write_errors_total", {"service": "t"})
        == 2
    )


async def test_the_sink_buffer_is_bounded_while_the_writer_is_down() -> None:
    registry = CollectorRegistry()
    sink = MarketSink(FlakyWriter(failures=1), MarketMetrics(registry, "t"), batch_size=100,
                      flush_interval=60, max_buffer=30)  # fmt: skip
    for trade in some_trades(50):
        sink.submit(trade, "test")
    with pytest.raises(ConnectionError):
        await sink.flush()
    assert sink.pending == 30
    labels = {"service": "t", "source": "sink", "reason": "buffer_overflow"}
    assert registry.get_sample_value("mastertrade_market_data_rejected_total", labels) == 20
    await sink.flush()
    assert sink.written == 30


def test_a_quote_is_as_old_as_its_ticker_however_late_it_is_written() -> None:
    """A batch written again and again while the broker is away: its Binance ticker, received
    90 s ago, must look 90 s old to the executor (which refuses quotes over a minute old), not
    fresh. A simulated ticker's time is not the clock's (ahead of it, or behind it at a speed
    under 1): it is as old as its writing."""
    now = datetime.now(UTC)
    received = book_ticker_from_stream(json.loads(book_frame("BTCUSDT", 7, "100", "101")),
                                       now - timedelta(seconds=90))  # fmt: skip
    now_ms = now.timestamp() * 1000
    assert as_quote(received, "binance").seen_ms == int(
        (now - timedelta(seconds=90)).timestamp() * 1000
    )
    for simulated in (now + timedelta(days=3), now - timedelta(minutes=5)):
        seen = as_quote(replace(received, at=simulated), "simulated").seen_ms or 0
        assert now_ms - 1000 <= seen <= now_ms + 60_000


async def test_a_full_buffer_sheds_trades_before_any_candle() -> None:
    """Candles are the history strategies backtest on, and a few thousand a day; a trade or a
    ticker is superseded by the next. 20 candles among 40 trades, room for 30: all 20 stay."""
    registry = CollectorRegistry()
    writer = FlakyWriter(failures=1)
    sink = MarketSink(writer, MarketMetrics(registry, "t"), batch_size=100, flush_interval=60,
                      max_buffer=30)  # fmt: skip
    candles = list(SimulatedMarket(3, 29_000_000).generate(4).klines())
    for index, trade in enumerate(some_trades(40)):
        assert sink.submit(trade, "test")
        if index % 2 == 0:
            assert sink.submit(candles[index // 2], "test")
    with pytest.raises(ConnectionError):
        await sink.flush()
    await sink.flush()
    written = [event for batch in writer.batches for event in batch]
    assert [event for event in written if event in candles] == candles
    assert len(written) == 30


@pytest.mark.parametrize(
    "closes",
    [
        {"ETHBTC": 0.04839},
        {"ETHBTC": 0.04839, "BTCUSDT": 61234.5},
        {"ETHUSDT": 2500.0, "ETHBTC": 0.04839},
        {"BTCUSDT": 61234.5, "ETHUSDT": 2500.0, "ETHBTC": 0.04083},
    ],
)
def test_a_restarted_market_opens_each_symbol_at_its_last_close(closes: dict[str, float]) -> None:
    """After a restart every configured symbol goes on from its own last stored close, a cross
    pair too, whichever of its legs are configured (ETHBTC alone used to restart at the default
    prices' ratio: a 25 % jump)."""
    block = SimulatedMarket(4, START, usd_prices(closes)).generate(1)
    for symbol, close in closes.items():
        column = SYMBOLS.index(symbol)
        opened = block.open[0, column] * TICK[column]  # the block counts in ticks
        assert opened == pytest.approx(close, rel=1e-3), symbol
