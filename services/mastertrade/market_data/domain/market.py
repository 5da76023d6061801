"""The simulated market's engine: state (log prices, regime, last closes) stepped minute by minute.

`SimulatedMarket(seed, start_minute)` is deterministic: the same seed, start and start prices
give the same minutes, whether asked for in one block or many (see `simulator`). `generate(n)`
returns the next n minutes as a `Block` (history); `live_events(block, row)` turns one minute
into the trades and book tickers inside it and its closing candle (the live feed).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta

import numpy as np

from mastertrade.market_data.domain.events import BookTicker, MarketEvent, Trade
from mastertrade.market_data.domain.simulator import (
    ASSETS,
    DRAWS_PER_MINUTE,
    INSTRUMENTS,
    MINUTES_PER_YEAR,
    REGIME_SWITCH_Z,
    REGIME_VOLATILITY,
    SUBSTEPS,
    Block,
    Floats,
    Ints,
    minute_time,
    units,
)

_A, _I, _S = len(ASSETS), len(INSTRUMENTS), SUBSTEPS
ASSET_INDEX = {asset.name: index for index, asset in enumerate(ASSETS)}
BETAS = np.array([asset.beta for asset in ASSETS])
MINUTE_SIGMA = np.array([asset.annual_volatility for asset in ASSETS]) / np.sqrt(MINUTES_PER_YEAR)
TICK = np.array([10.0**-spec.tick_places for spec in INSTRUMENTS])
LOT = np.array([10.0**-spec.lot_places for spec in INSTRUMENTS])
BASIS = np.array([spec.basis_noise_bps * 1e-4 for spec in INSTRUMENTS])
SPREAD = np.array([spec.spread_bps * 1e-4 for spec in INSTRUMENTS])
# Cross pairs trade a tenth of their base asset's volume
MINUTE_VOLUME = np.array(
    [
        ASSETS[ASSET_INDEX[spec.base]].minute_volume * (1.0 if spec.quote == "USDT" else 0.1)
        for spec in INSTRUMENTS
    ]
)
TRADES_PER_MINUTE = 200.0


def _layout() -> dict[str, slice]:
    """Where each group of draws sits in a minute's row of normals."""
    sizes = {
        "market": _S,
        "assets": _S * _A,
        "regime": 2,
        "basis": _S * _I,
        "volume": _I,
        "taker": _I,
        "quotes": _I,
        "trades": 2 * _S * _I,
    }
    layout, start = {}, 0
    for name, size in sizes.items():
        layout[name] = slice(start, start + size)
        start += size
    assert start == DRAWS_PER_MINUTE
    return layout


COLUMNS = _layout()
REGIME_COLUMN = COLUMNS["regime"].start


def _symbol_log_paths(asset_log: Floats, basis: Floats) -> Floats:
    """(minutes, substeps, symbols) log prices of the symbols from the assets' log prices."""
    out = np.empty((*asset_log.shape[:2], _I))
    for column, spec in enumerate(INSTRUMENTS):
        path = asset_log[:, :, ASSET_INDEX[spec.base]].copy()
        if spec.quote != "USDT":
            path -= asset_log[:, :, ASSET_INDEX[spec.quote]]
        out[:, :, column] = path + BASIS[column] * basis[:, :, column]
    return out


