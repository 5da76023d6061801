"""The approved order as the executor receives it: a limit order names its price."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from mastertrade.core.messages import ApprovedOrder

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
