"""One bar of one family's rule, on that bar's close: the kernel calls `leg_block` block by block.

A leg keeps its own small state row (`state[leg, 0]` is 1.0 while the leg wants to be long; the rest
is the family's running values such as EMAs or the previous crossover gap). The step at bar t
reads only closes up to t and prefix sums up to t + 1 (which cover closes up to t), never a
later bar: the look-ahead test perturbs later bars to prove it. Warm-up: a rule gives no signal
until every value it compares is defined on this bar AND, for crossovers, on the previous one.
A crossover up is `gap > 0` after `gap <= 0`; down is `gap < 0` after `gap >= 0`.

Window sums are differences of running sums (`indicators.py`), which carry the rounding of the
running sum: on perfectly flat closes a gap or a variance that is exactly 0 comes out as a few
1e-8 of either sign, and which sign depends on where the series starts (the backtest's 90 days
or the live window). Every such value within its rounding bound of zero is taken as zero, so
flat closes give no signal in either, and both agree.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from mastertrade.strategy.domain._jit import njit

FloatArray = npt.NDArray[np.float64]
WANT = 0
# a few float64 epsilons: each addition to a running sum rounds by at most half an ulp of it
ROUNDING = 4.0 * 2.220446049250313e-16


@njit()
def _cross(state: FloatArray, leg: int, slot: int, gap: float, armed: bool) -> None:
    """Flip the leg's wish on a sign change of `gap` (once the previous gap is defined)."""
    if armed:
        if gap > 0.0 and state[leg, slot] <= 0.0:
            state[leg, WANT] = 1.0
        elif gap < 0.0 and state[leg, slot] >= 0.0:
            state[leg, WANT] = 0.0
    state[leg, slot] = gap


@njit()
def _enter_exit(state: FloatArray, leg: int, enter: bool, leave: bool) -> None:
    if enter:
        state[leg, WANT] = 1.0
    elif leave:
        state[leg, WANT] = 0.0


@njit()
def _window_sum(prefix: FloatArray, t: int, period: int) -> float:
    return float(prefix[t + 1] - prefix[t + 1 - period])


@njit()
def _sum_error(prefix: FloatArray, t: int, period: int) -> float:
    """A bound on the rounding in `_window_sum`: the window's `period` additions to the
    running sum, each off by at most half an ulp of a value no larger than both ends together."""
    return ROUNDING * (period + 1) * float(abs(prefix[t + 1]) + abs(prefix[t + 1 - period]))


@njit()
def _sma_gap(prefix: FloatArray, t: int, fast: int, slow: int) -> float:
    """Fast mean - slow mean, times fast * slow (> 0): the same sign, no division; 0 when
    within rounding of 0 (flat closes)."""
    fast_sum, slow_sum = _window_sum(prefix, t, fast), _window_sum(prefix, t, slow)
    gap = fast_sum * slow - slow_sum * fast
    error = (_sum_error(prefix, t, fast) * slow + _sum_error(prefix, t, slow) * fast
             + ROUNDING * (abs(fast_sum) * slow + abs(slow_sum) * fast))  # fmt: skip
    return 0.0 if abs(gap) <= error else float(gap)


@njit()
def _sma_cross(p: FloatArray, state: FloatArray, leg: int, t: int, prefix: FloatArray) -> None:
    fast, slow = int(p[leg, 0]), int(p[leg, 1])
    if t >= slow - 1:
        _cross(state, leg, 1, _sma_gap(prefix, t, fast, slow), t >= slow)


@njit()
def _sma_cross_block(  # noqa: PLR0917 - numba kernels take their arrays positionally
    p: FloatArray,
    state: FloatArray,
    leg: int,
    bars: tuple[int, int],
    prefix: FloatArray,
    want: FloatArray,
) -> None:
    """`_sma_cross` over a block with its state in locals: the benchmarked family's hot loop."""
    fast, slow = int(p[leg, 0]), int(p[leg, 1])
    wish, previous, first = state[leg, WANT], state[leg, 1], leg == 0
    for t in range(bars[0], bars[1]):
        if t >= slow - 1:
            gap = _sma_gap(prefix, t, fast, slow)
            if t >= slow:
                if gap > 0.0 and previous <= 0.0:
                    wish = 1.0
                elif gap < 0.0 and previous >= 0.0:
                    wish = 0.0
            previous = gap
        if first:
            want[t - bars[0]] = wish
        elif wish == 0.0:
            want[t - bars[0]] = 0.0
    state[leg, WANT], state[leg, 1] = wish, previous


@njit()
def _ema(previous: float, x: float, span: float, t: int) -> float:
    if t == 0:
        return x
    return previous + 2.0 / (span + 1.0) * (x - previous)


@njit()
def _ema_cross(p: FloatArray, state: FloatArray, leg: int, t: int, x: float) -> None:
    state[leg, 2] = _ema(state[leg, 2], x, p[leg, 0], t)
    state[leg, 3] = _ema(state[leg, 3], x, p[leg, 1], t)
    slow = int(p[leg, 1])
    if t >= slow - 1:
        _cross(state, leg, 1, state[leg, 2] - state[leg, 3], t >= slow)


@njit()
def _rsi(p: FloatArray, state: FloatArray, leg: int, t: int, close: FloatArray) -> None:
    """Wilder's RSI: simple means of the first `period` changes, then Wilder's smoothing."""
    period = int(p[leg, 0])
    if t == 0:
        return
    change = close[t] - close[t - 1]
    gain = change if change > 0.0 else 0.0
    loss = -change if change < 0.0 else 0.0
    if t <= period:
        state[leg, 1] += gain / period
        state[leg, 2] += loss / period
    else:
        state[leg, 1] = (state[leg, 1] * (period - 1) + gain) / period
        state[leg, 2] = (state[leg, 2] * (period - 1) + loss) / period
    if t >= period:
        rsi = (
            100.0 if state[leg, 2] == 0.0 else 100.0 - 100.0 / (1.0 + state[leg, 1] / state[leg, 2])
        )
        _enter_exit(state, leg, rsi < p[leg, 1], rsi > p[leg, 2])


