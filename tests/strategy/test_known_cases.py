"""Tiny price series whose trades and equity are worked out by hand in the comments."""

from __future__ import annotations

from decimal import Decimal

import pytest

from mastertrade.strategy.domain.engine import BacktestConfig, build_bars, run_backtests
from mastertrade.strategy.domain.families import Momentum, SmaCross
from mastertrade.strategy.domain.metrics import build_result

#        t:   0     1     2    3    4    5     6     7    8
CLOSES = [10.0, 9.0, 8.0, 9.0, 11.0, 12.0, 10.0, 8.0, 7.0]
OPENS = [10.0, 10.0, 9.0, 8.0, 9.0, 11.5, 12.0, 10.0, 8.5]


def test_sma_crossover_by_hand() -> None:
    # SMA(2) from t=1: 9.5, 8.5, 8.5, 10, 11.5, 11, 9, 7.5
    # SMA(3) from t=2:      9, 8.667, 9.333, 10.667, 11, 10, 8.333
    # gap = SMA2 - SMA3 from t=2: -0.5, -0.167, +0.667, +0.833, 0 (exact tie), -1, -0.833
    # t=4: gap turns > 0 after <= 0: cross up -> buy at t=5's open, 11.5.
    # t=6: gap is exactly 0: not a cross down (that needs gap < 0).
    # t=7: gap < 0 after >= 0: cross down -> sell at t=8's open, 8.5.
    # Buy: 1000 spent, fee 1% included: units = 1000 / (11.5 * 1.01) = 1000 / 11.615.
    # Sell: 8.5 * 0.99 per unit -> cash = 1000 * 8.415 / 11.615 = 724.4942...
    # Marked equity: t5 = 12000/11.615 = 1033.15 (the peak), t6 = 860.96, t7 = 688.76.
    # Max drawdown: 1 - 8/12 = 1/3. Exposure: bars 5, 6, 7 end long = 3 of 9. One losing trade.
    config = BacktestConfig(initial_cash=Decimal(1000), fee_rate=Decimal("0.01"))
    result = build_result(
        run_backtests(build_bars(OPENS, CLOSES), [SmaCross(fast=2, slow=3)], config), 0
    )
    assert result.trades == 1
    assert result.closed_trades == 1
    assert result.win_rate == Decimal(0)
    assert result.final_equity == Decimal("724.49")
    assert result.total_return == Decimal("-0.275506")  # 724.4942/1000 - 1
    assert result.max_drawdown == Decimal("0.333333")
    assert result.exposure == Decimal("0.333333")
    curve = dict(result.equity_curve)
    assert curve[5] == Decimal("1033.15")
    assert curve[6] == Decimal("860.96")
    assert curve[7] == Decimal("688.76")
    assert curve[4] == Decimal("1000.00")


def test_momentum_with_partial_sizing_and_slippage() -> None:
    # Momentum(lookback=2, threshold=0.1): change = close[t] / close[t-2] - 1 from t=2:
    # t2: 8/10-1 = -0.2 (exit, already flat), t3: 9/9-1 = 0, t4: 11/8-1 = +0.375 -> enter,
    # filled at t5's open 11.5 with slippage 1%: 11.615 per unit, no fee.
    # Half the equity: 500 spent -> units = 500 / 11.615 = 43.048; cash left 500.
    # t5: 12/9-1 = +0.333 (stay), t6: 10/11-1 = -0.0909 (not below -0.1: stay),
    # t7: 8/12-1 = -0.333 -> exit, filled at t8's open 8.5 less 1%: 8.415 per unit.
    # Cash = 500 + 500 * 8.415 / 11.615 = 500 + 362.2471 = 862.2471; final equity 862.25.
    config = BacktestConfig(
        initial_cash=Decimal(1000), fee_rate=Decimal(0), slippage=Decimal("0.01"),
        fraction=Decimal("0.5"),
    )  # fmt: skip
    strategy = Momentum(lookback=2, threshold=0.1)
    result = build_result(run_backtests(build_bars(OPENS, CLOSES), [strategy], config), 0)
    assert (result.trades, result.closed_trades) == (1, 1)
    assert result.final_equity == Decimal("862.25")
    # Peak at t5: 500 + 43.04778 * 12 = 1016.5734; trough at t7: 500 + 43.04778 * 8 = 844.38227
    assert dict(result.equity_curve)[5] == Decimal("1016.57")
    assert result.max_drawdown == Decimal("0.169384")  # 1 - 844.38227 / 1016.57340


def test_a_wish_on_the_last_bar_is_never_filled() -> None:
    # Momentum(lookback=1, threshold=0) on closes ending ..., 8, 9 (the last bar rises):
    # t1 -0.1 exit, t2 exit, t3 9/8-1 = +0.125 enter -> fill t4's open 9, t4 and t5 rise,
    # t6 10/12-1 < 0 exit -> fill t7's open 10, t7 falls, t8 9/8-1 > 0 enter: a wish on the last
    # bar, with no next open to fill it. One round trip, 100 units bought at 9 and sold at 10.
    closes = [*CLOSES[:-1], 9.0]
    config = BacktestConfig(initial_cash=Decimal(900), fee_rate=Decimal(0))
    strategy = Momentum(lookback=1, threshold=0.0)
    result = build_result(run_backtests(build_bars(OPENS, closes), [strategy], config), 0)
    assert (result.trades, result.closed_trades, result.win_rate) == (1, 1, Decimal(1))
    assert result.final_equity == Decimal("1000.00")
    assert result.exposure == Decimal("0.333333")  # t4, t5, t6 end long


@pytest.mark.parametrize(
    ("opens", "closes", "message"),
    [
        ([1.0, 2.0, 3.0], [1.0, 2.0], "give one open and one close per bar"),
        ([1.0, float("nan")], [1.0, 1.0], "open price at bar 1 is nan"),
        ([1.0, 1.0], [1.0, float("inf")], "close price at bar 1 is inf"),
        ([1.0, 1.0], [1.0, -2.0], "finite and > 0"),
        ([1.0], [1.0], "2 to"),
    ],
)
def test_bad_bars_are_refused_with_a_clear_message(
    opens: list[float], closes: list[float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build_bars(opens, closes)
