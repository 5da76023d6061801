"""Walk-forward ranking: rank candidates on out-of-sample, risk-adjusted results only.

The bars are cut into test windows of `test_bars` (the last may be shorter). Each window after
the first `fit_bars / test_bars` is a fold: its fit window is the `fit_bars` just before it.
In a fold a candidate is SELECTED when its fit window shows a positive Sharpe ratio and at
least `min_fit_trades` opened positions; its out-of-sample record is then the test window's
returns, and flat (zero returns) in folds where it was not selected. That is the equity a
trader following "run it next window only if it did well in the last fit window" would get.
The score is that record's annualised Sharpe, and `oos_z` its t-statistic mean / std x sqrt(T)
over its T out-of-sample bars (flat folds included), which activation deflates for the number of
candidates (`plan.required_z`); candidates with fewer than `min_trades` positions opened in the
selected test windows are not ranked. Each strategy is backtested once over all bars (rules
carry no fitted state), its sums kept per window: see `kernel.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mastertrade.strategy.domain.engine import BacktestRun
from mastertrade.strategy.domain.kernel import BARS, END, ENTRIES, START, STAT_COLUMNS
from mastertrade.strategy.domain.metrics import annualised_ratios

FloatArray = npt.NDArray[np.float64]


class WalkForward(BaseModel):
    """Window sizes and trade-count floors of walk-forward ranking."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    fit_bars: int = Field(ge=1, le=50_000_000, description="fit window, bars (multiple of test)")
    test_bars: int = Field(ge=1, le=50_000_000, description="test window, bars")
    min_trades: int = Field(default=10, ge=0, le=1_000_000, description="out-of-sample floor")
    min_fit_trades: int = Field(default=1, ge=0, le=1_000_000, description="fit-window floor")

    @model_validator(mode="after")
    def _whole_windows(self) -> WalkForward:
        if self.fit_bars % self.test_bars:
            raise ValueError(
                f"fit_bars ({self.fit_bars}) must be a whole number of test windows "
                f"({self.test_bars} bars each), e.g. {self.test_bars * 4}"
            )
        return self

    def edges(self, n_bars: int) -> list[int]:
        """Segment edges for `run_backtests`: one segment per test window."""
        if n_bars < self.fit_bars + self.test_bars:
            raise ValueError(
                f"{n_bars} bars cannot hold one fit window ({self.fit_bars}) and one test "
                f"window ({self.test_bars}): give more bars or smaller windows"
            )
        return [*range(0, n_bars, self.test_bars), n_bars]


@dataclass(frozen=True)
class Ranked:
    """One ranked candidate: its index in the run and its out-of-sample record (annualised
    Sharpe, compounded return, t-statistic of its per-bar returns)."""

    index: int
    score: float
    oos_return: float
    oos_z: float
    oos_trades: int
    folds_selected: int


def _window_sums(segments: FloatArray, first: int, last: int) -> FloatArray:
    """Statistics of consecutive segments first..last-1 added up (START and END carried over)."""
    total: FloatArray = segments[:, first:last].sum(axis=1)
    total[:, START] = segments[:, first, START]
    total[:, END] = segments[:, last - 1, END]
    return total


def rank(run: BacktestRun, walk: WalkForward) -> list[Ranked]:
    """Rank a run's candidates (its segments must be `walk.edges`) best first."""
    segments = run.stats[:, :-1, :]
    n_strategies, n_segments, _ = segments.shape
    fit_windows = walk.fit_bars // walk.test_bars
    if n_segments <= fit_windows:
        raise ValueError("the run has no test window after the first fit window: use walk.edges")
    oos = np.zeros((n_strategies, STAT_COLUMNS))
    growth = np.ones(n_strategies)
    folds = np.zeros(n_strategies, dtype=np.int64)
    for test in range(fit_windows, n_segments):
        fit = _window_sums(segments, test - fit_windows, test)
        fit_sharpe, _ = annualised_ratios(fit, run.config.bars_per_year)
        selected = (fit_sharpe > 0.0) & (fit[:, ENTRIES] >= walk.min_fit_trades)
        window = segments[:, test, :]
        oos += np.where(selected[:, None], window, 0.0)
        oos[:, BARS] += np.where(
            selected, 0.0, window[:, BARS]
        )  # flat folds still count their bars
        growth *= np.where(selected, window[:, END] / window[:, START], 1.0)
        folds += selected
    score, _ = annualised_ratios(oos, run.config.bars_per_year)
    # the Sharpe per bar times sqrt(T): the record's t-statistic, from the same sums
    z = score * np.sqrt(oos[:, BARS] / run.config.bars_per_year)
    eligible = np.flatnonzero((folds > 0) & (oos[:, ENTRIES] >= walk.min_trades))
    order = sorted(eligible, key=lambda i: (-score[i], -growth[i], i))
    return [
        Ranked(
            index=int(i),
            score=float(score[i]),
            oos_return=float(growth[i] - 1.0),
            oos_z=float(z[i]),
            oos_trades=int(oos[i, ENTRIES]),
            folds_selected=int(folds[i]),
        )
        for i in order
    ]
