"""The backtest engine's entry point: validate bars, costs and strategies, run the kernel.

Numeric stack: numpy arrays in, numba kernels inside (see `kernel.py` for the conventions),
float64 internally; money leaves as Decimal through `metrics.py`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from mastertrade.strategy.domain.families import MAX_LEGS, PARAM_SLOTS, Donchian, Strategy
from mastertrade.strategy.domain.indicators import build_shared_indicators
from mastertrade.strategy.domain.kernel import run_kernel

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
MAX_BARS = 50_000_000


class BacktestConfig(BaseModel):
    """Costs, sizing and annualisation of a backtest (Decimal in; finite, bounded)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    initial_cash: Decimal = Field(
        default=Decimal(10_000), gt=0, le=Decimal(10) ** 12, allow_inf_nan=False,
        description="starting cash in quote currency, e.g. 10000",
    )  # fmt: skip
    fee_rate: Decimal = Field(
        default=Decimal("0.001"), ge=0, lt=Decimal("0.1"), allow_inf_nan=False,
        description="fee per fill as a fraction of traded value, 0 <= x < 0.1 (0.001 = 0.1%)",
    )  # fmt: skip
    slippage: Decimal = Field(
        default=Decimal(0), ge=0, lt=Decimal("0.1"), allow_inf_nan=False,
        description="adverse price move per fill as a fraction of the open, 0 <= x < 0.1",
    )  # fmt: skip
    fraction: Decimal = Field(
        default=Decimal(1), gt=0, le=1, allow_inf_nan=False,
        description="share of equity a buy spends (fee included), above 0 and at most 1",
    )  # fmt: skip
    bars_per_year: int = Field(
        default=525_600, ge=1, le=100_000_000,
        description="bars in a year, for CAGR and annualised ratios (525600 for 1-minute bars)",
    )  # fmt: skip
    curve_points: int = Field(
        default=500, ge=2, le=100_000, description="most points kept of each equity curve"
    )

    def costs(self) -> FloatArray:
        """The kernel's cost vector: fee, slippage, fraction, initial cash."""
        values = (self.fee_rate, self.slippage, self.fraction, self.initial_cash)
        return np.array([float(v) for v in values], dtype=np.float64)


@dataclass(frozen=True)
class Bars:
    """Validated open and close prices of one symbol, oldest first."""

    open: FloatArray
    close: FloatArray

    def __len__(self) -> int:
        return int(self.close.shape[0])


def build_bars(open_: Sequence[float] | FloatArray, close: Sequence[float] | FloatArray) -> Bars:
    """Bars from open and close prices; ValueError saying what is wrong when they are unusable."""
    arrays = []
    for name, values in (("open", open_), ("close", close)):
        array = np.ascontiguousarray(values, dtype=np.float64)
        if array.ndim != 1 or not 2 <= array.shape[0] <= MAX_BARS:
            raise ValueError(f"{name} prices: give a flat sequence of 2 to {MAX_BARS} bars")
        if not np.all(np.isfinite(array)) or not np.all(array > 0):
            bad = int(np.argmin(np.isfinite(array) & (array > 0)))
            raise ValueError(
                f"{name} price at bar {bad} is {array[bad]}: every price must be finite and > 0"
            )
        arrays.append(array)
    if arrays[0].shape != arrays[1].shape:
        raise ValueError(
            f"open has {arrays[0].shape[0]} bars but close has {arrays[1].shape[0]}: "
            "give one open and one close per bar"
        )
    return Bars(arrays[0], arrays[1])


@dataclass(frozen=True)
class BacktestRun:
    """What the kernel measured: per-strategy statistics by segment (last row: whole run)."""

    stats: FloatArray
    curves: FloatArray
    curve_bars: IntArray
    edges: IntArray
    config: BacktestConfig


def encode(strategies: Sequence[Strategy]) -> tuple[IntArray, FloatArray]:
    """Strategies as kernel input: family codes (-1 = no leg) and their numbers."""
    kinds = np.full((len(strategies), MAX_LEGS), -1, dtype=np.int64)
    params = np.zeros((len(strategies), MAX_LEGS, PARAM_SLOTS), dtype=np.float64)
    for row, strategy in enumerate(strategies):
        for leg, family in enumerate(strategy.legs()):
            kinds[row, leg] = int(family.kind)
            params[row, leg, :] = family.engine_params()
    return kinds, params


def _longest_channel(strategies: Sequence[Strategy]) -> int:
    channels = [
        max(leg.entry, leg.exit)
        for strategy in strategies
        for leg in strategy.legs()
        if isinstance(leg, Donchian)
    ]
    return max(channels, default=0)


def _check_edges(edges: Sequence[int] | None, n_bars: int) -> IntArray:
    if edges is None:
        return np.array([0, n_bars], dtype=np.int64)
    array = np.asarray(edges, dtype=np.int64)
    if array.ndim != 1 or array.shape[0] < 2 or array[0] != 0 or array[-1] != n_bars:
        raise ValueError(f"segment edges must run from 0 to the bar count ({n_bars})")
    if np.any(np.diff(array) <= 0):
        raise ValueError("segment edges must be strictly increasing (no empty segment)")
    return array


def run_backtests(
    bars: Bars,
    strategies: Sequence[Strategy],
    config: BacktestConfig,
    edges: Sequence[int] | None = None,
) -> BacktestRun:
    """Backtest every strategy over the bars; `edges` split the bars into segments whose
    statistics are kept apart (walk-forward windows), besides the whole run's."""
    if not strategies:
        raise ValueError("no strategies to backtest: give at least one")
    n_bars = len(bars)
    segment_edges = _check_edges(edges, n_bars)
    shared = build_shared_indicators(bars.close, _longest_channel(strategies))
    kinds, params = encode(strategies)
    stride = math.ceil(n_bars / config.curve_points)
    n_points = math.ceil(n_bars / stride)
    packed = (shared.base, shared.prefix, shared.prefix_sq, shared.max_table, shared.min_table)
    stats, curves = run_kernel(
        bars.open,
        bars.close,
        packed,
        kinds,
        params,
        config.costs(),
        segment_edges,
        stride,
        n_points,
    )
    curve_bars = np.minimum(np.arange(1, n_points + 1, dtype=np.int64) * stride, n_bars) - 1
    return BacktestRun(stats, curves, curve_bars, segment_edges, config)
