"""A strategy is backtested at the costs it will trade at: the strategy service reads the
paper executor's PAPER_FEE_RATE and PAPER_SLIPPAGE_PCT (one settings group, `costs`), and a
backtest's round trip leaves the cash that the paper executor's two fills leave."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

from mastertrade.core.settings import load_settings
from mastertrade.execution.domain.paper import Quote, build_fill
from mastertrade.execution.settings import ExecutionSettings
from mastertrade.strategy.domain.engine import build_bars, run_backtests
from mastertrade.strategy.domain.families import SmaCross
from mastertrade.strategy.domain.metrics import build_result
from mastertrade.strategy.settings import StrategySettings
from tests.strategy.test_known_cases import CLOSES, OPENS

ENVIRON = {"PAPER_FEE_RATE": "0.002", "PAPER_SLIPPAGE_PCT": "0.003"}
CASH = Decimal(1000)


def test_both_services_read_one_costs_setting() -> None:
    strategy = load_settings(StrategySettings, "strategy_service", environ=ENVIRON)
    executor = load_settings(ExecutionSettings, "order_executor", environ=ENVIRON)
    config = strategy.backtest_config()
    assert (config.fee_rate, config.slippage) == (Decimal("0.002"), Decimal("0.003"))
    assert (executor.paper_fee_rate, executor.paper_slippage_pct) == (
        config.fee_rate,
        config.slippage,
    )


def test_a_backtest_round_trip_leaves_the_cash_paper_fills_leave() -> None:
    # test_known_cases' SMA(2)/SMA(3) case: one buy at t5's open 11.5, one sell at t8's 8.5
    settings = load_settings(StrategySettings, "strategy_service", environ=ENVIRON)
    config = settings.backtest_config().model_copy(update={"initial_cash": CASH})
    backtest = build_result(
        run_backtests(build_bars(OPENS, CLOSES), [SmaCross(fast=2, slow=3)], config), 0
    )
    assert (backtest.trades, backtest.closed_trades) == (1, 1)

    executor = load_settings(ExecutionSettings, "order_executor", environ=ENVIRON)
    costs = (executor.paper_fee_rate, executor.paper_slippage_pct)
    entry, leave = Quote(Decimal("11.5"), Decimal("11.5")), Quote(Decimal("8.5"), Decimal("8.5"))
    # all-in: the most units the cash buys, slippage and fee included (to the 8 places a
    # quantity has)
    fee_rate, slippage = costs
    units = (CASH / (entry.ask * (1 + slippage) * (1 + fee_rate))).quantize(
        Decimal("1e-8"), rounding=ROUND_DOWN
    )
    buy = build_fill("buy", units, entry, costs)
    sell = build_fill("sell", units, leave, costs)
    cash = CASH - buy.notional - buy.fee + sell.notional - sell.fee
    # cents: the backtest reports equity to two places, the paper books round each fill
    assert abs(backtest.final_equity - cash) <= Decimal("0.01"), (backtest.final_equity, cash)
