"""Settings: the seed's values parse, and a bad one stops start-up with a clear message."""

from __future__ import annotations

from datetime import time
from decimal import Decimal

import pytest

from mastertrade.alerts.settings import AlertSettings
from mastertrade.core.dependency import Dependency
from mastertrade.core.settings import ServiceSettings, SettingsError, load_settings
from mastertrade.execution.settings import ExecutionSettings
from mastertrade.risk.settings import RiskSettings
from mastertrade.strategy.settings import StrategySettings

URLS = {
    "DATABASE_URL": "postgresql://mastertrade:mastertrade123@postgres:5432/mastertrade",
    "RABBITMQ_URL": "amqp://mastertrade:mastertrade123@rabbitmq:5672/",
    "REDIS_URL": "redis://redis:6379/0",
}
ALL = (Dependency.DATABASE, Dependency.RABBITMQ, Dependency.REDIS)


def test_the_seeds_strategy_values_parse() -> None:
    env = {**URLS, "MAX_ACTIVE_STRATEGIES": "10", "DAILY_GENERATION_COUNT": "500",
           "GENERATION_TIME": "03:00"}  # fmt: skip
    settings = load_settings(StrategySettings, "strategy_service", ALL, env)
    assert settings.max_active_strategies == 10
    assert settings.daily_generation_count == 500
    assert settings.generation_time == time(3, 0)


def test_the_seeds_trading_risk_and_email_values_parse() -> None:
    trading = load_settings(
        ExecutionSettings,
        "order_executor",
        environ={"TRADING_ENVIRONMENT": "paper", "PAPER_TRADING_INITIAL_BALANCE": "10000"},
    )
    assert trading.paper_trading_initial_balance == Decimal(10000)
    risk = load_settings(
        RiskSettings,
        "risk_manager",
        environ={"MAX_POSITION_SIZE_PCT": "0.20", "MAX_PORTFOLIO_DRAWDOWN_PCT": "0.15",
                 "CIRCUIT_BREAKER_ENABLED": "true"},
    )  # fmt: skip
    assert (risk.max_position_size_pct, risk.circuit_breaker_enabled) == (Decimal("0.20"), True)
    email = load_settings(AlertSettings, "alert_system", environ={"EMAIL_PORT": "587"})
    assert (email.email_host, email.email_port) == ("smtp.gmail.com", 587)


def test_settings_are_read_from_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in URLS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("LOG_LEVEL", "debug")
    settings = load_settings(ServiceSettings, "x", ALL)
    assert settings.redis_url == URLS["REDIS_URL"]
    assert settings.log_level == "DEBUG"


def test_a_missing_url_names_the_variable_and_an_example() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(
            ServiceSettings, "order_executor", ALL[:2], {"DATABASE_URL": URLS["DATABASE_URL"]}
        )
    message = str(caught.value)
    assert "order_executor" in message
    assert "RABBITMQ_URL: missing" in message
    assert "amqp://" in message
    assert "DATABASE_URL" not in message


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DATABASE_URL", "mysql://db/x", "postgresql://"),
        ("REDIS_URL", "localhost:6379", "redis://"),
        ("MAX_ACTIVE_STRATEGIES", "ten", "whole number"),
        ("MAX_ACTIVE_STRATEGIES", "0", "1 to 10000"),
        ("GENERATION_TIME", "3am", "HH:MM"),
        ("GENERATION_TIME", "25:00", "HH:MM"),
        ("LOG_FORMAT", "xml", "json (clusters) or console"),
    ],
)
def test_a_malformed_value_names_the_variable_value_and_expectation(
    variable: str, value: str, expected: str
) -> None:
    env = {**URLS, variable: value}
    with pytest.raises(SettingsError) as caught:
        load_settings(StrategySettings, "strategy_service", ALL, env)
    message = str(caught.value)
    assert f"{variable}: got {value!r}" in message
    assert expected in message


@pytest.mark.parametrize(
    ("cls", "env", "fragment"),
    [
        (RiskSettings, {"MAX_POSITION_SIZE_PCT": "20"}, "MAX_POSITION_SIZE_PCT: got '20'"),
        (RiskSettings, {"CIRCUIT_BREAKER_ENABLED": "maybe"}, "true or false"),
        (AlertSettings, {"EMAIL_PORT": "70000"}, "EMAIL_PORT: got '70000'"),
        (ExecutionSettings, {"TRADING_ENVIRONMENT": "demo"}, "paper or live"),
        (ExecutionSettings, {"PAPER_TRADING_INITIAL_BALANCE": "-5"}, "positive amount"),
        (ExecutionSettings, {"TRADING_ENVIRONMENT": "live"}, "needs BINANCE_API_KEY"),
    ],
)
def test_service_specific_settings_are_validated(
    cls: type[ServiceSettings], env: dict[str, str], fragment: str
) -> None:
    with pytest.raises(SettingsError, match="invalid settings") as caught:
        load_settings(cls, "svc", environ=env)
    assert fragment in str(caught.value)


def test_live_trading_with_keys_is_accepted() -> None:
    env = {"TRADING_ENVIRONMENT": "LIVE", "BINANCE_API_KEY": "key-4711", "BINANCE_API_SECRET": "s"}
    settings = load_settings(ExecutionSettings, "order_executor", environ=env)
    assert settings.trading_environment == "live"
    assert "key-4711" not in repr(settings)


def test_error_messages_never_show_passwords_or_secrets() -> None:
    env = {**URLS, "DATABASE_URL": "mysql://trader:hunter2@db/x"}
    with pytest.raises(SettingsError) as caught:
        load_settings(StrategySettings, "strategy_service", ALL, env)
    assert "hunter2" not in str(caught.value)
    assert "mysql://trader:***@db/x" in str(caught.value)
    with pytest.raises(SettingsError) as live:
        load_settings(
            ExecutionSettings,
            "order_executor",
            environ={"TRADING_ENVIRONMENT": "live", "BINANCE_API_KEY": "key-4711",
                     "DATABASE_URL": "postgresql://u:hunter2@h/d"},
        )  # fmt: skip
    assert "needs BINANCE_API_KEY and BINANCE_API_SECRET" in str(live.value)
    assert "key-4711" not in str(live.value)
    assert "hunter2" not in str(live.value)
