"""Metrics from the kernel's sums: vectorised arrays for ranking, Decimal records for storage.

Definitions (per bar r = equity_t / equity_t-1 - 1, marked at closes, the first bar against the
initial cash): Sharpe = mean(r) / std(r) x sqrt(bars_per_year) with the population std; Sortino
= mean(r) / sqrt(mean(min(r, 0)^2)) x sqrt(bars_per_year); both 0 when their denominator is 0.
Max drawdown = largest fall from a running peak of the close-marked equity, as a fraction.
CAGR = (final / initial) ^ (bars_per_year / bars) - 1 (None when that overflows a float, as on
a very short run). Win rate = winning round trips / closed round trips (None when none closed).
Exposure = share of bars that end holding a position. Trades = positions opened.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from mastertrade.strategy.domain.engine import BacktestRun
from mastertrade.strategy.domain.kernel import (
    BARS,
    CLOSED,
    END,
    ENTRIES,
    EXPOSED,
    MAX_DD,
    SUM_DOWN2,
    SUM_R,
    SUM_R2,
    WINS,
)

FloatArray = npt.NDArray[np.float64]
CENT = Decimal("0.01")
RATIO = Decimal("0.000001")


def annualised_ratios(stats: FloatArray, bars_per_year: int) -> tuple[FloatArray, FloatArray]:
    """Sharpe and Sortino of statistics rows (any leading shape, columns last)."""
    bars = np.maximum(stats[..., BARS], 1.0)
    mean = stats[..., SUM_R] / bars
    variance = np.maximum(stats[..., SUM_R2] / bars - mean * mean, 0.0)
    downside = np.sqrt(stats[..., SUM_DOWN2] / bars)
    scale = math.sqrt(bars_per_year)
    std = np.sqrt(variance)
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = np.where(std > 0.0, mean / std * scale, 0.0)
        sortino = np.where(downside > 0.0, mean / downside * scale, 0.0)
    return sharpe, sortino


@dataclass(frozen=True)
class BacktestResult:
    """One strategy's whole-run results, money and ratios as Decimal (ready for NUMERIC)."""

    initial_cash: Decimal
    final_equity: Decimal
    total_return: Decimal
    cagr: Decimal | None
    sharpe: Decimal
    sortino: Decimal
    max_drawdown: Decimal
    win_rate: Decimal | None
    exposure: Decimal
    trades: int
    closed_trades: int
    equity_curve: tuple[tuple[int, Decimal], ...]


def _ratio(value: float) -> Decimal:
    return Decimal(repr(float(value))).quantize(RATIO)


def _cagr(growth: float, bars: float, bars_per_year: int) -> Decimal | None:
    try:
        value = math.exp(math.log(growth) * bars_per_year / bars) - 1.0
    except OverflowError:
        return None
    return _ratio(value) if math.isfinite(value) and abs(value) < 1e12 else None


def build_result(run: BacktestRun, index: int) -> BacktestResult:
    """The Decimal record of strategy `index` of a run."""
    row = run.stats[index, -1]
    config = run.config
    sharpe, sortino = annualised_ratios(row, config.bars_per_year)
    initial = float(config.initial_cash)
    closed = int(row[CLOSED])
    curve = tuple(
        (int(bar), Decimal(repr(float(value))).quantize(CENT))
        for bar, value in zip(run.curve_bars, run.curves[index], strict=True)
    )
    return BacktestResult(
        initial_cash=config.initial_cash,
        final_equity=Decimal(repr(float(row[END]))).quantize(CENT),
        total_return=_ratio(row[END] / initial - 1.0),
        cagr=_cagr(row[END] / initial, row[BARS], config.bars_per_year),
        sharpe=_ratio(float(sharpe)),
        sortino=_ratio(float(sortino)),
        max_drawdown=_ratio(row[MAX_DD]),
        win_rate=_ratio(row[WINS] / closed) if closed else None,
        exposure=_ratio(row[EXPOSED] / row[BARS]),
        trades=int(row[ENTRIES]),
        closed_trades=closed,
        equity_curve=curve,
    )


def final_equity(run: BacktestRun) -> FloatArray:
    """Every strategy's final close-marked equity (float, for comparisons and ranking)."""
    return run.stats[:, -1, END]


def trade_counts(run: BacktestRun) -> npt.NDArray[np.int64]:
    """Every strategy's count of opened positions."""
    return run.stats[:, -1, ENTRIES].astype(np.int64)
