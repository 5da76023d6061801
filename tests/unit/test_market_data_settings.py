"""MARKET_DATA_SYMBOLS as the service reads it: each symbol once, in the order given."""

from __future__ import annotations

import pytest

from mastertrade.market_data.settings import MarketDataSettings


def test_a_symbol_listed_twice_is_streamed_and_backfilled_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Listed twice, its streams were named twice in the combined stream's URL and its history
    fetched twice."""
    monkeypatch.setenv("MARKET_DATA_SYMBOLS", "btcusdt, ETHUSDT,BTCUSDT")
    assert MarketDataSettings().market_data_symbols == ("BTCUSDT", "ETHUSDT")
