"""A seeded, deterministic simulated market of correlated symbols, minute by minute.

Four assets (BTC, ETH, BNB, SOL) move in USD with one shared market factor (correlation through
each asset's beta) and their own noise, under volatility regimes (calm, normal, volatile) that
switch at random. Symbols quote them against USDT, and ETHBTC crosses two of them with a little
basis noise, so the triangle holds: ETHUSDT ~= ETHBTC * BTCUSDT within a few basis points.

Each minute is simulated in SUBSTEPS steps, which give the candle's high and low, the live
trades and the book tickers. Prices, volumes and quantities are integers of the symbol's tick and
lot size inside (numpy arrays, for speed: years of candles in seconds) and exact Decimals in what
leaves the module. Every random number of a minute comes from one row of standard normals of a
fixed width, so the output depends only on the seed and the start, never on how the minutes are
asked for (one at a time live, or by the hundred thousand for history).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from mastertrade.market_data.domain.events import EPOCH, Kline

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]

SUBSTEPS = 6
MINUTES_PER_YEAR = 525_600
MINUTE = timedelta(minutes=1)
REGIME_NAMES = ("calm", "normal", "volatile")
REGIME_VOLATILITY = np.array([0.6, 1.0, 2.0])
REGIME_SWITCH_Z = 3.09  # a standard normal above this switches regime: p ~= 0.001 a minute


@dataclass(frozen=True)
class Asset:
    """A simulated asset's USD start price, annual volatility, market beta and minute volume."""

    name: str
    price: float
    annual_volatility: float
    beta: float
    minute_volume: float


@dataclass(frozen=True)
class Instrument:
    """A simulated symbol: base/quote assets, tick and lot sizes (decimal places), spread."""

    symbol: str
    base: str
    quote: str
    tick_places: int
    lot_places: int
    spread_bps: float
    basis_noise_bps: float = 0.0

    @property
    def quote_places(self) -> int:
        return self.tick_places + self.lot_places


ASSETS: tuple[Asset, ...] = (
    Asset("BTC", 60_000.0, 0.55, 0.90, 12.0),
    Asset("ETH", 3_000.0, 0.70, 0.85, 150.0),
    Asset("BNB", 550.0, 0.60, 0.70, 300.0),
    Asset("SOL", 150.0, 0.90, 0.75, 2_000.0),
)
INSTRUMENTS: tuple[Instrument, ...] = (
    Instrument("BTCUSDT", "BTC", "USDT", 2, 5, 0.5),
    Instrument("ETHUSDT", "ETH", "USDT", 2, 4, 0.7),
    Instrument("ETHBTC", "ETH", "BTC", 5, 4, 1.5, basis_noise_bps=1.0),
    Instrument("BNBUSDT", "BNB", "USDT", 2, 3, 1.0),
    Instrument("SOLUSDT", "SOL", "USDT", 2, 3, 1.2),
)
SYMBOLS = tuple(instrument.symbol for instrument in INSTRUMENTS)
_A, _I, _S = len(ASSETS), len(INSTRUMENTS), SUBSTEPS
# Columns of one minute's row of normals: market factor, asset noise, regime, then per symbol
# basis noise, volume, taker share, bid and ask quantities, trade quantity and side
DRAWS_PER_MINUTE = _S + _S * _A + 2 + _S * _I + 3 * _I + 2 * _S * _I


def minute_time(minute: int) -> datetime:
    """The UTC start of an epoch minute."""
    return EPOCH + timedelta(minutes=minute)


