"""One bar of one family's rule, on that bar's close: the kernel calls `leg_step` bar by bar.

A leg keeps its own small state row (`state[0]` is 1.0 while the leg wants to be long; the rest
is the family's running values such as EMAs or the previous crossover gap). `leg_step` at bar t
reads only closes up to t and prefix sums up to t + 1 (which cover closes up to t), never a
later bar: the look-ahead test perturbs later bars to prove it. Warm-up: a rule gives no signal
until every value it compares is defined on this bar AND, for crossovers, on the previous one.
A crossover up is `gap > 0` after `gap <= 0`; down is `gap < 0` after `gap >= 0`.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from mastertrade.strategy.domain._jit import njit

FloatArray = npt.NDArray[np.float64]
WANT = 0


@njit()
def _cross(state: FloatArray, slot: int, gap: float, armed: bool) -> None:
    """Flip the leg's wish on a sign change of `gap` (once the previous gap is defined)."""
    if armed:
        if gap > 0.0 and state[slot] <= 0.0:
            state[WANT] = 1.0
        elif gap < 0.0 and state[slot] >= 0.0:
            state[WANT] = 0.0
    state[slot] = gap


@njit()
def _enter_exit(state: FloatArray, enter: bool, leave: bool) -> None:
    if enter:
        state[WANT] = 1.0
    elif leave:
        state[WANT] = 0.0


@njit()
def _window_sum(prefix: FloatArray, t: int, period: int) -> float:
    return float(prefix[t + 1] - prefix[t + 1 - period])


@njit()
def _sma_cross(p: FloatArray, state: FloatArray, t: int, prefix: FloatArray) -> None:
    fast, slow = int(p[0]), int(p[1])
    if t >= slow - 1:
        gap = _window_sum(prefix, t, fast) / fast - _window_sum(prefix, t, slow) / slow
        _cross(state, 1, gap, t >= slow)


@njit()
def _ema(previous: float, x: float, span: float, t: int) -> float:
    if t == 0:
        return x
    return previous + 2.0 / (span + 1.0) * (x - previous)


@njit()
def _ema_cross(p: FloatArray, state: FloatArray, t: int, x: float) -> None:
    state[2] = _ema(state[2], x, p[0], t)
    state[3] = _ema(state[3], x, p[1], t)
    slow = int(p[1])
    if t >= slow - 1:
        _cross(state, 1, state[2] - state[3], t >= slow)


@njit()
def _rsi(p: FloatArray, state: FloatArray, t: int, close: FloatArray) -> None:
    """Wilder's RSI: simple means of the first `period` changes, then Wilder's smoothing."""
    period = int(p[0])
    if t == 0:
        return
    change = close[t] - close[t - 1]
    gain = change if change > 0.0 else 0.0
    loss = -change if change < 0.0 else 0.0
    if t <= period:
        state[1] += gain / period
        state[2] += loss / period
    else:
        state[1] = (state[1] * (period - 1) + gain) / period
        state[2] = (state[2] * (period - 1) + loss) / period
    if t >= period:
        rsi = 100.0 if state[2] == 0.0 else 100.0 - 100.0 / (1.0 + state[1] / state[2])
        _enter_exit(state, rsi < p[1], rsi > p[2])


@njit()
def _bollinger(  # noqa: PLR0917 - numba kernels take their arrays positionally
    p: FloatArray, state: FloatArray, t: int, x: float, prefix: FloatArray, prefix_sq: FloatArray
) -> None:
    period = int(p[0])
    if t >= period - 1:
        mean = _window_sum(prefix, t, period) / period
        variance = max(_window_sum(prefix_sq, t, period) / period - mean * mean, 0.0)
        _enter_exit(state, x > mean + p[1] * math.sqrt(variance), x < mean)


@njit()
def _macd(p: FloatArray, state: FloatArray, t: int, x: float) -> None:
    state[2] = _ema(state[2], x, p[0], t)
    state[3] = _ema(state[3], x, p[1], t)
    line = state[2] - state[3]
    state[4] = _ema(state[4], line, p[2], t)
    ready = int(p[1]) + int(p[2]) - 2
    if t >= ready:
        _cross(state, 1, line - state[4], t > ready)


@njit()
def _momentum(p: FloatArray, state: FloatArray, t: int, close: FloatArray) -> None:
    lookback = int(p[0])
    if t >= lookback:
        change = close[t] / close[t - lookback] - 1.0
        _enter_exit(state, change > p[1], change < -p[1])


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
    p: FloatArray, state: FloatArray, t: int, close: FloatArray, high: FloatArray, low: FloatArray
) -> None:
    entry, leave = int(p[0]), int(p[1])
    if t >= max(entry, leave):
        upper = _range_extreme(high, t - entry, t - 1, True)
        lower = _range_extreme(low, t - leave, t - 1, False)
        _enter_exit(state, close[t] > upper, close[t] < lower)


@njit()
def leg_step(  # noqa: PLR0911, PLR0917 - one arm per family; numba takes arrays positionally
    kind: int,
    p: FloatArray,
    state: FloatArray,
    t: int,
    close: FloatArray,
    base: float,
    prefix: FloatArray,
    prefix_sq: FloatArray,
    high: FloatArray,
    low: FloatArray,
) -> None:
    """Advance one leg (family code `kind`, numbers `p`) over bar t's close."""
    x = close[t] - base
    if kind == 0:
        return _sma_cross(p, state, t, prefix)
    if kind == 1:
        return _ema_cross(p, state, t, x)
    if kind == 2:
        return _rsi(p, state, t, close)
    if kind == 3:
        return _bollinger(p, state, t, x, prefix, prefix_sq)
    if kind == 4:
        return _macd(p, state, t, x)
    if kind == 5:
        return _momentum(p, state, t, close)
    return _donchian(p, state, t, close, high, low)
