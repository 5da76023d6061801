"""Live decisions agree with the plain event-loop reference: after the last close a strategy
buys exactly when its rule turned long on that close while it was flat, and sells exactly when
it turned flat while holding (holding = what the rule wanted one close earlier); and it is long
exactly when its rule wants a position after that close."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from mastertrade.strategy.domain.engine import BacktestConfig, build_bars, run_backtests
from mastertrade.strategy.domain.families import (
    AllOf,
    BollingerBreakout,
    Momentum,
    SmaCross,
    Strategy,
)
from mastertrade.strategy.domain.kernel import ENTRIES
from mastertrade.strategy.domain.live import latest_changes, latest_decisions
from mastertrade.strategy.live import LIVE_BARS, LiveTrader, SymbolBars
from tests.strategy.reference import leg_wants
from tests.strategy.test_engine_reference import random_walk
from tests.strategy.test_lookahead import EVERY_FAMILY


def reference_wishes(strategy: Strategy, closes: list[float]) -> list[bool]:
    """What the strategy wants after each close (every leg long, for a combination)."""
    legs = strategy.parts if isinstance(strategy, AllOf) else (strategy,)
    wanted = [False] * len(legs)
    out = []
    for t in range(len(closes)):
        history = closes[: t + 1]
        wanted = [leg_wants(leg, history, w) for leg, w in zip(legs, wanted, strict=True)]
        out.append(all(wanted))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_latest_decisions_match_the_reference(seed: int) -> None:
    opens, closes = random_walk(seed, 160, 0.01)
    wishes = {i: reference_wishes(s, closes) for i, s in enumerate(EVERY_FAMILY)}
    seen, held = set(), set()
    for end in range(40, 161):
        decisions = latest_decisions(opens[:end], closes[:end], EVERY_FAMILY)
        for decision in decisions:
            wish = wishes[decision.index]
            now, before = wish[end - 1], wish[end - 2]
            expected = "buy" if now and not before else ("sell" if before and not now else None)
            assert decision.side == expected, (EVERY_FAMILY[decision.index], end)
            assert decision.long == now, (EVERY_FAMILY[decision.index], end)
            seen.add(decision.side)
            held.add(decision.long)
    assert seen == {"buy", "sell", None}  # the walk exercises every outcome
    assert held == {True, False}


def test_no_strategies_no_decisions() -> None:
    assert latest_decisions([1.0, 2.0], [1.0, 2.0], []) == []


def test_a_position_entered_days_ago_is_still_exited_live() -> None:
    """Momentum(1440, 5 %) turns long on a 7 % rise, then 5,000 flat minutes pass (3.5 days),
    then a 6 % fall: the backtest over the whole history sells. The live trader keeps as many
    bars as a backtest reads (STRATEGY_HISTORY_DAYS), so it remembers the entry and sells too;
    with 4,096 bars it had forgotten the entry and signalled nothing."""
    rule = Momentum(lookback=1440, threshold=0.05)
    closes = [100.0] * 2000 + [100 + 7 * i / 99 for i in range(100)] + [107.0] * 5000 + [101.0]
    opens = [closes[0], *closes[:-1]]
    trader = LiveTrader(Decimal(100), "paper", history_days=5, quote_asset="USDT")
    bars = SymbolBars(trader.window)
    for minute, (open_, close) in enumerate(zip(opens, closes, strict=True)):
        bars.append(minute, open_, close)
    [backtest] = latest_decisions(opens, closes, [rule])
    [live] = latest_decisions(list(bars.opens), list(bars.closes), [rule])
    [short] = latest_decisions(opens[-LIVE_BARS:], closes[-LIVE_BARS:], [rule])
    assert (backtest.side, live.side) == ("sell", "sell")
    assert short.side is None  # what the 4,096-bar window did


def test_bars_read_while_a_backfill_was_pending_have_holes() -> None:
    """A minute missing among the latest bars is a hole (the live trader reads them again);
    consecutive bars, or a hole older than the bars looked at, are not."""
    bars = SymbolBars(window=8)
    for minute in (1, 2, 3):
        bars.append(minute, 1.0, 1.0)
    assert not bars.holes_within(8)
    bars.append(6, 1.0, 1.0)
    assert bars.holes_within(8) and bars.holes_within(2)
    for minute in (7, 8, 9):
        bars.append(minute, 1.0, 1.0)
    assert bars.holes_within(8)  # 1 2 3 6 7 8 9: 4 and 5 missing
    assert not bars.holes_within(4)  # 6 7 8 9


@pytest.mark.parametrize("seed", [4, 5])
def test_latest_changes_name_the_close_each_rule_last_changed_on(seed: int) -> None:
    """Against the reference wishes: the latest close t of the last few whose wish differs from
    close t - 1's (the close a live pod seeing it would have signalled on)."""
    opens, closes = random_walk(seed, 200, 0.01)
    wishes = {i: reference_wishes(s, closes) for i, s in enumerate(EVERY_FAMILY)}
    found = set()
    for end, lookback in ((120, 30), (160, 6), (200, 3)):
        changes = latest_changes(opens[:end], closes[:end], EVERY_FAMILY, lookback)
        for index, change in enumerate(changes):
            wish = wishes[index][:end]
            moved = [t for t in range(end - lookback, end) if wish[t] != wish[t - 1]]
            assert change == (moved[-1] if moved else None), (EVERY_FAMILY[index], end)
            found.add(change is None)
    assert found == {True, False}


def _trend_then_flat() -> tuple[np.ndarray, np.ndarray]:
    """20000 1m closes drifting from 30000, then 3000 closes all equal to the last (rounded to
    the cent): the stretch where a quiet market shows the same price minute after minute."""
    rng = np.random.default_rng(1)
    trend = 30000 * np.exp(np.cumsum(rng.normal(0.00005, 0.001, 20000)))
    close = np.concatenate([trend, np.full(3000, round(float(trend[-1]), 2))])
    return np.concatenate([[close[0]], close[:-1]]), close


def test_flat_closes_give_no_signal_wherever_the_series_starts() -> None:
    # the rolling sums are differences of running sums whose rounding depends on where the
    # series starts: live (a later start) used to buy on flat candles the backtest never did
    opens, closes = _trend_then_flat()
    flat = [SmaCross(fast=2, slow=3), BollingerBreakout(period=20, width=2.0)]
    for first in (0, 15000):
        cut = 20000 - first
        edges = [0, cut + 30, len(closes) - first]  # the flat stretch, once the windows hold it
        run = run_backtests(build_bars(opens[first:], closes[first:]), flat,
                            BacktestConfig(), edges)  # fmt: skip
        assert run.stats[:, 1, ENTRIES].tolist() == [0, 0], f"entries on flat closes from {first}"
    for last in (20000 + 1393, 20000 + 2399):  # where the rounding turned a rule long, live
        for first in (0, 15000):
            window = slice(first, last + 1)
            decided = latest_decisions(list(opens[window]), list(closes[window]), flat)
            assert [d.side for d in decided] == [None, None], (last, first)
