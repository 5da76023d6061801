"""No look-ahead: changing or removing bars after bar k changes nothing decided up to bar k.

A wish formed on bar k's close is filled at bar k + 1's open, so after perturbing every bar from
k + 1 on, the equity at closes 0..k must be bit-for-bit the same, and so must the positions
opened up to and including the fill at bar k + 1's open (a segment edge at k + 2 counts them).
Any rule reading a later close, or an order filled at a price not yet known, breaks this.
"""

from __future__ import annotations

import numpy as np
import pytest

from mastertrade.strategy.domain.engine import BacktestConfig, build_bars, run_backtests
from mastertrade.strategy.domain.families import (
    AllOf,
    BollingerBreakout,
    Donchian,
    EmaCross,
    Macd,
    Momentum,
    RsiReversion,
    SmaCross,
    Strategy,
)
from mastertrade.strategy.domain.kernel import ENTRIES
from tests.strategy.test_engine_reference import random_walk

EVERY_FAMILY: list[Strategy] = [
    SmaCross(fast=3, slow=12),
    EmaCross(fast=4, slow=15),
    RsiReversion(period=6, lower=40, upper=60),
    BollingerBreakout(period=10, width=1.0),
    Macd(fast=3, slow=10, signal=4),
    Momentum(lookback=5, threshold=0.002),
    Donchian(entry=8, exit=5),
    AllOf(parts=(SmaCross(fast=3, slow=9), Momentum(lookback=4, threshold=0.0))),
]
CONFIG = BacktestConfig(fee_rate="0.001", slippage="0.0005", fraction="0.8", curve_points=100_000)


def _run(opens: np.ndarray, closes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    edges = [0, k + 2, len(closes)]
    run = run_backtests(build_bars(opens, closes), EVERY_FAMILY, CONFIG, edges)
    return run.curves[:, : k + 1], run.stats[:, 0, ENTRIES]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("k", [20, 77, 150])
def test_later_bars_do_not_change_earlier_decisions(seed: int, k: int) -> None:
    opens, closes = (np.array(v) for v in random_walk(seed, 240, 0.01))
    curve, entries = _run(opens, closes, k)
    assert entries.sum() > 0, "the families must trade before k for this test to mean anything"
    rng = np.random.default_rng(seed + 1000)
    for scale in (0.5, 2.0):
        changed_open, changed_close = opens.copy(), closes.copy()
        changed_open[k + 1 :] *= scale * np.exp(rng.normal(0, 0.05, len(opens) - k - 1))
        changed_close[k + 1 :] *= scale * np.exp(rng.normal(0, 0.05, len(opens) - k - 1))
        other_curve, other_entries = _run(changed_open, changed_close, k)
        np.testing.assert_array_equal(other_curve, curve)
        np.testing.assert_array_equal(other_entries, entries)


def test_truncating_the_future_changes_nothing_before_it() -> None:
    opens, closes = (np.array(v) for v in random_walk(9, 300, 0.01))
    full = run_backtests(build_bars(opens, closes), EVERY_FAMILY, CONFIG)
    cut = run_backtests(build_bars(opens[:200], closes[:200]), EVERY_FAMILY, CONFIG)
    np.testing.assert_array_equal(full.curves[:, :200], cut.curves)


def test_the_perturbation_does_change_later_bars() -> None:
    """Guards the test above: the perturbed bars do reach the equity after k."""
    opens, closes = (np.array(v) for v in random_walk(4, 240, 0.01))
    k = 100
    run = run_backtests(build_bars(opens, closes), EVERY_FAMILY, CONFIG)
    closes2 = closes.copy()
    closes2[k + 1 :] *= 2.0
    opens2 = opens.copy()
    opens2[k + 1 :] *= 2.0
    other = run_backtests(build_bars(opens2, closes2), EVERY_FAMILY, CONFIG)
    assert not np.array_equal(run.curves[:, k + 1 :], other.curves[:, k + 1 :])
