"""Pure parts of the platform and services: health JSON, backoff, schedules, rules, ports."""

from __future__ import annotations

from datetime import UTC, datetime, time
from decimal import Decimal

import pytest

from mastertrade.arbitrage.domain import Quotes, evaluate_spread
from mastertrade.catalog import SERVICES
from mastertrade.core.health import derive_health
from mastertrade.core.settings import redact
from mastertrade.core.supervisor import next_backoff
from mastertrade.local_stack import plan_ports
from mastertrade.market_data.domain import InvalidSymbolError, normalise_symbol
from mastertrade.migrations.runner import (
    Migration,
    MigrationError,
    build_migrations,
    pending_migrations,
)
from mastertrade.risk.domain import PositionCheck, RiskLimits, evaluate_position
from mastertrade.strategy.domain import next_generation_at


def test_health_is_the_seeds_shape_and_healthy_when_all_checks_pass() -> None:
    status, body = derive_health("market_data_service", "1.0.0", 3600.7,
                                 {"database": True, "rabbitmq": True, "redis": True})  # fmt: skip
    assert status == 200
    assert body == {
        "status": "healthy",
        "service": "market_data_service",
        "version": "1.0.0",
        "uptime": 3600,
        "checks": {"database": "ok", "rabbitmq": "ok", "redis": "ok"},
    }


def test_health_is_503_when_one_check_fails() -> None:
    status, body = derive_health("risk_manager", "1", 1, {"database": True, "rabbitmq": False})
    assert status == 503
    assert body["status"] == "unhealthy"
    assert body["checks"] == {"database": "ok", "rabbitmq": "error"}


def test_health_without_dependencies_is_healthy() -> None:
    assert derive_health("monitoring_ui", "1", 0, {})[0] == 200


def test_backoff_doubles_up_to_the_ceiling() -> None:
    steps = [0.2]
    for _ in range(8):
        steps.append(next_backoff(steps[-1], 5.0))
    assert steps[:4] == [0.2, 0.4, 0.8, 1.6]
    assert max(steps) == 5.0


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2025, 1, 1, 2, 59, tzinfo=UTC), datetime(2025, 1, 1, 3, 0, tzinfo=UTC)),
        (datetime(2025, 1, 1, 3, 0, tzinfo=UTC), datetime(2025, 1, 2, 3, 0, tzinfo=UTC)),
        (datetime(2025, 12, 31, 23, 0, tzinfo=UTC), datetime(2026, 1, 1, 3, 0, tzinfo=UTC)),
    ],
)
def test_next_generation_is_the_next_0300_utc(now: datetime, expected: datetime) -> None:
    assert next_generation_at(now, time(3, 0)) == expected


def test_risk_rules() -> None:
    limits = RiskLimits(
        max_position_size_pct=Decimal("0.2"),
        max_portfolio_drawdown_pct=Decimal("0.15"),
        circuit_breaker_enabled=True,
    )
    fine = PositionCheck(position_value=1000, portfolio_value=10000, portfolio_peak=10000)
    assert evaluate_position(fine, limits).approved
    big = PositionCheck(position_value=2500, portfolio_value=10000, portfolio_peak=10000)
    assert not evaluate_position(big, limits).approved
    falling = PositionCheck(position_value=100, portfolio_value=8500, portfolio_peak=10000)
    decision = evaluate_position(falling, limits)
    assert not decision.approved
    assert "circuit breaker" in decision.reasons[0]


def test_arbitrage_spread_after_fees() -> None:
    assert evaluate_spread(Quotes(buy_ask=100, sell_bid=100.5, fee_bps=10)).net_bps == 30
    assert not evaluate_spread(Quotes(buy_ask=100, sell_bid=100.1, fee_bps=10)).profitable


def test_symbols_are_normalised_or_refused() -> None:
    assert normalise_symbol("btc/usdt") == "BTCUSDT"
    with pytest.raises(InvalidSymbolError):
        normalise_symbol("btc usdt; drop")


def test_local_ports_keep_the_seeds_and_move_the_second_8080() -> None:
    ports = plan_ports(SERVICES)
    assert ports["risk_manager"] == 8080
    assert ports["api_gateway"] not in {8080, 8081}
    assert len(set(ports.values())) == len(ports)
    assert plan_ports(SERVICES, 1000)["market_data_service"] == 9000


def test_migration_files_are_ordered_and_checked() -> None:
    migrations = build_migrations({"0002_b.sql": "B", "0001_a.sql": "A"})
    assert [m.version for m in migrations] == [1, 2]
    with pytest.raises(MigrationError, match="NNNN_description"):
        build_migrations({"first.sql": ""})
    applied = {1: Migration(1, "a", "A").checksum}
    assert pending_migrations(migrations, applied) == migrations[1:]
    with pytest.raises(MigrationError, match="changed after it was applied"):
        pending_migrations(migrations, {1: "0" * 64})


def test_passwords_are_hidden_in_progress_output() -> None:
    assert redact("postgresql://u:secret@h:5432/d") == "postgresql://u:***@h:5432/d"
    assert redact("redis://h:6379/0") == "redis://h:6379/0"
    assert redact("redis://:pw@h:6379/0") == "redis://:***@h:6379/0"
    assert redact("amqp://u:p@ss@h/v, amqp://w:x@k") == "amqp://u:***@h/v, amqp://w:***@k"
