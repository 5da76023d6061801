"""Indicator inputs shared by every strategy of a run, built once per price series.

Nothing here is per strategy: a rolling mean or variance of ANY window is two reads of a prefix
sum, and a rolling maximum or minimum of any window two reads of a sparse table. That is what
keeps memory flat in the number of strategies (DESIGN.md §8). Prefix sums are taken over
`close - close[0]` so that their magnitude, and so their rounding, stays small; what rounding
is left depends on where the series starts, so `signals.py` takes a value within its rounding
bound of zero as zero (flat closes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mastertrade.strategy.domain._jit import njit

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class SharedIndicators:
    """Prefix sums of the shifted closes and their squares, and optional max/min sparse tables."""

    base: float
    prefix: FloatArray
    prefix_sq: FloatArray
    max_table: FloatArray
    min_table: FloatArray


@njit()
def _prefix_sums(close: FloatArray, base: float) -> tuple[FloatArray, FloatArray]:
    n = close.shape[0]
    prefix = np.zeros(n + 1)
    prefix_sq = np.zeros(n + 1)
    for t in range(n):
        x = close[t] - base
        prefix[t + 1] = prefix[t] + x
        prefix_sq[t + 1] = prefix_sq[t] + x * x
    return prefix, prefix_sq


@njit()
def _sparse_tables(close: FloatArray, levels: int) -> tuple[FloatArray, FloatArray]:
    """Row j holds the max (min) of close[i : i + 2**j] (rows stop where the window would end)."""
    n = close.shape[0]
    high = np.empty((levels, n))
    low = np.empty((levels, n))
    high[0, :] = close
    low[0, :] = close
    for j in range(1, levels):
        half = 1 << (j - 1)
        for i in range(n - (1 << j) + 1):
            high[j, i] = max(high[j - 1, i], high[j - 1, i + half])
            low[j, i] = min(low[j - 1, i], low[j - 1, i + half])
    return high, low


def build_shared_indicators(close: FloatArray, max_channel: int) -> SharedIndicators:
    """The shared inputs for a close series; `max_channel` is the longest Donchian window used
    (0 when no strategy needs one: then the sparse tables are empty)."""
    base = float(close[0])
    prefix, prefix_sq = _prefix_sums(close, base)
    if max_channel > 0:
        high, low = _sparse_tables(close, int(max_channel).bit_length())
    else:
        high = low = np.empty((0, close.shape[0]))
    return SharedIndicators(base, prefix, prefix_sq, high, low)
