"""The backtest kernel: every strategy in parallel (`prange`), each one a loop over the bars.

Timing convention (no look-ahead): the rules see bar t's close; the position they ask for is
filled at bar t + 1's OPEN; equity is marked at every close. A wish on the last bar is never
filled. Orders: a buy spends `fraction` of the cash (equal to equity, since a strategy is flat
when it buys) on units at `open * (1 + slippage)`, the fee (`fee_rate` of the traded value)
included in what it spends; a sell gets `units * open * (1 - slippage) * (1 - fee_rate)`.
A round trip wins when the sale brings back more than the buy spent.

Per strategy only O(segments + curve points) numbers are written, whatever the bar count:
the sums behind every metric per segment (walk-forward windows) and for the whole run, the
whole run's maximum drawdown, and the equity curve sampled every `stride` bars.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import prange

from mastertrade.strategy.domain._jit import njit
from mastertrade.strategy.domain.signals import WANT, leg_step

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Columns of the per-segment statistics.
START, END, SUM_R, SUM_R2, SUM_DOWN2, BARS, ENTRIES, CLOSED, WINS, EXPOSED, MAX_DD = range(11)
STAT_COLUMNS = 11
STATE_SLOTS = 8


@njit()
def _accumulate(row: FloatArray, equity: float, previous: float, holding: bool) -> None:
    """Add one bar's close-to-close return to a statistics row."""
    r = equity / previous - 1.0
    row[END] = equity
    row[SUM_R] += r
    row[SUM_R2] += r * r
    if r < 0.0:
        row[SUM_DOWN2] += r * r
    row[BARS] += 1.0
    if holding:
        row[EXPOSED] += 1.0


@njit()
def _open_segment(row: FloatArray, equity: float) -> None:
    row[START] = equity
    row[END] = equity


@njit()
def _wants(kinds: IntArray, state: FloatArray) -> bool:
    for leg in range(kinds.shape[0]):  # noqa: SIM110 - a plain loop is what numba compiles best
        if kinds[leg] >= 0 and state[leg, WANT] == 0.0:
            return False
    return True


@njit()
def _simulate(  # noqa: PLR0917 - numba kernels take their arrays positionally
    open_: FloatArray,
    close: FloatArray,
    shared: tuple[float, FloatArray, FloatArray, FloatArray, FloatArray],
    kinds: IntArray,
    params: FloatArray,
    costs: FloatArray,
    edges: IntArray,
    stats: FloatArray,
    curve: FloatArray,
    stride: int,
) -> float:
    """Run one strategy over every bar; fill its `stats` rows and `curve`; return max drawdown."""
    base, prefix, prefix_sq, high, low = shared
    fee, slip, fraction, cash = costs[0], costs[1], costs[2], costs[3]
    total = stats.shape[0] - 1
    state = np.zeros((kinds.shape[0], STATE_SLOTS))
    units, spent, equity = 0.0, 0.0, cash
    holding = target = False
    peak, max_dd, seg_peak, segment, point = cash, 0.0, cash, 0, 0
    _open_segment(stats[0], cash)
    _open_segment(stats[total], cash)
    for t in range(close.shape[0]):
        if t == edges[segment + 1]:
            segment += 1
            _open_segment(stats[segment], equity)
            seg_peak = equity
        if target != holding:
            if target:
                spent = fraction * cash
                units = spent / (open_[t] * (1.0 + slip) * (1.0 + fee))
                cash -= spent
                stats[segment, ENTRIES] += 1.0
                stats[total, ENTRIES] += 1.0
            else:
                proceeds = units * open_[t] * (1.0 - slip) * (1.0 - fee)
                cash += proceeds
                units = 0.0
                won = 1.0 if proceeds > spent else 0.0
                for row in (segment, total):
                    stats[row, CLOSED] += 1.0
                    stats[row, WINS] += won
            holding = target
        previous = equity
        equity = cash + units * close[t]
        _accumulate(stats[segment], equity, previous, holding)
        _accumulate(stats[total], equity, previous, holding)
        peak = max(peak, equity)
        max_dd = max(max_dd, 1.0 - equity / peak)
        seg_peak = max(seg_peak, equity)
        stats[segment, MAX_DD] = max(stats[segment, MAX_DD], 1.0 - equity / seg_peak)
        if (t + 1) % stride == 0 or t == close.shape[0] - 1:
            curve[point] = equity
            point += 1
        for leg in range(kinds.shape[0]):
            if kinds[leg] >= 0:
                leg_step(kinds[leg], params[leg], state[leg], t, close, base, prefix, prefix_sq,
                         high, low)  # fmt: skip
        target = _wants(kinds, state)
    stats[total, MAX_DD] = max_dd
    return max_dd


@njit(parallel=True)
def run_kernel(  # noqa: PLR0917 - numba kernels take their arrays positionally
    open_: FloatArray,
    close: FloatArray,
    shared: tuple[float, FloatArray, FloatArray, FloatArray, FloatArray],
    kinds: IntArray,
    params: FloatArray,
    costs: FloatArray,
    edges: IntArray,
    stride: int,
    n_points: int,
) -> tuple[FloatArray, FloatArray]:
    """All strategies: stats (strategy, segment | total, column) and sampled equity curves."""
    n_strategies = kinds.shape[0]
    n_segments = edges.shape[0] - 1
    stats = np.zeros((n_strategies, n_segments + 1, STAT_COLUMNS))
    curves = np.zeros((n_strategies, n_points))
    for s in prange(n_strategies):
        _simulate(open_, close, shared, kinds[s], params[s], costs, edges, stats[s], curves[s],
                  stride)  # fmt: skip
    return stats, curves
