"""The pure rules of a generation run: its seed, its shards, which symbol a candidate trades,
which candidates become active, and how the active ones compare with the goals.

A run of N candidates is cut into shards of consecutive candidate indexes; candidate i trades
symbols[i % len(symbols)] and is the i-th strategy `generate_candidates(N, seed)` draws, so any
pod (or an Indexed Job pod) rebuilds exactly the same shard from (seed, N, symbols) alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

MAX_SEED = 2**62


def run_seed(run_key: str) -> int:
    """The generator's seed of a run, from its key: the same day always draws the same batch."""
    digest = hashlib.sha256(run_key.encode()).digest()
    return int.from_bytes(digest[:8], "big") % MAX_SEED


def daily_key(day: date) -> str:
    """The unique key of a day's scheduled run."""
    return f"daily:{day.isoformat()}"


@dataclass(frozen=True)
class ShardRange:
    """Candidates first..last-1 of a run."""

    shard: int
    first: int
    last: int


def shard_ranges(candidates: int, shard_size: int) -> list[ShardRange]:
    """Consecutive ranges of at most `shard_size` candidates covering 0..candidates-1."""
    if candidates < 0 or shard_size < 1:
        raise ValueError("give a candidate count >= 0 and a shard size >= 1")
    return [
        ShardRange(number, first, min(first + shard_size, candidates))
        for number, first in enumerate(range(0, candidates, shard_size))
    ]


def symbol_of(index: int, symbols: Sequence[str]) -> str:
    """The symbol candidate `index` trades (round robin, so every symbol gets its share)."""
    if not symbols:
        raise ValueError("no symbols to trade: store 1m candles first or set STRATEGY_SYMBOLS")
    return symbols[index % len(symbols)]


@dataclass(frozen=True)
class Scored:
    """A ranked candidate as stored: its strategy id, its out-of-sample score (the Sharpe of
    its walk-forward record) and that record's compounded return."""

    strategy_id: int
    score: Decimal
    oos_return: Decimal


def choose_active(scored: Sequence[Scored], limit: int) -> list[int]:
    """The strategy ids to activate: the best `limit` scores among the candidates that made
    money out of sample, with a positive Sharpe and a positive compounded return (ties by id,
    the older first). Both, because a positive mean return per bar can still compound to a
    loss (volatility drag): a candidate that lost out of sample never trades."""
    positive = [s for s in scored if s.score > 0 and s.oos_return > 0]
    best = sorted(positive, key=lambda s: (-s.score, s.strategy_id))
    return [s.strategy_id for s in best[:limit]]


@dataclass(frozen=True)
class Achieved:
    """What one active strategy measured over its backtest."""

    total_return: Decimal
    max_drawdown: Decimal
    win_rate: Decimal | None
    bars: int


@dataclass(frozen=True)
class Goal:
    """One goal: its target, what the active strategies achieve, and whether that meets it."""

    name: str
    target: Decimal
    achieved: Decimal | None
    met: bool | None


BARS_PER_MONTH = Decimal(525_600) / 12
QUANTUM = Decimal("0.000001")


def monthly_return(total_return: Decimal, bars: int) -> Decimal:
    """The constant monthly return that compounds to `total_return` over `bars` 1m bars."""
    months = Decimal(bars) / BARS_PER_MONTH
    growth = 1 + total_return
    if growth <= 0 or months <= 0:
        return Decimal(-1)
    return (growth ** (1 / months) - 1).quantize(QUANTUM)


def evaluate_goals(
    active: Sequence[Achieved], monthly: Decimal, drawdown: Decimal, win_rate: Decimal
) -> list[Goal]:
    """Goals against the active strategies: mean monthly return and mean win rate at least
    their targets, the worst drawdown at most its target (None when nothing is active)."""
    if not active:
        return [
            Goal("monthly_return", monthly, None, None),
            Goal("max_drawdown", drawdown, None, None),
            Goal("win_rate", win_rate, None, None),
        ]
    months = [monthly_return(a.total_return, a.bars) for a in active]
    mean_month = (sum(months, Decimal(0)) / len(months)).quantize(QUANTUM)
    worst = max(a.max_drawdown for a in active)
    rates = [a.win_rate for a in active if a.win_rate is not None]
    mean_rate = (sum(rates, Decimal(0)) / len(rates)).quantize(QUANTUM) if rates else None
    return [
        Goal("monthly_return", monthly, mean_month, mean_month >= monthly),
        Goal("max_drawdown", drawdown, worst, worst <= drawdown),
        Goal("win_rate", win_rate, mean_rate, None if mean_rate is None else mean_rate >= win_rate),
    ]
