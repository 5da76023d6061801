"""Values a market message may carry that parse but could not be stored: a time with no UTC
equivalent (asyncpg converts it at write time and overflows) or far from now, a decimal with
more places than PostgreSQL's numeric keeps. Each is refused where it enters, alone: stored, it
failed its whole batch at every retry (the broker's ingest queue, the live sink, a poll)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from mastertrade.core.market_messages import BookTicker
from mastertrade.market_data.binance_ws import BinanceStream
from mastertrade.market_data.domain.binance import event_from_frame
from mastertrade.market_data.domain.events import (
    Kline,
    MalformedEventError,
    exact,
    kline_from_message,
    to_message,
)
from mastertrade.market_data.domain.observations import iso_time, number
from mastertrade.market_data.metrics import MarketMetrics
from mastertrade.market_data.sink import MarketSink
from tests.fakes.binance import kline_frame, trade_frame, wrap

HUGE_SCALE = "1." + "0" * 16384  # PostgreSQL's numeric keeps at most 16383 decimal places
OPEN_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z


def candle_message(**override: Any) -> dict[str, Any]:
    kline = event_from_frame(kline_frame("BTCUSDT", OPEN_MS), datetime.now(UTC))
    assert isinstance(kline, Kline)
    return to_message(kline) | override


def minute(open_time: str) -> dict[str, str]:
    """A candle's times: opening at `open_time`, closing 59.999 s later (a consistent candle,
    so that only the time itself is wrong)."""
    return {"open_time": open_time, "close_time": f"{open_time[:17]}59.999{open_time[19:]}"}


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        (minute("9999-12-31T23:00:00-05:00"), "not between 2000 and 2200"),
        (minute("0001-01-01T00:00:00+05:00"), "not between 2000 and 2200"),
        (minute("2500-01-01T00:00:00+00:00"), "not between 2000 and 2200"),
        ({"quote_volume": HUGE_SCALE}, "at most 200 decimal places"),
        ({"taker_buy_quote_volume": "0E-99999"}, "at most 200 decimal places"),
        ({"quote_volume": "0E+99999"}, "an exponent of at most 15"),
        ({"quote_volume": "1." + "0" * 41}, "41 decimal places; at most 40"),
    ],
)
def test_a_candle_message_the_database_could_not_store_is_refused(
    override: dict[str, str], reason: str
) -> None:
    with pytest.raises(MalformedEventError, match=reason):
        kline_from_message(candle_message(**override))


def test_a_candle_message_times_are_taken_in_utc() -> None:
    message = candle_message(open_time="2024-12-31T19:00:00-05:00",
                             close_time="2024-12-31T19:00:59.999-05:00")  # fmt: skip
    kline = kline_from_message(message)
    assert kline.open_time == datetime(2025, 1, 1, tzinfo=UTC)
    assert kline.open_time.utcoffset() is not None and not kline.open_time.utcoffset()


def test_forty_decimal_places_are_accepted_and_kept_exact() -> None:
    forty = "0." + "0" * 29 + "1234567891"  # the amount floor (1e-30) with ten digits
    assert exact(forty, "price") == Decimal(forty)
    assert exact("1E+15", "price") == Decimal("1e15")


def test_a_live_frame_with_an_unstorable_price_never_reaches_the_sink() -> None:
    """The live stream's writes would fail batch after batch: the sink holds a failed batch
    and retries it, so every event after it would wait behind it for good."""
    registry = CollectorRegistry()
    metrics = MarketMetrics(registry, "t")
    sink = MarketSink(Writer(), metrics, 100, 60)
    stream = BinanceStream("ws://127.0.0.1:9", ["btcusdt@trade"], sink=sink, metrics=metrics,
                           rotate_seconds=3600, max_backoff=1, on_gap=no_gap)  # fmt: skip
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    stream.handle_frame(wrap(trade_frame("BTCUSDT", 1, HUGE_SCALE, "1", now_ms), "btcusdt@trade"))
    stream.handle_frame(wrap(trade_frame("BTCUSDT", 2, "1.5", "1", now_ms), "btcusdt@trade"))
    labels = {"service": "t", "source": "binance", "reason": "malformed"}
    assert registry.get_sample_value("mastertrade_market_data_rejected_total", labels) == 1
    assert sink.pending == 1


def test_a_book_ticker_time_with_no_utc_equivalent_is_a_validation_error() -> None:
    """Not an OverflowError escaping validation: the arbitrage service counts and ignores a
    ValidationError, and logged anything else as a fault."""
    body = {"symbol": "BTCUSDT", "bid": "1", "bid_qty": "1", "ask": "2", "ask_qty": "1",
            "time": "9999-12-31T23:00:00-05:00"}  # fmt: skip
    with pytest.raises(ValidationError, match="has no UTC time"):
        BookTicker.model_validate_json(json.dumps(body))


def test_a_collected_observation_the_database_could_not_store_is_refused() -> None:
    with pytest.raises(MalformedEventError, match="not between 2000 and 2200"):
        iso_time("9999-12-31T23:00:00-05:00", "transfer time")
    with pytest.raises(MalformedEventError, match="decimal places"):
        number(HUGE_SCALE, "glassnode BTC active")


class Writer:
    async def write(self, events: object) -> None:
        raise AssertionError("nothing is written in this test")


async def no_gap(since: object) -> None:
    raise AssertionError("no gap in this test")
