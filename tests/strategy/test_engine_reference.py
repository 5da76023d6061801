"""The engine agrees with the plain event-loop reference to the cent, on random data and params.

Prices are a seeded random walk (hypothesis draws the seed, length and volatility), so ties
between indicator values, which float rounding could break either way, do not occur by chance;
the hand-computed cases in test_known_cases.py cover an exact tie on purpose.
"""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mastertrade.strategy.domain.engine import BacktestConfig, build_bars, run_backtests
from mastertrade.strategy.domain.families import (
    AllOf,
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
from mastertrade.strategy.domain.kernel import CLOSED, ENTRIES, EXPOSED, MAX_DD, WINS
from mastertrade.strategy.domain.metrics import annualised_ratios, build_result
from tests.strategy.reference import reference_backtest

CENT = 0.005  # "to the cent": within half a cent of the reference's equity, at every point


def random_walk(seed: int, n: int, volatility: float) -> tuple[list[float], list[float]]:
    """Closes as a geometric random walk; opens near the previous close (gaps both ways)."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, volatility, n)))
    previous = np.concatenate(([100.0], close[:-1]))
    open_ = previous * np.exp(rng.normal(0.0, volatility / 4, n))
    return open_.tolist(), close.tolist()


def _short(low: int, high: int) -> st.SearchStrategy[int]:
    return st.integers(low, high)


@st.composite
def single_families(draw: st.DrawFn) -> FamilyParams:
    """A family with windows short enough to trade often on a few hundred bars."""
    family = draw(st.sampled_from(range(7)))
    if family in (0, 1):
        fast = draw(_short(2, 15))
        cls = SmaCross if family == 0 else EmaCross
        return cls(fast=fast, slow=draw(_short(max(fast + 1, 5), 40)))
    if family == 2:
        return RsiReversion(period=draw(_short(2, 20)), lower=draw(_short(20, 45)),
                            upper=draw(_short(55, 80)))  # fmt: skip
    if family == 3:
        width = draw(st.integers(5, 30)) / 10
        return BollingerBreakout(period=draw(_short(5, 30)), width=width)
    if family == 4:
        fast = draw(_short(2, 10))
        return Macd(fast=fast, slow=draw(_short(fast + 3, 30)), signal=draw(_short(2, 10)))
    if family == 5:
        threshold = draw(st.integers(0, 40)) / 2000
        return Momentum(lookback=draw(_short(2, 30)), threshold=threshold)
    return Donchian(entry=draw(_short(5, 40)), exit=draw(_short(5, 40)))


@st.composite
def strategies(draw: st.DrawFn) -> Strategy:
    first = draw(single_families())
    if not draw(st.booleans()):
        return first
    second = draw(single_families().filter(lambda leg: leg.kind != first.kind))
    return AllOf(parts=(first, second))


configs = st.builds(
    BacktestConfig,
    initial_cash=st.sampled_from([Decimal(1000), Decimal(10_000), Decimal("123456.78")]),
    fee_rate=st.integers(0, 50).map(lambda k: Decimal(k) / 10_000),
    slippage=st.integers(0, 20).map(lambda k: Decimal(k) / 10_000),
    fraction=st.integers(1, 100).map(lambda k: Decimal(k) / 100),
    curve_points=st.just(100_000),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(60, 300),
    volatility=st.sampled_from([0.002, 0.01, 0.03]),
    picked=st.lists(strategies(), min_size=1, max_size=4),
    config=configs,
)
def test_engine_matches_the_event_loop_reference(
    seed: int, n: int, volatility: float, picked: list[Strategy], config: BacktestConfig
) -> None:
    opens, closes = random_walk(seed, n, volatility)
    run = run_backtests(build_bars(opens, closes), picked, config)
    fee, slip, fraction, cash = (float(v) for v in config.costs())
    for i, strategy in enumerate(picked):
        ref = reference_backtest(opens, closes, strategy, fee, slip, fraction, cash)
        total = run.stats[i, -1]
        label = strategy.label()
        assert run.curves[i].shape == (n,), "curve_points above n keeps every bar"
        worst = float(np.max(np.abs(run.curves[i] - np.array(ref.equity))))
        assert worst < CENT, f"{label}: equity off by {worst}"
        assert (total[ENTRIES], total[CLOSED], total[WINS]) == (
            ref.entries, ref.closed, ref.wins
        ), label  # fmt: skip
        assert total[EXPOSED] == ref.exposed, label
        assert math.isclose(total[MAX_DD], _max_drawdown(ref.equity), abs_tol=1e-9), label
        sharpe, _ = annualised_ratios(total, config.bars_per_year)
        assert math.isclose(float(sharpe), _sharpe(ref.equity, cash, config.bars_per_year),
                            rel_tol=1e-6, abs_tol=1e-6), label  # fmt: skip
        result = build_result(run, i)
        assert abs(float(result.final_equity) - ref.equity[-1]) <= CENT, label


def _max_drawdown(equity: list[float]) -> float:
    peak, worst = -math.inf, 0.0
    for value in equity:
        peak = max(peak, value)
        worst = max(worst, 1.0 - value / peak)
    return worst


def _sharpe(equity: list[float], cash: float, bars_per_year: int) -> float:
    returns = [b / a - 1.0 for a, b in zip([cash, *equity], equity, strict=False)]
    mean = sum(returns) / len(returns)
    std = math.sqrt(sum((r - mean) ** 2 for r in returns) / len(returns))
    return 0.0 if std == 0.0 else mean / std * math.sqrt(bars_per_year)
