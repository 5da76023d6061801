"""The approved order as the executor receives it: a limit order names its price, an
approval holds for APPROVAL_LIFETIME_SECONDS from the moment it carries, and it names the
trading environment whose books it was sized against."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from mastertrade.core.messages import (
    APPROVAL_LIFETIME_SECONDS,
    ApprovedOrder,
    Signal,
    stale_approval,
)
from mastertrade.execution.app import ForeignApprovalError, check_environment
from mastertrade.risk.adapters.store import build_events
from mastertrade.risk.domain.rules import Outcome, RiskDecision

ORDER = {"client_order_id": "mt-1", "signal_id": "s-1", "symbol": "BTCUSDT", "side": "buy",
         "quantity": "0.5"}  # fmt: skip


def test_a_limit_order_without_a_limit_price_is_refused_saying_so() -> None:
    with pytest.raises(ValidationError, match="a limit order needs a limit_price"):
        ApprovedOrder.model_validate(ORDER | {"order_type": "limit"})


def test_limit_and_market_orders_as_the_risk_manager_sends_them_are_accepted() -> None:
    limit = ApprovedOrder.model_validate(ORDER | {"order_type": "limit", "limit_price": "95"})
    market = ApprovedOrder.model_validate(ORDER | {"order_type": "market"})
    assert limit.limit_price == Decimal(95) and market.limit_price is None


def test_the_recorded_price_is_the_limit_or_the_price_a_market_order_was_sized_at() -> None:
    sized = {"sized_price": "100"}
    limit = ApprovedOrder.model_validate(ORDER | sized | {"order_type": "limit",
                                                          "limit_price": "95"})  # fmt: skip
    market = ApprovedOrder.model_validate(ORDER | sized | {"order_type": "market"})
    assert (limit.recorded_price, market.recorded_price) == (Decimal(95), Decimal(100))


@pytest.mark.parametrize("price", ["0", "-1", "NaN", "Infinity"])
def test_a_sized_price_that_is_no_price_is_refused(price: str) -> None:
    with pytest.raises(ValidationError, match="sized_price"):
        ApprovedOrder.model_validate(ORDER | {"order_type": "market", "sized_price": price})


def test_an_approval_holds_for_its_lifetime_and_not_a_second_more() -> None:
    approved_at = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    lifetime = timedelta(seconds=APPROVAL_LIFETIME_SECONDS)
    assert stale_approval(approved_at, approved_at + lifetime) is None
    reason = stale_approval(approved_at, approved_at + lifetime + timedelta(seconds=1))
    assert reason is not None and reason.startswith(
        "approved 601 s ago (2026-12-06T12:00:00+00:00), and an approval holds for 600 s"
    )
    assert stale_approval(None, approved_at + 10 * lifetime) is None  # recorded before 0039


def test_an_approval_time_further_ahead_than_its_lifetime_is_refused() -> None:
    """A time in the future would keep an approval alive past its lifetime: a few seconds of
    clock difference pass, more than the lifetime does not."""
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    lifetime = timedelta(seconds=APPROVAL_LIFETIME_SECONDS)
    assert stale_approval(now + timedelta(seconds=5), now) is None
    assert stale_approval(now + lifetime, now) is None
    reason = stale_approval(datetime(2100, 1, 1, tzinfo=UTC), now)
    assert reason is not None and "ahead of this clock" in reason


def test_an_approval_time_without_a_time_zone_is_refused_saying_so() -> None:
    """A naive time could not be compared with the executor's clock: the message is refused
    (and dead-lettered) instead of failing later."""
    with pytest.raises(ValidationError, match=r"approved_at\n.*timezone"):
        ApprovedOrder.model_validate(ORDER | {"approved_at": "2026-12-06T12:00:00"})


@pytest.mark.parametrize("environment", ["paper", "live"])
def test_an_approval_names_the_books_it_was_sized_against(environment: str) -> None:
    """The risk manager stamps its TRADING_ENVIRONMENT on each approval, for the executor to
    refuse one meant for the other books."""
    signal = Signal(signal_id="s-1", symbol="BTCUSDT", side="buy", quantity=Decimal("0.5"),
                    price=Decimal(60000))  # fmt: skip
    decision = RiskDecision(Outcome.APPROVED, Decimal("0.5"))
    events = build_events(signal, decision, "mt-1", environment)
    [order] = [payload for _, key, payload in events if key == "order.approved"]
    assert ApprovedOrder.model_validate(order).environment == environment


def test_an_approval_for_books_that_do_not_exist_is_refused() -> None:
    with pytest.raises(ValidationError, match="environment"):
        ApprovedOrder.model_validate(ORDER | {"order_type": "market", "environment": "sandbox"})


@pytest.mark.parametrize(
    ("approved_for", "executor", "taken"),
    [
        ("paper", "paper", True),
        ("live", "live", True),
        ("paper", "live", False),  # sized against the paper books: never sent to Binance
        ("live", "paper", False),
        (None, "paper", True),  # a risk manager of before the field: paper costs nothing
        (None, "live", False),
    ],
)
def test_an_executor_takes_only_approvals_for_its_own_books(
    approved_for: str | None, executor: str, taken: bool
) -> None:
    order = ApprovedOrder.model_validate(
        ORDER | {"order_type": "market", "environment": approved_for}
    )
    if taken:
        check_environment(order, executor)
    else:
        with pytest.raises(ForeignApprovalError, match=f"this executor trades {executor}"):
            check_environment(order, executor)
