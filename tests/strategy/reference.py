"""A plain event-loop backtester, written for clarity, that the engine must agree with.

No numpy, no prefix sums, no shared state: at each bar every indicator is recomputed from
`history` (the closes up to and including that bar, a list slice), so this code cannot look
ahead. Indicator definitions are the textbook ones the engine documents (signals.py); the order
conventions are the kernel's (kernel.py): decide on the close, fill at the next open.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

from mastertrade.strategy.domain.families import (
    BollingerBreakout,
    Donchian,
    EmaCross,
    FamilyParams,
    Macd,
    Momentum,
    RsiReversion,
    SmaCross,
    Strategy,
)


def sma(history: list[float], period: int) -> float:
    return sum(history[-period:]) / period


def ema_series(values: list[float], span: int) -> list[float]:
    """EMA at every position: starts at the first value, alpha = 2 / (span + 1)."""
    alpha = 2.0 / (span + 1.0)
    series = [values[0]]
    for x in values[1:]:
        series.append(series[-1] + alpha * (x - series[-1]))
    return series


def ema(values: list[float], span: int) -> float:
    return ema_series(values, span)[-1]


def rsi(history: list[float], period: int) -> float:
    changes = [b - a for a, b in itertools.pairwise(history)]
    avg_gain = sum(max(c, 0.0) for c in changes[:period]) / period
    avg_loss = sum(max(-c, 0.0) for c in changes[:period]) / period
    for c in changes[period:]:
        avg_gain = (avg_gain * (period - 1) + max(c, 0.0)) / period
        avg_loss = (avg_loss * (period - 1) + max(-c, 0.0)) / period
    return 100.0 if avg_loss == 0.0 else 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)


def crossover_gap(leg: FamilyParams, history: list[float]) -> float | None:
    """fast - slow (or MACD - signal) on the last bar of `history`, None while warming up."""
    t = len(history) - 1
    if isinstance(leg, SmaCross):
        return sma(history, leg.fast) - sma(history, leg.slow) if t >= leg.slow - 1 else None
    if isinstance(leg, EmaCross):
        return ema(history, leg.fast) - ema(history, leg.slow) if t >= leg.slow - 1 else None
    assert isinstance(leg, Macd)
    if t < leg.slow + leg.signal - 2:
        return None
    fast, slow = ema_series(history, leg.fast), ema_series(history, leg.slow)
    lines = [f - s for f, s in zip(fast, slow, strict=True)]
    return lines[-1] - ema(lines, leg.signal)


def entry_exit(  # noqa: PLR0911 - one early return per family and warm-up
    leg: FamilyParams, history: list[float]
) -> tuple[bool, bool]:
    """(enter, exit) conditions of a non-crossover family on the last bar of `history`."""
    t, x = len(history) - 1, history[-1]
    if isinstance(leg, RsiReversion):
        if t < leg.period:
            return False, False
        value = rsi(history, leg.period)
        return value < leg.lower, value > leg.upper
    if isinstance(leg, BollingerBreakout):
        if t < leg.period - 1:
            return False, False
        window = history[-leg.period :]
        mean = sum(window) / leg.period
        std = math.sqrt(sum((v - mean) ** 2 for v in window) / leg.period)
        return x > mean + leg.width * std, x < mean
    if isinstance(leg, Momentum):
        if t < leg.lookback:
            return False, False
        change = x / history[t - leg.lookback] - 1.0
        return change > leg.threshold, change < -leg.threshold
    assert isinstance(leg, Donchian)
    if t < max(leg.entry, leg.exit):
        return False, False
    return x > max(history[t - leg.entry : t]), x < min(history[t - leg.exit : t])


def leg_wants(leg: FamilyParams, history: list[float], wanted: bool) -> bool:
    """Whether the leg wants to be long after the last bar of `history`."""
    if isinstance(leg, SmaCross | EmaCross | Macd):
        gap, previous = crossover_gap(leg, history), crossover_gap(leg, history[:-1])
        if gap is None or previous is None:
            return wanted
        if gap > 0.0 and previous <= 0.0:
            return True
        if gap < 0.0 and previous >= 0.0:
            return False
        return wanted
    enter, leave = entry_exit(leg, history)
    return True if enter else (False if leave else wanted)


@dataclass
class ReferenceResult:
    equity: list[float] = field(default_factory=list)
    entry_bars: list[int] = field(default_factory=list)
    entries: int = 0
    closed: int = 0
    wins: int = 0
    exposed: int = 0


def reference_backtest(  # noqa: PLR0917 - mirrors the kernel's inputs one by one
    opens: list[float],
    closes: list[float],
    strategy: Strategy,
    fee: float,
    slippage: float,
    fraction: float,
    cash: float,
) -> ReferenceResult:
    """Run one strategy bar by bar: fill yesterday's wish at today's open, mark at the close."""
    result = ReferenceResult()
    legs = strategy.legs()
    wants = [False] * len(legs)
    holding = target = False
    units = spent = 0.0
    for t in range(len(closes)):
        if target and not holding:
            spent = fraction * cash
            units = spent / (opens[t] * (1.0 + slippage) * (1.0 + fee))
            cash -= spent
            result.entries += 1
            result.entry_bars.append(t)
        elif holding and not target:
            proceeds = units * opens[t] * (1.0 - slippage) * (1.0 - fee)
            cash += proceeds
            units = 0.0
            result.closed += 1
            result.wins += proceeds > spent
        holding = target
        result.equity.append(cash + units * closes[t])
        result.exposed += holding
        history = closes[: t + 1]
        wants = [leg_wants(leg, history, w) for leg, w in zip(legs, wants, strict=True)]
        target = all(wants)
    return result
