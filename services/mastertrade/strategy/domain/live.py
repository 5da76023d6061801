"""Live decisions of active strategies, made by the same engine as their backtests.

After each closed candle the strategies of a symbol are run over the recent closes with one
extra bar appended (opened and closed at the last close): the engine fills a wish made on bar t
at bar t + 1's open, so a position opened in that extra bar is exactly "the rule turned long on
the latest candle" (a buy) and one closed there "the rule turned flat" (a sell), and a position
held during it is "the rule is long now". Live and backtest can therefore never disagree about
what a rule wants.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from mastertrade.strategy.domain.engine import BacktestConfig, build_bars, run_backtests
from mastertrade.strategy.domain.families import Strategy
from mastertrade.strategy.domain.kernel import CLOSED, ENTRIES, EXPOSED

Side = Literal["buy", "sell"]
LIVE_CONFIG = BacktestConfig(fee_rate=0, slippage=0, curve_points=2)


@dataclass(frozen=True)
class Decision:
    """What one strategy asks for after the latest close (None: nothing changes), and whether
    its rule is long then (in a position, whether or not it entered on this close)."""

    index: int
    side: Side | None
    long: bool = False


def latest_decisions(
    opens: Sequence[float], closes: Sequence[float], strategies: Sequence[Strategy]
) -> list[Decision]:
    """Each strategy's order (buy, sell or none) at the open after the last of the bars."""
    if not strategies:
        return []
    last = float(closes[-1])
    bars = build_bars(np.append(opens, last), np.append(closes, last))
    n_bars = len(bars)
    run = run_backtests(bars, strategies, LIVE_CONFIG, [0, n_bars - 1, n_bars])
    decisions = []
    for index in range(len(strategies)):
        final = run.stats[index, 1]  # the appended bar's segment
        side: Side | None = None
        if final[ENTRIES] > 0:
            side = "buy"
        elif final[CLOSED] > 0:
            side = "sell"
        decisions.append(Decision(index, side, long=final[EXPOSED] > 0))
    return decisions


def latest_changes(
    opens: Sequence[float],
    closes: Sequence[float],
    strategies: Sequence[Strategy],
    lookback: int,
) -> list[int | None]:
    """For each strategy, the index of the latest of the last `lookback` closes on which its
    rule changed (the close whose candle signalled it, live), None when none did. One run with
    a segment per recent bar: a bar whose segment entered or left was filled on the change of
    the close before it."""
    if not strategies:
        return []
    n_closes = len(closes)
    last = float(closes[-1])
    bars = build_bars(np.append(opens, last), np.append(closes, last))
    first = max(1, n_closes + 1 - lookback)
    edges = [0, *range(first, n_closes + 2)]
    run = run_backtests(bars, strategies, LIVE_CONFIG, edges)
    changes: list[int | None] = []
    for index in range(len(strategies)):
        segments = run.stats[index, 1 : len(edges) - 1]
        moved = np.flatnonzero(segments[:, ENTRIES] + segments[:, CLOSED] > 0)
        changes.append(int(first + moved[-1] - 1) if moved.size else None)
    return changes
