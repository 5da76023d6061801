"""The pure rules of a generation run: shards cover every candidate once, a shard is rebuilt
the same on any pod, only candidates that made money out of sample by more than the luckiest of
the run's candidates would by chance are activated, goals compare what the active strategies
achieve with their targets."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mastertrade.core.settings import SettingsError, load_settings
from mastertrade.strategy.domain.batch import shard_candidates
from mastertrade.strategy.domain.generator import generate_candidates
from mastertrade.strategy.domain.plan import (
    Achieved,
    Scored,
    choose_active,
    daily_key,
    evaluate_goals,
    expected_max_z,
    monthly_return,
    required_z,
    run_seed,
    shard_ranges,
)
from mastertrade.strategy.settings import StrategySettings


@given(st.integers(0, 5000), st.integers(1, 700))
def test_shards_cover_every_candidate_once(candidates: int, size: int) -> None:
    shards = shard_ranges(candidates, size)
    covered = [i for shard in shards for i in range(shard.first, shard.last)]
    assert covered == list(range(candidates))
    assert [s.shard for s in shards] == list(range(len(shards)))
    assert all(0 < s.last - s.first <= size for s in shards)


def test_a_shard_is_the_same_slice_of_the_run_on_any_pod() -> None:
    seed = run_seed(daily_key(date(2026, 12, 2)))
    assert seed == run_seed("daily:2026-12-02") and seed != run_seed("daily:2026-12-03")
    whole = generate_candidates(50, seed)
    symbols = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    rebuilt = [
        member
        for shard in shard_ranges(50, 7)
        for member in shard_candidates(seed, 50, shard, symbols)
    ]
    assert [m[0] for m in rebuilt] == list(range(50))
    assert [m[2] for m in rebuilt] == whole
    assert [m[1] for m in rebuilt[:4]] == ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BTCUSDT"]


OFF = Decimal(0)  # STRATEGY_MIN_CONFIDENCE=0: the money rules alone
CONFIDENT = Decimal("0.95")
Z = 10.0  # a t-statistic far beyond any run's threshold


def test_only_the_best_positive_scores_become_active() -> None:
    gained = Decimal("0.02")
    scored = [
        Scored(1, Decimal("0.5"), gained, Z),
        Scored(2, Decimal("2.0"), gained, Z),
        Scored(3, Decimal("-1"), Decimal("-0.01"), -Z),
        Scored(4, Decimal("0"), Decimal("0"), 0.0),
        Scored(5, Decimal("2.0"), gained, Z),
        Scored(6, Decimal("1.5"), gained, Z),
    ]
    for confidence in (OFF, CONFIDENT):
        assert choose_active(scored, 3, 6, confidence) == [2, 5, 6]
        assert choose_active(scored, 10, 6, confidence) == [2, 5, 6, 1]
        assert choose_active([Scored(1, Decimal("-0.1"), gained, Z)], 10, 1, confidence) == []


def test_a_candidate_that_lost_out_of_sample_never_becomes_active() -> None:
    # seen with `make up`: Sharpe 0.10 out of sample (a positive mean return per bar) while the
    # record compounded to -0.15 % (volatility drag); the best score of its run
    drag = Scored(7, Decimal("0.10"), Decimal("-0.0015"), Z)
    flat = Scored(8, Decimal("0.05"), Decimal("0"), Z)
    modest = Scored(9, Decimal("0.04"), Decimal("0.001"), Z)
    assert choose_active([drag, flat, modest], 3, 3, OFF) == [9]
    assert choose_active([drag, flat], 3, 3, OFF) == []


def test_a_candidate_needs_the_t_statistic_the_luckiest_of_the_run_would_show() -> None:
    """z >= E_max(N) + Φ⁻¹(confidence): 4.70 for 500 candidates at 95 %, 1.64 for one."""
    gained = Decimal("0.01")
    bar = required_z(500, CONFIDENT)
    assert bar == pytest.approx(expected_max_z(500) + 1.644854, abs=1e-6)
    assert 4.69 < bar < 4.71
    below = Scored(1, Decimal("9.0"), gained, bar - 1e-6)
    above = Scored(2, Decimal("5.0"), gained, bar + 1e-6)
    assert choose_active([below, above], 3, 500, CONFIDENT) == [2]
    # the same t-statistics in a run of 10 candidates clear the lower bar of fewer trials
    assert choose_active([below, above], 3, 10, CONFIDENT) == [1, 2]
    # one candidate is no selection: only its own chance of a positive record counts
    assert expected_max_z(1) == 0.0
    assert required_z(1, CONFIDENT) == pytest.approx(1.644854, abs=1e-6)
    assert choose_active([Scored(3, Decimal("1"), gained, 1.64)], 3, 1, CONFIDENT) == []
    assert choose_active([Scored(3, Decimal("1"), gained, 1.65)], 3, 1, CONFIDENT) == [3]


def test_confidence_0_is_the_old_rule_and_a_candidate_without_t_needs_it() -> None:
    """A candidate stored without a t-statistic (by a pod of the version before, in a run that
    spans the upgrade) is chosen by the old rule alone."""
    gained = Decimal("0.01")
    lucky = Scored(1, Decimal("0.3"), gained, 0.01)
    older = Scored(2, Decimal("9.0"), gained, None)  # stored before the t-statistic was
    assert choose_active([lucky, older], 3, 500, OFF) == [2, 1]
    assert choose_active([lucky, older], 3, 500, CONFIDENT) == []


def test_monthly_return_compounds_to_the_total() -> None:
    month = 525_600 // 12
    assert monthly_return(Decimal("0.21"), 2 * month) == Decimal("0.100000")
    assert monthly_return(Decimal("0"), 5 * month) == Decimal("0.000000")
    assert monthly_return(Decimal("-1"), month) == Decimal(-1)


def test_goals_against_the_active_strategies() -> None:
    month = 525_600 // 12
    active = [
        Achieved(Decimal("0.04"), Decimal("0.10"), Decimal("0.6"), month),
        Achieved(Decimal("0.02"), Decimal("0.20"), None, month),
    ]
    goals = {
        g.name: g for g in evaluate_goals(active, Decimal("0.03"), Decimal("0.15"), Decimal("0.5"))
    }
    assert goals["monthly_return"].achieved == Decimal("0.030000")
    assert goals["monthly_return"].met is True
    assert goals["max_drawdown"].achieved == Decimal("0.20") and goals["max_drawdown"].met is False
    assert goals["win_rate"].achieved == Decimal("0.600000") and goals["win_rate"].met is True
    empty = evaluate_goals([], Decimal("0.03"), Decimal("0.15"), Decimal("0.5"))
    assert all(g.achieved is None and g.met is None for g in empty)


def test_bad_shard_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="shard size"):
        shard_ranges(10, 0)


def test_walk_forward_settings_are_checked_when_loaded() -> None:
    env = {"STRATEGY_FIT_DAYS": "10", "STRATEGY_TEST_DAYS": "3"}
    with pytest.raises(SettingsError, match="whole number of"):
        load_settings(StrategySettings, "strategy_service", (), env)
    env = {"STRATEGY_HISTORY_DAYS": "20", "STRATEGY_FIT_DAYS": "28", "STRATEGY_TEST_DAYS": "7"}
    with pytest.raises(SettingsError, match="must hold one fit"):
        load_settings(StrategySettings, "strategy_service", (), env)
    settings = load_settings(StrategySettings, "strategy_service", (), {})
    assert settings.walk_forward().fit_bars == 28 * 1440


def test_min_confidence_is_a_probability_below_1() -> None:
    def confidence(value: str | None) -> Decimal:
        env = {} if value is None else {"STRATEGY_MIN_CONFIDENCE": value}
        return load_settings(StrategySettings, "strategy_service", (), env).strategy_min_confidence

    assert confidence(None) == Decimal("0.95")
    assert confidence("0") == 0 and confidence("0.999") == Decimal("0.999")
    top = confidence("0.999999")  # the most a float's Φ⁻¹ still has an answer for
    assert required_z(500, top) == pytest.approx(3.0525 + 4.7534, abs=1e-3)
    # 1 - 1e-17 is 1.0 as a float, where Φ⁻¹ has none: refused, not a run stuck at its end
    for bad in ("1", "-0.1", "nan", "0.99999999999999999"):
        with pytest.raises(SettingsError, match="STRATEGY_MIN_CONFIDENCE"):
            confidence(bad)
