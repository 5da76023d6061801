"""The backtest kernel: every strategy in parallel (`prange`), each one a loop over the bars.

Bars go in blocks of BLOCK: first the rules' wishes after each close of the block (one tight
loop per family, `signals.leg_block`), then the order and accounting loop over the same bars.

Timing convention (no look-ahead): the rules see bar t's close; the position they ask for is
filled at bar t + 1's OPEN; equity is marked at every close. A wish on the last bar is never
filled. Orders: a buy spends `fraction` of the cash (equal to equity, since a strategy is flat
when it buys) on units at `open * (1 + slippage)`, the fee (`fee_rate` of the traded value)
included in what it spends; a sell gets `units * open * (1 - slippage) * (1 - fee_rate)`.
A round trip wins when the sale brings back more than the buy spent.

Per strategy only O(segments + curve points) numbers are written, whatever the bar count:
the sums behind every metric per segment (walk-forward windows) and for the whole run, the
whole run's maximum drawdown, and the equity curve sampled every `stride` bars.

numba's on-disk cache keys each compiled function on its own file's contents only, while the
compiled kernel holds the signals it calls: after a change to `signals.py` or `indicators.py`
a cached kernel would go on running the old rules, so bump SIGNALS_REVISION with any such change.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import prange

from mastertrade.strategy.domain._jit import njit
from mastertrade.strategy.domain.signals import leg_block

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Columns of the per-segment statistics.
START, END, SUM_R, SUM_R2, SUM_DOWN2, BARS, ENTRIES, CLOSED, WINS, EXPOSED, MAX_DD = range(11)
STAT_COLUMNS = 11
STATE_SLOTS = 8
BLOCK = 2048  # bars whose wishes are computed ahead of the order loop (16 KiB of float64)
SIGNALS_REVISION = 2  # 2: window sums within rounding of zero taken as zero (flat closes)


@njit()
def _total_row(stats: FloatArray, max_dd: float) -> None:
    """The whole run's row: segment sums added up, first START, last END, the run's drawdown."""
    total = stats.shape[0] - 1
    for column in (SUM_R, SUM_R2, SUM_DOWN2, BARS, ENTRIES, CLOSED, WINS, EXPOSED):
        stats[total, column] = stats[:total, column].sum()
    stats[total, START] = stats[0, START]
    stats[total, END] = stats[total - 1, END]
    stats[total, MAX_DD] = max_dd


@njit()
def _simulate(  # noqa: PLR0912, PLR0915, PLR0917 - one hot loop kept whole, in locals
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
) -> None:
    """Run one strategy over every bar, filling its `stats` rows and `curve`.

    The hot loop keeps its sums in local scalars, written out once per segment, and divides
    only when it must (a flat bar's return is exactly 0; a drawdown is computed when it is a
    new maximum): on 2 cores the bar loop, not memory, is the cost.
    """
    state = np.zeros((kinds.shape[0], STATE_SLOTS))
    want = np.zeros(BLOCK)
    fee, slip, fraction = costs[0], costs[1], costs[2]
    cash = equity = peak = costs[3]
    units = spent = 0.0
    max_dd, holding, target, point, countdown = 0.0, False, False, 0, stride
    for segment in range(edges.shape[0] - 1):
        stats[segment, START] = seg_peak = equity
        seg_dd = sum_r = sum_r2 = sum_down2 = 0.0
        exposed = 0
        for first in range(edges[segment], edges[segment + 1], BLOCK):
            last = min(first + BLOCK, edges[segment + 1])
            # the rules' wishes after each close of the block: they never depend on fills
            for leg in range(kinds.shape[0]):
                if kinds[leg] >= 0:
                    leg_block(kinds[leg], params, state, leg, (first, last), close, shared, want)
            for t in range(first, last):
                if target and not holding:
                    spent = fraction * cash
                    units = spent / (open_[t] * (1.0 + slip) * (1.0 + fee))
                    cash -= spent
                    stats[segment, ENTRIES] += 1.0
                elif holding and not target:
                    proceeds = units * open_[t] * (1.0 - slip) * (1.0 - fee)
                    cash += proceeds
                    units = 0.0
                    stats[segment, CLOSED] += 1.0
                    stats[segment, WINS] += 1.0 if proceeds > spent else 0.0
                holding = target
                previous = equity
                equity = cash + units * close[t]
                if equity != previous:
                    r = equity / previous - 1.0
                    sum_r += r
                    sum_r2 += r * r
                    if r < 0.0:
                        sum_down2 += r * r
                exposed += holding
                if equity >= peak:
                    peak = equity
                elif peak - equity > max_dd * peak:
                    max_dd = 1.0 - equity / peak
                if equity >= seg_peak:
                    seg_peak = equity
                elif seg_peak - equity > seg_dd * seg_peak:
                    seg_dd = 1.0 - equity / seg_peak
                countdown -= 1
                if countdown == 0 or t == close.shape[0] - 1:
                    curve[point] = equity
                    point += 1
                    countdown = stride
                target = want[t - first] != 0.0
        stats[segment, END] = equity
        stats[segment, SUM_R], stats[segment, SUM_R2] = sum_r, sum_r2
        stats[segment, SUM_DOWN2], stats[segment, MAX_DD] = sum_down2, seg_dd
        stats[segment, BARS] = edges[segment + 1] - edges[segment]
        stats[segment, EXPOSED] = exposed
    _total_row(stats, max_dd)


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
        local_stats = np.zeros((n_segments + 1, STAT_COLUMNS))
        local_curve = np.zeros(n_points)
        _simulate(open_, close, shared, kinds[s], params[s], costs, edges, local_stats,
                  local_curve, stride)  # fmt: skip
        stats[s] = local_stats
        curves[s] = local_curve
    return stats, curves