@njit()
def _bollinger(  # noqa: PLR0917 - numba kernels take their arrays positionally
    p: FloatArray,
    state: FloatArray,
    leg: int,
    t: int,
    x: float,
    prefix: FloatArray,
    prefix_sq: FloatArray,
) -> None:
    period = int(p[leg, 0])
    if t >= period - 1:
        mean = _window_sum(prefix, t, period) / period
        mean_error = _sum_error(prefix, t, period) / period + ROUNDING * abs(mean)
        square = _window_sum(prefix_sq, t, period) / period
        variance = square - mean * mean
        variance_error = (_sum_error(prefix_sq, t, period) / period + 2.0 * abs(mean) * mean_error
                          + ROUNDING * (square + mean * mean))  # fmt: skip
        if variance <= variance_error:  # flat closes: no spread, whatever rounding left
            variance = 0.0
        above = x - mean  # within rounding of 0 on flat closes: neither a breakout nor an exit
        error = mean_error + ROUNDING * abs(x)
        _enter_exit(state, leg, above - p[leg, 1] * math.sqrt(variance) > error, above < -error)


@njit()
def _macd(p: FloatArray, state: FloatArray, leg: int, t: int, x: float) -> None:
    state[leg, 2] = _ema(state[leg, 2], x, p[leg, 0], t)
    state[leg, 3] = _ema(state[leg, 3], x, p[leg, 1], t)
    line = state[leg, 2] - state[leg, 3]
    state[leg, 4] = _ema(state[leg, 4], line, p[leg, 2], t)
    ready = int(p[leg, 1]) + int(p[leg, 2]) - 2
    if t >= ready:
        _cross(state, leg, 1, line - state[leg, 4], t > ready)


@njit()
def _momentum(p: FloatArray, state: FloatArray, leg: int, t: int, close: FloatArray) -> None:
    lookback = int(p[leg, 0])
    if t >= lookback:
        change = close[t] / close[t - lookback] - 1.0
        _enter_exit(state, leg, change > p[leg, 1], change < -p[leg, 1])


@njit()
def _range_extreme(table: FloatArray, first: int, last: int, highest: bool) -> float:
    """Max (or min) of the closes first..last inclusive from the sparse table: two reads."""
    length = last - first + 1
    level = 0
    while (2 << level) <= length:
        level += 1
    a = table[level, first]
    b = table[level, last - (1 << level) + 1]
    if highest:
        return float(max(a, b))
    return float(min(a, b))


@njit()
def _donchian(  # noqa: PLR0917 - numba kernels take their arrays positionally
    p: FloatArray,
    state: FloatArray,
    leg: int,
    t: int,
    close: FloatArray,
    high: FloatArray,
    low: FloatArray,
) -> None:
    entry, leave = int(p[leg, 0]), int(p[leg, 1])
    if t >= max(entry, leave):
        upper = _range_extreme(high, t - entry, t - 1, True)
        lower = _range_extreme(low, t - leave, t - 1, False)
        _enter_exit(state, leg, close[t] > upper, close[t] < lower)


@njit()
def _store(want: FloatArray, i: int, state: FloatArray, leg: int, first: bool) -> None:
    """The leg's wish into the block's buffer; later legs AND into what earlier ones wrote."""
    if first:
        want[i] = state[leg, WANT]
    elif state[leg, WANT] == 0.0:
        want[i] = 0.0


@njit()
def leg_block(  # noqa: PLR0912, PLR0917 - one tight loop per family; numba takes arrays positionally
    kind: int,
    p: FloatArray,
    state: FloatArray,
    leg: int,
    bars: tuple[int, int],
    close: FloatArray,
    shared: tuple[float, FloatArray, FloatArray, FloatArray, FloatArray],
    want: FloatArray,
) -> None:
    """Advance one leg (family code `kind`, numbers `p`) over the closes of bars[0]..bars[1]-1,
    writing its wish after each bar into `want` (from index 0). One loop per family, so the
    family is chosen once per block and each loop stays small enough to run at memory speed."""
    base, prefix, prefix_sq, high, low = shared
    first, start = leg == 0, bars[0]
    if kind == 0:
        _sma_cross_block(p, state, leg, bars, prefix, want)
    elif kind == 1:
        for t in range(bars[0], bars[1]):
            _ema_cross(p, state, leg, t, close[t] - base)
            _store(want, t - start, state, leg, first)
    elif kind == 2:
        for t in range(bars[0], bars[1]):
            _rsi(p, state, leg, t, close)
            _store(want, t - start, state, leg, first)
    elif kind == 3:
        for t in range(bars[0], bars[1]):
            _bollinger(p, state, leg, t, close[t] - base, prefix, prefix_sq)
            _store(want, t - start, state, leg, first)
    elif kind == 4:
        for t in range(bars[0], bars[1]):
            _macd(p, state, leg, t, close[t] - base)
            _store(want, t - start, state, leg, first)
    elif kind == 5:
        for t in range(bars[0], bars[1]):
            _momentum(p, state, leg, t, close)
            _store(want, t - start, state, leg, first)
    else:
        for t in range(bars[0], bars[1]):
            _donchian(p, state, leg, t, close, high, low)
            _store(want, t - start, state, leg, first)
