"""One shard of a generation run, computed: its candidates drawn, backtested per symbol over the
run's bars, ranked walk-forward, and turned into Decimal records ready to store.

Pure (numpy and the engine only): the service loads the bars and stores the results. Memory is
the engine's, per symbol: O(shard size x (windows + curve points)), whatever the bar count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from mastertrade.strategy.domain.engine import BacktestConfig, Bars, run_backtests
from mastertrade.strategy.domain.families import Strategy
from mastertrade.strategy.domain.generator import generate_candidates
from mastertrade.strategy.domain.metrics import RATIO, BacktestResult, build_result
from mastertrade.strategy.domain.plan import ShardRange, symbol_of
from mastertrade.strategy.domain.walkforward import WalkForward, rank


@dataclass(frozen=True)
class CandidateResult:
    """A backtested candidate: where it sits in the run, what it is, what it measured.
    `score` (out-of-sample Sharpe), `oos_return` and `oos_z` (the out-of-sample t-statistic,
    to 6 decimals) are None when it was not ranked (too few out-of-sample trades, or never
    selected by its fit windows)."""

    index: int
    symbol: str
    strategy: Strategy
    bars: int
    result: BacktestResult
    score: Decimal | None
    oos_return: Decimal | None
    oos_z: float | None


def shard_candidates(
    seed: int,
    candidates: int,
    shard: ShardRange,
    symbols: Sequence[str],
    drawn: Sequence[Strategy] | None = None,
) -> list[tuple[int, str, Strategy]]:
    """The shard's (index, symbol, strategy) triples, the same on every pod; `drawn` is the
    run's whole `generate_candidates(candidates, seed)` when the caller keeps it across shards."""
    every = generate_candidates(candidates, seed) if drawn is None else drawn
    return [
        (index, symbol_of(index, symbols), every[index]) for index in range(shard.first, shard.last)
    ]


def compute_shard(
    members: Sequence[tuple[int, str, Strategy]],
    bars: Mapping[str, Bars],
    config: BacktestConfig,
    walk: WalkForward,
) -> list[CandidateResult]:
    """Backtest and rank the shard's candidates, symbol by symbol."""
    results: list[CandidateResult] = []
    for symbol in sorted({symbol for _, symbol, _ in members}):
        group = [(index, strategy) for index, s, strategy in members if s == symbol]
        symbol_bars = bars[symbol]
        run = run_backtests(
            symbol_bars, [s for _, s in group], config, walk.edges(len(symbol_bars))
        )
        ranked = {r.index: r for r in rank(run, walk)}
        for position, (index, strategy) in enumerate(group):
            found = ranked.get(position)
            results.append(
                CandidateResult(
                    index=index,
                    symbol=symbol,
                    strategy=strategy,
                    bars=len(symbol_bars),
                    result=build_result(run, position),
                    score=None if found is None else _ratio(found.score),
                    oos_return=None if found is None else _ratio(found.oos_return),
                    oos_z=None if found is None else round(found.oos_z, 6),
                )
            )
    return sorted(results, key=lambda r: r.index)


def _ratio(value: float) -> Decimal:
    return Decimal(repr(float(value))).quantize(RATIO)
