"""Settings of strategy_service: MAX_ACTIVE_STRATEGIES, DAILY_GENERATION_COUNT, GENERATION_TIME
and TRADING_ENVIRONMENT (defined in the model's `StrategySettings` and `TradingSettings`), the fee
and slippage every backtest charges (its `CostSettings`, the paper executor's), and the service's
own knobs of generation (history, walk-forward windows, shards), goals, live signals
and the admin key."""

from __future__ import annotations

from datetime import time
from decimal import Decimal

from pydantic import Field, model_validator

from mastertrade.core.admin_token import AdminTokenHash
from mastertrade.core.settings import AccountSettings, ServiceSettings
from mastertrade.strategy.domain.engine import BacktestConfig
from mastertrade.strategy.domain.walkforward import WalkForward
from mastertrade_model.settings import CostSettings, TradingSettings
from mastertrade_model.settings import StrategySettings as StrategyGroup

MINUTES_PER_DAY = 1440


class StrategySettings(
    ServiceSettings, StrategyGroup, TradingSettings, CostSettings, AccountSettings
):
    """The seed's strategy figures (10 active, 500 generated daily at 03:00 UTC), and the
    TRADING_ENVIRONMENT whose orders count as what a strategy holds."""

    strategy_admin_api_key_sha256: AdminTokenHash = Field(
        default=None,
        description="the SHA-256 (64 lower-case hex digits) of the bearer token that may start "
        "a generation on demand, e.g. from `printf %s TOKEN | sha256sum`",
    )
    strategy_history_days: int = Field(
        default=90, ge=2, le=3650, description="days of 1m candles each backtest reads (2-3650)"
    )
    strategy_symbols: str = Field(
        default="",
        max_length=2000,
        description="comma-separated symbols to trade, e.g. BTCUSDT,ETHUSDT, each once it has "
        "the 1m candles a run needs; empty: every symbol that has them",
    )
    strategy_fit_days: int = Field(
        default=28, ge=1, le=3650, description="walk-forward fit window, days (multiple of test)"
    )
    strategy_test_days: int = Field(
        default=7, ge=1, le=3650, description="walk-forward test window, days"
    )
    strategy_min_trades: int = Field(
        default=10, ge=0, le=1_000_000, description="out-of-sample positions a ranked one needs"
    )
    strategy_min_confidence: Decimal = Field(
        default=Decimal("0.95"), ge=0, le=Decimal("0.999999"), allow_inf_nan=False,
        description="deflated Sharpe ratio a candidate needs to become active, 0 to 0.999999: the "
        "probability that its out-of-sample Sharpe beats the luckiest of the run's candidates "
        "had none any skill; 0 turns the check off (any candidate with a positive "
        "out-of-sample Sharpe and return, as before)",
    )  # fmt: skip
    strategy_shard_size: int = Field(
        default=100, ge=1, le=100_000, description="candidates per shard (the unit of work)"
    )
    strategy_first_batch_count: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="candidates of the start-up batch on an empty installation "
        "(default: DAILY_GENERATION_COUNT)",
    )
    strategy_lease_seconds: float = Field(
        default=600.0,
        ge=5,
        le=86_400,
        description="how long a claimed shard stays claimed once its pod stops renewing the "
        "lease (renewed every third of it while the pod computes) before another pod takes it "
        "over (a pod that died mid-shard)",
    )
    strategy_poll_seconds: float = Field(
        default=30.0, gt=0, le=3600, description="how often the scheduler looks for work"
    )
    strategy_goal_monthly_return: Decimal = Field(
        default=Decimal("0.03"), ge=-1, le=100, allow_inf_nan=False,
        description="goal: mean monthly return of the active strategies (0.03 = 3 %)",
    )  # fmt: skip
    strategy_goal_max_drawdown: Decimal = Field(
        default=Decimal("0.15"), ge=0, le=1, allow_inf_nan=False,
        description="goal: worst maximum drawdown of an active strategy (0.15 = 15 %)",
    )  # fmt: skip
    strategy_goal_win_rate: Decimal = Field(
        default=Decimal("0.5"), ge=0, le=1, allow_inf_nan=False,
        description="goal: mean win rate of the active strategies (0.5 = 50 %)",
    )  # fmt: skip
    strategy_signal_notional: Decimal = Field(
        default=Decimal(100), gt=0, le=Decimal(10) ** 9, allow_inf_nan=False,
        description="quote-currency value a live buy signal asks for (a sell asks for what the "
        "strategy holds)",
    )  # fmt: skip

    @model_validator(mode="after")
    def _windows(self) -> StrategySettings:
        if self.strategy_fit_days % self.strategy_test_days:
            raise ValueError(
                f"STRATEGY_FIT_DAYS ({self.strategy_fit_days}) must be a whole number of "
                f"STRATEGY_TEST_DAYS ({self.strategy_test_days}), "
                f"e.g. {self.strategy_test_days * 4}"
            )
        if self.strategy_fit_days + self.strategy_test_days > self.strategy_history_days:
            raise ValueError(
                f"STRATEGY_HISTORY_DAYS ({self.strategy_history_days}) must hold one fit and one "
                f"test window ({self.strategy_fit_days} + {self.strategy_test_days} days)"
            )
        return self

    def generation_at(self) -> time:
        """GENERATION_TIME as a time of day (UTC)."""
        hours, minutes = self.generation_time.split(":")
        return time(int(hours), int(minutes))

    def symbols(self) -> list[str]:
        """STRATEGY_SYMBOLS as a list (empty: discover from the candles)."""
        return [s.strip().upper() for s in self.strategy_symbols.split(",") if s.strip()]

    def walk_forward(self) -> WalkForward:
        """Walk-forward windows in 1m bars; ValueError when fit is not whole test windows."""
        return WalkForward(
            fit_bars=self.strategy_fit_days * MINUTES_PER_DAY,
            test_bars=self.strategy_test_days * MINUTES_PER_DAY,
            min_trades=self.strategy_min_trades,
        )

    def backtest_config(self) -> BacktestConfig:
        """Costs and sizing of every backtest: the paper executor's fee and slippage
        (PAPER_FEE_RATE, PAPER_SLIPPAGE_PCT), all-in sizing, 1m bars."""
        return BacktestConfig(fee_rate=self.paper_fee_rate, slippage=self.paper_slippage_pct)

    def first_batch_count(self) -> int:
        """Candidates of the start-up batch."""
        return self.strategy_first_batch_count or self.daily_generation_count
