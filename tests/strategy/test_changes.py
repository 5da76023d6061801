"""The strategy_change alert: it names what started and stopped trading and why, its dedup key
tells two changes apart while a redelivery of one keeps it, and a huge run still fits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mastertrade.core.messages import AlertEvent
from mastertrade.strategy.domain.changes import (
    LISTED,
    ROUTING_KEY,
    StrategyRef,
    build_change_alert,
    derive_hand_activation,
    derive_run_change,
)

WHEN = datetime(2026, 3, 2, 3, 0, 12, 345678, tzinfo=UTC)


def test_a_run_change_names_the_strategies_the_count_and_the_run() -> None:
    change = derive_run_change(
        7, "daily:2026-03-02", "schedule", active=2,
        activated=[StrategyRef(12, "ETHUSDT", "breakout"), StrategyRef(11, "BTCUSDT", "momentum")],
        retired=[StrategyRef(3, "BTCUSDT", "mean_reversion")],
    )  # fmt: skip
    alert = build_change_alert(change)
    assert ROUTING_KEY == f"alert.{alert.kind}" == "alert.strategy_change"
    assert (alert.severity, alert.source) == ("info", "strategy_service")
    assert alert.title == "Active strategies changed: 2 activated, 1 retired, 2 active now"
    assert "generation run 7 (daily:2026-03-02, started by schedule)" in alert.message
    assert "Activated: #11 BTCUSDT momentum, #12 ETHUSDT breakout." in alert.message
    assert "Retired: #3 BTCUSDT mean_reversion." in alert.message
    assert AlertEvent.model_validate(alert.to_json()) == alert  # what the alert system parses


def test_dedup_keys_keep_a_redelivery_and_separate_two_changes() -> None:
    ref = StrategyRef(5, "BTCUSDT", "momentum")

    def run(run_id: int) -> str | None:
        change = derive_run_change(run_id, "k", "api", activated=[ref], retired=[], active=1)
        return build_change_alert(change).dedup_key

    def by_hand(at: datetime) -> str | None:
        return build_change_alert(derive_hand_activation(ref, at, "admin:ab12", 1)).dedup_key

    assert run(1) == run(1) and run(1) != run(2)
    # the same strategy activated again (after a run retired it) is another change
    assert by_hand(WHEN) == by_hand(WHEN) != by_hand(WHEN + timedelta(microseconds=1))
    assert by_hand(WHEN) != run(5)


def test_a_change_of_nothing_is_no_change() -> None:
    change = derive_run_change(1, "k", "api", activated=[], retired=[], active=3)
    assert not change.changed


def test_a_huge_change_lists_the_first_and_counts_the_rest() -> None:
    many = [StrategyRef(10**18 + i, "A" * 20, "mean_reversion") for i in range(1000)]
    change = derive_run_change(1, "k" * 64, "api", activated=many, retired=many, active=1000)
    alert = build_change_alert(change)  # validates: within the 4000 characters of a message
    assert f"and {1000 - LISTED} more." in alert.message
    assert alert.message.endswith("Active now: 1000.")  # nothing cut off