class SimulatedMarket:
    """The simulated market's state; `generate` advances it."""

    def __init__(
        self, seed: int, start_minute: int, start_prices: Mapping[str, float] | None = None
    ) -> None:
        self.seed = seed
        self.next_minute = start_minute
        self._rng = np.random.Generator(
            np.random.PCG64(np.random.SeedSequence([seed, start_minute]))
        )
        prices = {asset.name: asset.price for asset in ASSETS} | dict(start_prices or {})
        self._log = np.log(np.array([prices[asset.name] for asset in ASSETS]))
        self._regime = 1
        first = np.exp(_symbol_log_paths(self._log.reshape(1, 1, _A), np.zeros((1, 1, _I))))
        self._last_close: Ints = np.maximum(np.rint(first[0, 0] / TICK), 1).astype(np.int64)

    def _regimes(self, normals: Floats) -> Ints:
        regimes = np.empty(normals.shape[0], dtype=np.int64)
        regime = self._regime
        switches = np.flatnonzero(normals[:, REGIME_COLUMN] > REGIME_SWITCH_Z)
        start = 0
        for row in switches:  # few: about one a thousand minutes
            regimes[start:row] = regime
            choice = normals[row, REGIME_COLUMN + 1]
            regime = 0 if choice < -0.3 else (2 if choice > 1.2 else 1)
            start = int(row)
        regimes[start:] = regime
        self._regime = regime
        return regimes

    def _asset_log_paths(self, normals: Floats, regimes: Ints) -> Floats:
        minutes = normals.shape[0]
        market = normals[:, COLUMNS["market"]].reshape(minutes, _S, 1)
        own = normals[:, COLUMNS["assets"]].reshape(minutes, _S, _A)
        shocks = BETAS * market + np.sqrt(1.0 - BETAS**2) * own
        sigma = REGIME_VOLATILITY[regimes].reshape(minutes, 1, 1) * MINUTE_SIGMA / np.sqrt(_S)
        steps = (shocks * sigma).reshape(minutes * _S, _A)
        paths = self._log + np.cumsum(steps, axis=0)
        self._log = paths[-1].copy()
        shaped: Floats = paths.reshape(minutes, _S, _A)
        return shaped

    @property
    def last_close(self) -> Ints:
        """Each symbol's close (ticks) of the minute before `next_minute`: the next one opens
        there."""
        return self._last_close.copy()

    def generate(self, minutes: int) -> Block:
        """The next `minutes` minutes of every symbol."""
        if minutes < 1:
            raise ValueError("minutes must be at least 1")
        normals = self._rng.standard_normal((minutes, DRAWS_PER_MINUTE))
        regimes = self._regimes(normals)
        basis = normals[:, COLUMNS["basis"]].reshape(minutes, _S, _I)
        paths = np.exp(_symbol_log_paths(self._asset_log_paths(normals, regimes), basis))
        ticks = np.maximum(np.rint(paths / TICK), 1).astype(np.int64)
        close = ticks[:, -1, :]
        open_ = np.vstack([self._last_close.reshape(1, _I), close[:-1]])
        self._last_close = close[-1].copy()
        high = np.maximum(ticks.max(axis=1), open_)
        low = np.minimum(ticks.min(axis=1), open_)
        volume, taker, trades = self._volumes(normals, regimes, open_, close)
        block = Block(
            first_minute=self.next_minute,
            regimes=regimes,
            open=open_,
            high=high,
            low=low,
            close=close,
            volume=volume,
            taker_volume=taker,
            trade_count=trades,
            vwap=(open_ + high + low + close) // 4,
            paths=paths,
            normals=normals,
        )
        self.next_minute += minutes
        return block

    def _volumes(
        self, normals: Floats, regimes: Ints, open_: Ints, close: Ints
    ) -> tuple[Ints, Ints, Ints]:
        activity = REGIME_VOLATILITY[regimes].reshape(-1, 1) ** 0.8
        noise = np.exp(0.5 * normals[:, COLUMNS["volume"]] - 0.125)
        volume = np.maximum(np.rint(MINUTE_VOLUME * activity * noise / LOT), 1).astype(np.int64)
        direction = np.sign(close - open_)
        share = 1.0 / (1.0 + np.exp(-(0.6 * normals[:, COLUMNS["taker"]] + 0.4 * direction)))
        taker = np.rint(volume * share).astype(np.int64)
        trades = np.maximum(np.rint(TRADES_PER_MINUTE * activity * noise), 1).astype(np.int64)
        return volume, taker, trades

    def live_events(self, block: Block, row: int) -> list[tuple[float, MarketEvent]]:
        """Minute `row` of `block` as (seconds into the minute, event): a trade and a book
        ticker per symbol at each substep, then every symbol's closed candle at 60 s.
        Trade and update ids come from the minute and step, so they keep growing across
        restarts without any stored counter."""
        minute = block.first_minute + row
        opened = minute_time(minute)
        trade_draws = block.normals[row, COLUMNS["trades"]].reshape(2, _S, _I)
        quote_draws = block.normals[row, COLUMNS["quotes"]]
        spread_scale = float(REGIME_VOLATILITY[block.regimes[row]])
        events: list[tuple[float, MarketEvent]] = []
        for step in range(_S):
            offset = 60.0 * (step + 1) / (_S + 1)
            at = opened + timedelta(seconds=offset)
            sequence = minute * _S + step + 1
            for column in range(_I):
                price = float(block.paths[row, step, column])
                draw = (float(trade_draws[0, step, column]), float(trade_draws[1, step, column]))
                events.append((offset, _trade(column, sequence, price, draw, at)))
                quote = (float(quote_draws[column]), spread_scale)
                events.append((offset, _book(column, sequence, price, quote, at)))
        events.extend((60.0, block.kline(row, column)) for column in range(_I))
        return events


def _trade(
    column: int, sequence: int, price: float, draw: tuple[float, float], at: datetime
) -> Trade:
    spec = INSTRUMENTS[column]
    size = math.exp(0.8 * draw[0])
    lots = max(1, round(MINUTE_VOLUME[column] / TRADES_PER_MINUTE * size / LOT[column]))
    return Trade(
        symbol=spec.symbol,
        trade_id=sequence,
        price=units(max(1, round(price / TICK[column])), spec.tick_places),
        quantity=units(lots, spec.lot_places),
        buyer_is_maker=draw[1] < 0,
        traded_at=at,
    )


def _book(
    column: int, sequence: int, price: float, quote: tuple[float, float], at: datetime
) -> BookTicker:
    spec = INSTRUMENTS[column]
    draw, spread_scale = quote
    spread = max(1, round(price * SPREAD[column] * spread_scale / TICK[column]))
    bid = max(1, round(price / TICK[column]) - spread // 2)
    depth = MINUTE_VOLUME[column] / 20 * math.exp(draw) / LOT[column]
    return BookTicker(
        symbol=spec.symbol,
        update_id=sequence,
        bid_price=units(bid, spec.tick_places),
        bid_quantity=units(max(1, round(depth)), spec.lot_places),
        ask_price=units(bid + spread, spec.tick_places),
        ask_quantity=units(max(1, round(depth * 0.9)), spec.lot_places),
        at=at,
    )
