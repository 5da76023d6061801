"""Walk-forward ranking (scores and t-statistics) agrees with the same rule applied by hand to
per-bar reference equity."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from mastertrade.strategy.domain.engine import BacktestConfig, build_bars, run_backtests
from mastertrade.strategy.domain.generator import generate_candidates
from mastertrade.strategy.domain.walkforward import WalkForward, rank
from tests.strategy.reference import reference_backtest
from tests.strategy.test_engine_reference import random_walk
from tests.strategy.test_lookahead import EVERY_FAMILY

CONFIG = BacktestConfig(bars_per_year=1000)


def _sharpe(returns: list[float]) -> float:
    mean = sum(returns) / len(returns)
    std = math.sqrt(max(sum(r * r for r in returns) / len(returns) - mean * mean, 0.0))
    return 0.0 if std == 0.0 else mean / std * math.sqrt(CONFIG.bars_per_year)


def _t_statistic(returns: list[float]) -> float:
    """mean / std x sqrt(T) of T returns (population std), as the deflated rule reads it."""
    return _sharpe(returns) / math.sqrt(CONFIG.bars_per_year) * math.sqrt(len(returns))


def _by_hand(
    equity: list[float], entries_at: list[int], walk: WalkForward
) -> tuple[float, float, int, int]:
    """(score, t-statistic, oos trades, folds selected) of one candidate, straight from the
    rule's wording."""
    cash = float(CONFIG.initial_cash)
    returns = [b / a - 1.0 for a, b in zip([cash, *equity], equity, strict=False)]
    edges = walk.edges(len(equity))
    fits = walk.fit_bars // walk.test_bars
    oos: list[float] = []
    trades = folds = 0
    for test in range(fits, len(edges) - 1):
        start, end = edges[test], edges[test + 1]
        fit_start = edges[test - fits]
        fit_trades = sum(fit_start <= t < start for t in entries_at)
        if _sharpe(returns[fit_start:start]) > 0 and fit_trades >= walk.min_fit_trades:
            oos += returns[start:end]
            trades += sum(start <= t < end for t in entries_at)
            folds += 1
        else:
            oos += [0.0] * (end - start)
    return _sharpe(oos), _t_statistic(oos), trades, folds


def test_ranking_follows_the_walk_forward_rule() -> None:
    opens, closes = random_walk(11, 400, 0.01)
    walk = WalkForward(fit_bars=100, test_bars=50, min_trades=2, min_fit_trades=1)
    candidates = EVERY_FAMILY
    run = run_backtests(build_bars(opens, closes), candidates, CONFIG, walk.edges(len(closes)))
    ranked = {r.index: r for r in rank(run, walk)}
    for i, candidate in enumerate(candidates):
        ref = reference_backtest(opens, closes, candidate, 0.001, 0.0, 1.0, 1e4)
        score, z, trades, folds = _by_hand(ref.equity, ref.entry_bars, walk)
        if folds == 0 or trades < walk.min_trades:
            assert i not in ranked, candidate.label()
            continue
        got = ranked[i]
        assert (got.oos_trades, got.folds_selected) == (trades, folds), candidate.label()
        assert math.isclose(got.score, score, rel_tol=1e-7, abs_tol=1e-9), candidate.label()
        assert math.isclose(got.oos_z, z, rel_tol=1e-7, abs_tol=1e-9), candidate.label()
    scores = [r.score for r in rank(run, walk)]
    assert len(scores) >= 3, "enough candidates must be ranked for the test to mean anything"
    assert scores == sorted(scores, reverse=True)


def test_min_trades_keeps_inactive_candidates_out() -> None:
    opens, closes = random_walk(3, 300, 0.01)
    walk = WalkForward(fit_bars=100, test_bars=100, min_trades=1_000_000)
    run = run_backtests(build_bars(opens, closes), generate_candidates(5, seed=2), CONFIG,
                        walk.edges(300))  # fmt: skip
    assert rank(run, walk) == []


def test_windows_are_checked() -> None:
    with pytest.raises(ValidationError, match="whole number of test windows"):
        WalkForward(fit_bars=150, test_bars=100)
    with pytest.raises(ValueError, match="cannot hold one fit window"):
        WalkForward(fit_bars=200, test_bars=100).edges(250)
    assert WalkForward(fit_bars=200, test_bars=100).edges(450) == [0, 100, 200, 300, 400, 450]
    assert np.all(np.diff(WalkForward(fit_bars=2, test_bars=1).edges(5)) == 1)
