"""The pure rules of a generation run: its seed, its shards, which symbol a candidate trades,
which candidates become active, and how the active ones compare with the goals.

A run of N candidates is cut into shards of consecutive candidate indexes; candidate i trades
symbols[i % len(symbols)] and is the i-th strategy `generate_candidates(N, seed)` draws, so any
pod (or an Indexed Job pod) rebuilds exactly the same shard from (seed, N, symbols) alone.

Activation deflates for the N trials (Bailey & López de Prado, "The Deflated Sharpe Ratio",
2014): the best of N out-of-sample records is itself an in-sample pick, so a candidate must beat
what the luckiest of N candidates without skill would show (`required_z`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from statistics import NormalDist

MAX_SEED = 2**62
EULER_GAMMA = 0.5772156649
NORMAL = NormalDist()


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
    its walk-forward record), that record's compounded return, and its t-statistic
    `oos_z` = mean / std x sqrt(bars) of the record's per-bar returns (None when stored by
    code older than the deflated rule: such a candidate is chosen only at confidence 0)."""

    strategy_id: int
    score: Decimal
    oos_return: Decimal
    oos_z: float | None


def expected_max_z(trials: int) -> float:
    """The expected maximum of `trials` independent standard normal draws (the t-statistic of
    the luckiest of that many candidates without skill), Bailey & López de Prado's
    approximation (1 - g) Φ⁻¹(1 - 1/N) + g Φ⁻¹(1 - 1/(N e)), g the Euler-Mascheroni constant;
    0 for one trial (or none)."""
    if trials <= 1:
        return 0.0
    return (1 - EULER_GAMMA) * NORMAL.inv_cdf(1 - 1 / trials) + EULER_GAMMA * NORMAL.inv_cdf(
        1 - 1 / (trials * math.e)
    )


def required_z(trials: int, confidence: Decimal) -> float:
    """The out-of-sample t-statistic a candidate of a run of `trials` needs for its deflated
    Sharpe ratio to reach `confidence` (0 <= confidence < 1; 0: no threshold, -inf).

    DSR = Φ((SR - E[max SR]) / s), s² = (1 - skew SR + (kurtosis - 1) / 4 SR²) / (T - 1), for
    a per-bar Sharpe SR over T bars. Per 1m bar SR is some 0.01, so the skewness and kurtosis
    terms are negligible next to 1 (and the kernel's sums hold no third or fourth moments to
    estimate them anyway): with s² = 1/T, in t-statistics z = SR sqrt(T), DSR = Φ(z - E_max(N)),
    and DSR >= confidence is z >= E_max(N) + Φ⁻¹(confidence)."""
    if confidence == 0:
        return -math.inf
    # The null variance 1/T, not the spread of the run's own Sharpe ratios: the candidates come
    # from a handful of families on the same candles and move together, so their spread is far
    # narrower than that of independent trials and would set the bar too low. Counting all N as
    # independent overstates the trials instead, erring on the side of activating nothing.
    return expected_max_z(trials) + NORMAL.inv_cdf(float(confidence))


def qualified(scored: Sequence[Scored], trials: int, confidence: Decimal) -> list[Scored]:
    """The candidates that may become active, best first (ties by id, the older first): a
    positive out-of-sample Sharpe and compounded return, and a t-statistic of at least
    `required_z(trials, confidence)` (at confidence 0 none is needed, so a candidate stored
    without one, by code older than the rule, may still be chosen). Both money rules, because a
    positive mean return per bar can still compound to a loss (volatility drag): a candidate
    that lost out of sample never trades."""
    bar = required_z(trials, confidence)

    def beats_luck(s: Scored) -> bool:
        return confidence == 0 or (s.oos_z is not None and s.oos_z >= bar)

    passing = [s for s in scored if s.score > 0 and s.oos_return > 0 and beats_luck(s)]
    return sorted(passing, key=lambda s: (-s.score, s.strategy_id))


def choose_active(
    scored: Sequence[Scored], limit: int, trials: int, confidence: Decimal
) -> list[int]:
    """The strategy ids to activate: the best `limit` of the `qualified` candidates of a run of
    `trials` candidates (every one drawn, ranked or not)."""
    return [s.strategy_id for s in qualified(scored, trials, confidence)[:limit]]


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
