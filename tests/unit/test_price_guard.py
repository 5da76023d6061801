"""A market buy may not fill far above the price the risk manager sized it at."""

from __future__ import annotations

from decimal import Decimal

import pytest

from mastertrade.execution.domain.price_guard import ceiling, runaway_price

TWO_PCT = Decimal("0.02")


def test_a_market_buy_above_the_ceiling_is_refused_saying_where_it_would_fill() -> None:
    reason = runaway_price("buy", "market", Decimal(100), Decimal("102.01"), TWO_PCT)
    assert reason == ("the market buy would fill at 102.01, more than 2% above the 100 "
                      "the risk manager sized it at (MAX_PRICE_DEVIATION_PCT)")  # fmt: skip


@pytest.mark.parametrize(
    ("side", "order_type", "sized", "fill", "deviation"),
    [
        ("buy", "market", Decimal(100), Decimal(102), TWO_PCT),  # at the ceiling
        ("buy", "market", Decimal(100), Decimal(50), TWO_PCT),  # cheaper is always fine
        ("sell", "market", Decimal(100), Decimal(200), TWO_PCT),  # sells only reduce
        ("sell", "market", Decimal(100), Decimal(1), TWO_PCT),  # an exit is never blocked
        ("buy", "limit", Decimal(100), Decimal(150), TWO_PCT),  # the limit caps it
        ("buy", "market", None, Decimal(150), TWO_PCT),  # sized nowhere: nothing to hold to
        ("buy", "market", Decimal(100), Decimal(150), Decimal(0)),  # 0 turns it off
    ],
)
def test_what_the_guard_lets_through(
    side: str, order_type: str, sized: Decimal | None, fill: Decimal, deviation: Decimal
) -> None:
    assert runaway_price(side, order_type, sized, fill, deviation) is None


def test_a_guarded_market_buy_with_no_price_to_fill_at_may_not_go() -> None:
    assert runaway_price("buy", "market", Decimal(100), None, TWO_PCT) == (
        "no fresh quote to hold the market buy to the price it was sized at"
    )
    assert runaway_price("buy", "market", Decimal(100), None, Decimal(0)) is None


def test_a_market_buy_is_capped_where_the_guard_would_refuse_it() -> None:
    assert ceiling("buy", "market", Decimal(30000), TWO_PCT) == Decimal(30600)
    for side, order_type, sized, deviation in [
        ("sell", "market", Decimal(100), TWO_PCT),
        ("buy", "limit", Decimal(100), TWO_PCT),
        ("buy", "market", None, TWO_PCT),
        ("buy", "market", Decimal(100), Decimal(0)),
    ]:
        assert ceiling(side, order_type, sized, deviation) is None
