"""Binance's notional check of a market order: at its average price over avgPriceMins, which the
top of book stands for only far from the bounds (domain/filters.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mastertrade.execution.domain.filters import (
    NOTIONAL_MARGIN,
    FilterError,
    SymbolFilters,
    apply_filters,
    near_market_notional_bounds,
    parse_filters,
)

BOUNDED = parse_filters({"symbol": "XUSDT", "filters": [
    {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "1000", "stepSize": "0.001"},
    {"filterType": "NOTIONAL", "minNotional": "5", "applyMinToMarket": True,
     "maxNotional": "1000", "applyMaxToMarket": True, "avgPriceMins": 5},
]})  # fmt: skip


@pytest.mark.parametrize(
    ("quantity", "near"),
    [
        ("0.044", False),  # 4.4: more than 10 % below the minimum of 5
        ("0.045", True),  # 4.5: 10 % below it
        ("0.051", True),  # 5.1: just above it
        ("0.055", True),  # 5.5: 10 % above it
        ("0.056", False),  # 5.6
        ("1", False),  # 100: far from both bounds
        ("9.1", True),  # 910: within 10 % of the maximum of 1000
        ("0.0559", True),  # 5.59, yet sent as 0.055 (stepSize 0.001): 5.5
    ],
)
def test_a_market_order_is_near_a_bound_within_the_margin_of_it_at_the_top_of_book(
    quantity: str, near: bool
) -> None:
    assert near_market_notional_bounds(BOUNDED, Decimal(quantity), Decimal(100)) is near


def test_bounds_not_applied_to_market_orders_or_a_refused_quantity_are_never_near() -> None:
    limits_only = parse_filters({"symbol": "XUSDT", "filters": [
        {"filterType": "NOTIONAL", "minNotional": "5", "applyMinToMarket": False,
         "maxNotional": "0", "applyMaxToMarket": False, "avgPriceMins": 5},
    ]})  # fmt: skip
    assert not near_market_notional_bounds(limits_only, Decimal("0.05"), Decimal(100))
    assert not near_market_notional_bounds(BOUNDED, Decimal("0.0001"), Decimal(50000))  # LOT_SIZE


def test_the_average_price_decides_a_market_order_s_notional_both_ways() -> None:
    """Refused at the ask, taken at the average; taken at the ask, refused at the average."""
    assert apply_filters(BOUNDED, "buy", Decimal("0.049"), None, Decimal(100),
                         average_price=Decimal(103)) == (Decimal("0.049"), None)  # fmt: skip
    with pytest.raises(FilterError, match=r"NOTIONAL: 4\.900 is below the minimum 5"):
        apply_filters(BOUNDED, "buy", Decimal("0.049"), None, Decimal(100))
    with pytest.raises(FilterError, match=r"NOTIONAL at the average price 97: 4\.947 is below"):
        apply_filters(BOUNDED, "buy", Decimal("0.051"), None, Decimal(100),
                      average_price=Decimal(97))  # fmt: skip
    # a limit order is checked at its own price, whatever the average
    assert apply_filters(BOUNDED, "buy", Decimal("0.051"), Decimal(100), None,
                         average_price=Decimal(1)) == (Decimal("0.051"), Decimal(100))  # fmt: skip


@given(
    quantity=st.decimals(min_value="0.001", max_value="20", places=3),
    top=st.decimals(min_value="1", max_value="1000", places=2),
    move=st.decimals(min_value="-0.09", max_value="0.09", places=4),
)
def test_far_from_the_bounds_the_top_of_book_decides_as_the_average_would(
    quantity: Decimal, top: Decimal, move: Decimal
) -> None:
    """An average less than NOTIONAL_MARGIN / (1 + NOTIONAL_MARGIN), 9 %, away from the top of
    book is on the same side of every bound unless the order is near one."""
    assert abs(move) <= NOTIONAL_MARGIN / (1 + NOTIONAL_MARGIN)
    if near_market_notional_bounds(BOUNDED, quantity, top):
        return
    assert _verdict(BOUNDED, quantity, top) == _verdict(BOUNDED, quantity, top * (1 + move))


def _verdict(filters: SymbolFilters, quantity: Decimal, price: Decimal) -> str | None:
    try:
        apply_filters(filters, "buy", quantity, None, price)
    except FilterError as error:
        return str(error).split(":")[0]
    return None