def epoch_minute(moment: datetime) -> int:
    """The epoch minute a UTC time falls in."""
    return int((moment - EPOCH) // MINUTE)


def units(value: int, places: int) -> Decimal:
    """An integer count of 10**-places as an exact Decimal."""
    return Decimal(value).scaleb(-places)


@dataclass
class Block:
    """Consecutive simulated minutes: per symbol integer OHLC ticks, volumes in lots, paths."""

    first_minute: int
    regimes: Ints
    open: Ints  # (minutes, symbols), ticks; likewise high, low, close
    high: Ints
    low: Ints
    close: Ints
    volume: Ints  # lots
    taker_volume: Ints
    trade_count: Ints
    vwap: Ints  # ticks, for the quote volumes (volume * vwap, exact in quote units)
    paths: Floats  # (minutes, substeps, symbols): prices inside the minute
    normals: Floats  # (minutes, DRAWS_PER_MINUTE): kept for the live trades and quotes

    @property
    def minutes(self) -> int:
        return int(self.open.shape[0])

    def kline(self, row: int, column: int) -> Kline:
        """Minute `row` of symbol `column` as a closed 1m Kline."""
        spec = INSTRUMENTS[column]
        tick, lot, quote = spec.tick_places, spec.lot_places, spec.quote_places
        opened = minute_time(self.first_minute + row)
        volume, taker = int(self.volume[row, column]), int(self.taker_volume[row, column])
        vwap = int(self.vwap[row, column])
        return Kline(
            symbol=spec.symbol,
            interval="1m",
            open_time=opened,
            close_time=opened + MINUTE - timedelta(milliseconds=1),
            open=units(int(self.open[row, column]), tick),
            high=units(int(self.high[row, column]), tick),
            low=units(int(self.low[row, column]), tick),
            close=units(int(self.close[row, column]), tick),
            volume=units(volume, lot),
            quote_volume=units(volume * vwap, quote),
            trade_count=int(self.trade_count[row, column]),
            taker_buy_volume=units(taker, lot),
            taker_buy_quote_volume=units(taker * vwap, quote),
        )

    def klines(self, columns: Sequence[int] | None = None) -> Iterator[Kline]:
        """Every candle of the block, minute by minute, in symbol order."""
        wanted = range(len(INSTRUMENTS)) if columns is None else columns
        for row in range(self.minutes):
            for column in wanted:
                yield self.kline(row, column)


def instrument_columns(symbols: Sequence[str]) -> list[int]:
    """Columns of the simulated symbols asked for; raises ValueError naming unknown ones."""
    unknown = [symbol for symbol in symbols if symbol not in SYMBOLS]
    if unknown:
        raise ValueError(
            f"the simulated market has no {', '.join(unknown)}; it has {', '.join(SYMBOLS)}"
        )
    return [SYMBOLS.index(symbol) for symbol in symbols]


# One row of simulated history in integer units, as `Block.table` gives it (the store turns the
# units into NUMERIC with the symbol's tick and lot sizes)
TABLE_DTYPE = np.dtype(
    [
        ("symbol", np.int16),
        ("minute", np.int64),
        ("open", np.int64),
        ("high", np.int64),
        ("low", np.int64),
        ("close", np.int64),
        ("volume", np.int64),
        ("taker_volume", np.int64),
        ("trade_count", np.int64),
        ("vwap", np.int64),
    ]
)


def block_table(block: Block, columns: Sequence[int]) -> npt.NDArray[np.void]:
    """The block's candles of the symbols in `columns` as TABLE_DTYPE rows, symbol by symbol
    (the order of the candles' primary key, which keeps its index inserts local)."""
    wanted = np.asarray(columns, dtype=np.int64)
    minutes = block.minutes
    table = np.empty(minutes * len(wanted), dtype=TABLE_DTYPE)
    table["symbol"] = np.repeat(wanted, minutes)
    table["minute"] = np.tile(np.arange(minutes, dtype=np.int64) + block.first_minute, len(wanted))
    for name in ("open", "high", "low", "close", "volume", "taker_volume", "trade_count", "vwap"):
        table[name] = getattr(block, name)[:, wanted].T.reshape(-1)
    return table


def usd_prices(closes: Mapping[str, float]) -> dict[str, float]:
    """Assets' USD prices that reproduce the symbols' `closes`: from a USDT symbol, else through
    a cross pair (ETH from ETHBTC and BTC's price; with neither leg priced, the quote asset at
    its default price and the base at the cross's close of it)."""
    prices = {spec.base: closes[spec.symbol] for spec in INSTRUMENTS
              if spec.quote == "USDT" and spec.symbol in closes}  # fmt: skip
    defaults = {asset.name: asset.price for asset in ASSETS}
    for spec in INSTRUMENTS:
        if spec.quote == "USDT" or spec.symbol not in closes:
            continue
        close = closes[spec.symbol]
        if spec.base in prices and spec.quote not in prices:
            prices[spec.quote] = prices[spec.base] / close
        elif spec.base not in prices:
            prices.setdefault(spec.quote, defaults[spec.quote])
            prices[spec.base] = close * prices[spec.quote]
    return prices
