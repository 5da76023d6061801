"""Pure market-data rules: symbol and interval validation, candle shape."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel

from mastertrade.core.messages import SYMBOL_PATTERN

INTERVALS = ("1m", "5m", "15m", "1h", "4h", "1d")


class InvalidSymbolError(ValueError):
    """A trading pair that is not letters and digits (e.g. BTCUSDT)."""


def normalise_symbol(symbol: str) -> str:
    """`btc/usdt` -> `BTCUSDT`; raises InvalidSymbolError when it cannot be a pair."""
    cleaned = symbol.replace("/", "").replace("-", "").upper()
    if not SYMBOL_PATTERN.fullmatch(cleaned):
        raise InvalidSymbolError(f"not a trading pair: {symbol!r}")
    return cleaned


class Candle(BaseModel):
    """One OHLCV candle."""

    symbol: str
    interval: str
    open_time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
