"""Every setting the chart passes to a MasterTrade service, defined once.

Each group is a model whose fields carry the seed's variable name (the alias), type, default,
bounds and description. The chart's `values.schema.json` and the CRD are generated from these
models, the `settings:` block of values.yaml is generated from their defaults, and each
service's pydantic-settings class inherits its groups, so `helm install`, `kubectl apply` of a
MasterTradeDeployment and `mastertrade serve` refuse the same values.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

GENERATION_TIME_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


def _number_schema(**bounds: Any) -> WithJsonSchema:
    """Decimals travel as YAML numbers in values files and resources."""
    return WithJsonSchema({"type": "number", **bounds})


Fraction = Annotated[
    Decimal,
    Field(gt=0, le=1),
    _number_schema(exclusiveMinimum=0, maximum=1),
]
CostRate = Annotated[
    Decimal,
    Field(ge=0, lt=Decimal("0.1")),
    _number_schema(minimum=0, exclusiveMaximum=0.1),
]
Balance = Annotated[
    Decimal,
    Field(gt=0, le=Decimal(10) ** 12),
    _number_schema(exclusiveMinimum=0, maximum=10**12),
]


class SettingsGroup(BaseModel):
    """A group of settings, read under the seed's names (aliases) or the field names."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


def setting(default: Any, name: str, description: str, **bounds: Any) -> Any:
    """A setting's field: its seed name (the environment variable), default and bounds."""
    return Field(default=default, alias=name, description=description, **bounds)


class StrategySettings(SettingsGroup):
    max_active_strategies: int = setting(
        10, "MAX_ACTIVE_STRATEGIES", "Strategies trading at once (1 to 1000)", ge=1, le=1000
    )
    daily_generation_count: int = setting(
        500,
        "DAILY_GENERATION_COUNT",
        "Strategies generated and backtested each day (0 to 100000)",
        ge=0,
        le=100_000,
    )
    generation_time: str = setting(
        "03:00",
        "GENERATION_TIME",
        "Daily generation time, HH:MM UTC",
        pattern=GENERATION_TIME_PATTERN,
    )


class TradingSettings(SettingsGroup):
    trading_environment: Literal["paper", "live"] = setting(
        "paper",
        "TRADING_ENVIRONMENT",
        "`paper` (simulated fills, the default) or `live` (real orders on Binance)",
    )
    paper_trading_initial_balance: Balance = setting(
        Decimal(10000),
        "PAPER_TRADING_INITIAL_BALANCE",
        "Starting balance of the paper account, in USDT (0 < x <= 10^12)",
    )


class CostSettings(SettingsGroup):
    """What a trade costs, charged alike by the paper executor on every fill and by every
    backtest, so that a strategy is chosen at the costs it will trade at."""

    paper_fee_rate: CostRate = setting(
        Decimal("0.001"),
        "PAPER_FEE_RATE",
        "Not in the seed: the fee of a fill as a fraction of its value (0 <= x < 0.1), charged "
        "by paper trading and by every backtest; live, Binance charges its own (set this to "
        "your account's rate so backtests match it)",
    )
    paper_slippage_pct: CostRate = setting(
        Decimal("0.0005"),
        "PAPER_SLIPPAGE_PCT",
        "Not in the seed: how far a market fill moves against the trader beyond the top of "
        "book, as a fraction of the price (0 <= x < 0.1), in paper trading and every backtest",
    )


class RiskSettings(SettingsGroup):
    max_position_size_pct: Fraction = setting(
        Decimal("0.2"),
        "MAX_POSITION_SIZE_PCT",
        "Largest share of equity one symbol's position may reach, held at market plus buys "
        "approved and not filled yet, as a fraction (0 < x <= 1)",
    )
    max_portfolio_drawdown_pct: Fraction = setting(
        Decimal("0.15"),
        "MAX_PORTFOLIO_DRAWDOWN_PCT",
        "Drawdown from the equity peak that trips the circuit breaker, as a fraction (0 < x <= 1)",
    )
    circuit_breaker_enabled: bool = setting(
        True, "CIRCUIT_BREAKER_ENABLED", "Halt trading when the drawdown limit is hit"
    )
    max_open_positions: int = setting(
        10, "MAX_OPEN_POSITIONS", "Symbols held or being bought at once (1 to 1000)", ge=1, le=1000
    )
    max_orders_per_minute: int = setting(
        60, "MAX_ORDERS_PER_MINUTE", "Orders approved per minute (1 to 100000)", ge=1, le=100_000
    )
    max_equity_age_seconds: int = setting(
        60,
        "MAX_EQUITY_AGE_SECONDS",
        "No buy passes while the executor's last valuation of the account is older than this, "
        "in seconds (5 to 86400)",
        ge=5,
        le=86_400,
    )


class EmailSettings(SettingsGroup):
    email_host: str = setting(
        "smtp.gmail.com",
        "EMAIL_HOST",
        "SMTP server for e-mail alerts (user and password come from `apiKeys`)",
        min_length=1,
    )
    email_port: int = setting(587, "EMAIL_PORT", "SMTP port (587: STARTTLS)", ge=1, le=65535)
    email_from: str = setting(
        "",
        "EMAIL_FROM",
        "Not in the seed: the address e-mail alerts come from, e.g. `MasterTrade "
        "<alerts@example.com>`; empty: EMAIL_USER (set it when the SMTP login is no address, "
        "as SendGrid's `apikey`)",
        max_length=320,
    )
    alert_email_to: str = setting(
        "",
        "ALERT_EMAIL_TO",
        "Not in the seed: comma-separated recipients of e-mail alerts; empty: the From address",
        max_length=4000,
    )


class LoggingSettings(SettingsGroup):
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = setting(
        "INFO", "LOG_LEVEL", "Not in the seed: log level of every MasterTrade service"
    )
    log_format: Literal["json", "console"] = setting(
        "json", "LOG_FORMAT", "Not in the seed: `json` for clusters, `console` for a terminal"
    )


class Settings(SettingsGroup):
    """The groups by their key under `settings:` in values.yaml; a workload lists those it reads."""

    strategy: StrategySettings = StrategySettings()
    trading: TradingSettings = TradingSettings()
    costs: CostSettings = CostSettings()
    risk: RiskSettings = RiskSettings()
    email: EmailSettings = EmailSettings()
    logging: LoggingSettings = LoggingSettings()


SETTING_GROUPS: dict[str, type[SettingsGroup]] = {
    name: info.annotation  # type: ignore[misc]
    for name, info in Settings.model_fields.items()
}
"""Group key -> its model, e.g. `risk` -> RiskSettings."""


def plain_default(value: Any) -> Any:
    """A default as YAML writes it: whole decimals as integers, others as floats."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value
