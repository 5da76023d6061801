"""Property tests of paper fills and the ledger: cash never negative, the books always balance,
and Binance's filters."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mastertrade.execution.domain.filters import (
    FilterError,
    SymbolFilters,
    apply_filters,
    parse_filters,
)
from mastertrade.execution.domain.ledger import LedgerError, Position, apply_fill, derive_equity
from mastertrade.execution.domain.paper import PRICE_DECIMALS, Quote, build_fill, crosses

FEE, SLIP = Decimal("0.001"), Decimal("0.0005")
prices = st.decimals(min_value="1", max_value="100000", places=2)
steps = st.lists(
    st.tuples(st.sampled_from(["buy", "sell"]),
              st.decimals(min_value="0.001", max_value="5", places=3), prices),
    max_size=40,
)  # fmt: skip


@given(steps=steps, start=st.decimals(min_value="100", max_value="100000", places=2))
@settings(max_examples=200)
def test_cash_never_goes_negative_and_equity_is_cash_plus_positions(
    steps: list[tuple[str, Decimal, Decimal]], start: Decimal
) -> None:
    """Beside its own books, each fill is checked against what trading costs: at the mid, the
    account is worth exactly the fee and the distance from the mid to the fill price less after
    a fill than before it (a buy pays above the ask, a sell receives below the bid), whichever
    way the fee or the cash moved inside the ledger."""
    cash, position = start, Position()
    for side, quantity, mid in steps:
        quote = Quote(mid - Decimal("0.01"), mid + Decimal("0.01"))
        fill = build_fill(side, quantity, quote, (FEE, SLIP))
        before = cash + position.quantity * mid
        try:
            cash, position = apply_fill(cash, position, fill, "BTCUSDT", "USDT")
        except LedgerError:
            continue  # refused: apply_fill returns new books only when it accepts the fill
        assert cash >= 0 and position.quantity >= 0
        assert fill.fee >= FEE * fill.price * quantity > 0
        assert (fill.price >= quote.ask) if side == "buy" else (fill.price <= quote.bid)
        valued = derive_equity(cash, {"BTCUSDT": position}, {"BTCUSDT": mid})
        assert valued is not None and valued[1] == cash + position.quantity * mid
        assert valued[1] == before - fill.fee - abs(fill.price - mid) * quantity


def test_a_position_without_a_quote_leaves_the_account_unvalued() -> None:
    """Valued at its cost, a position whose quote stalled would make an equity the account
    does not have: here 2000 + 4 x 2000 at market is 10000, at cost 2000 + 4 x 1000 = 6000, a
    40 % fall from the peak that would trip the breaker."""
    held = {"BTCUSDT": Position(Decimal(4), Decimal(1000))}
    assert derive_equity(Decimal(2000), held, {"BTCUSDT": Decimal(2000)}) == (
        Decimal(8000),
        Decimal(10000),
    )
    assert derive_equity(Decimal(2000), held, {}) is None
    assert derive_equity(Decimal(2000), held, {"ETHUSDT": Decimal(5)}) is None


def test_dust_without_a_quote_counts_at_its_cost() -> None:
    """A crumb a lot size left behind (worth under a thousandth of the equity) never stops the
    account being valued, also when its symbol is no longer quoted at all; a sold-out position
    (quantity 0) is nothing."""
    held = {
        "BTCUSDT": Position(Decimal(1), Decimal(1000)),
        "OLDUSDT": Position(Decimal("0.5"), Decimal("1.9")),  # 0.95 < 0.001 x 2000.95
        "GONEUSDT": Position(Decimal(0), Decimal(0)),
    }
    marks = {"BTCUSDT": Decimal(1000)}
    assert derive_equity(Decimal(1000), held, marks) == (Decimal("1000.95"), Decimal("2000.95"))
    bigger = {**held, "OLDUSDT": Position(Decimal(2), Decimal("1.9"))}  # 3.8 >= 0.001 x 2003.8
    assert derive_equity(Decimal(1000), bigger, marks) is None


def test_a_buy_beyond_the_cash_is_refused_and_says_how_much() -> None:
    fill = build_fill("buy", Decimal(1), Quote(Decimal(100), Decimal(100)), (FEE, Decimal(0)))
    with pytest.raises(LedgerError, match=r"needs 100\.1.*50 is available"):
        apply_fill(Decimal(50), Position(), fill, "BTCUSDT", "USDT")


def test_a_sell_beyond_the_position_is_refused() -> None:
    fill = build_fill("sell", Decimal(2), Quote(Decimal(100), Decimal(101)), (FEE, SLIP))
    with pytest.raises(LedgerError, match="selling 2, holding 1"):
        apply_fill(Decimal(0), Position(Decimal(1), Decimal(90)), fill, "BTCUSDT", "USDT")


def test_fills_pay_the_spread_slippage_and_fee() -> None:
    quote = Quote(Decimal(100), Decimal(101))
    buy = build_fill("buy", Decimal(2), quote, (FEE, SLIP))
    assert buy.price == Decimal("101.0505")
    assert buy.fee == Decimal("0.20210100")
    assert buy.cash_delta == -(Decimal("202.101") + Decimal("0.202101"))
    sell = build_fill("sell", Decimal(2), quote, (FEE, SLIP))
    assert sell.price == Decimal("99.95")


def test_limit_orders_cross_and_never_fill_worse_than_their_price() -> None:
    quote = Quote(Decimal(100), Decimal(101))
    assert not crosses("buy", Decimal("100.5"), quote)
    assert crosses("buy", Decimal(101), quote)
    assert crosses("sell", Decimal(100), quote) and not crosses("sell", Decimal("100.5"), quote)
    assert build_fill("buy", Decimal(1), quote, (FEE, SLIP), Decimal(101)).price == Decimal(101)


# coins priced below 1e-5: a price step of 1e-8 is a large fraction of the price
tiny = st.decimals(min_value="0.00000001", max_value="0.00001", places=12)


@given(
    side=st.sampled_from(["buy", "sell"]), bid=tiny,
    spread=st.decimals(min_value="0", max_value="0.000001", places=12),
    slippage=st.decimals(min_value="0", max_value="0.01", places=6),
    offset=st.none() | st.decimals(min_value="0", max_value="0.000001", places=12),
)  # fmt: skip
@settings(max_examples=500)
def test_a_taker_fill_is_never_better_than_the_book_nor_worse_than_its_limit(
    side: str, bid: Decimal, spread: Decimal, slippage: Decimal, offset: Decimal | None
) -> None:
    """Rounded to the price step against the trader, then capped at the limit (a limit that
    the book crosses, `offset` inside it)."""
    quote = Quote(bid, bid + spread)
    limit = None
    if offset is not None:
        limit = quote.ask + offset if side == "buy" else quote.bid - offset
        if limit <= 0:
            return
    try:
        price = build_fill(side, Decimal(1), quote, (FEE, slippage), limit).price
    except ValueError as error:  # a sell below the smallest price, with nothing to cap it
        assert side == "sell" and limit is None and "smallest price" in str(error)
        assert quote.bid * (1 - slippage) < PRICE_DECIMALS
        return
    if side == "buy":
        assert price >= quote.ask and (limit is None or price <= limit)
    else:
        assert 0 < price <= quote.bid and (limit is None or price >= limit)
    assert (limit is not None and price == limit) or price % PRICE_DECIMALS == 0


def test_a_resting_limit_order_fills_at_its_limit_however_far_the_book_gapped() -> None:
    """The exchange's rule: the resting order is the maker and trades at its own price."""
    gapped = Quote(Decimal(90), Decimal("90.5"))
    buy = build_fill("buy", Decimal(2), gapped, (FEE, SLIP), Decimal(95), resting=True)
    assert (buy.price, buy.notional, buy.fee) == (Decimal(95), Decimal(190), Decimal("0.19"))
    sell = build_fill("sell", Decimal(1), Quote(Decimal(110), Decimal(111)), (FEE, SLIP),
                      Decimal(105), resting=True)  # fmt: skip
    assert sell.price == Decimal(105)


def test_a_taker_buy_of_a_tiny_coin_pays_at_least_the_ask() -> None:
    """Half-even rounding once made 1.4e-8 a 1e-8 fill, under the ask, and a capped buy dear."""
    assert build_fill("buy", Decimal(1), Quote(Decimal("1.3e-8"), Decimal("1.4e-8")),
                      (FEE, Decimal(0))).price == Decimal("2e-8")  # fmt: skip
    capped = build_fill("buy", Decimal(1), Quote(Decimal("1.2e-5"), Decimal("0.0000123456")),
                        (FEE, Decimal(0)), Decimal("0.000012345678"))  # fmt: skip
    assert capped.price == Decimal("0.000012345678")  # not 0.00001235, beyond the limit


EXCHANGE_SYMBOL = {
    "symbol": "BTCUSDT",
    "filters": [
        {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000.00",
         "tickSize": "0.01"},
        {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000", "stepSize": "0.00001"},
        {"filterType": "MARKET_LOT_SIZE", "minQty": "0", "maxQty": "50", "stepSize": "0"},
        {"filterType": "NOTIONAL", "minNotional": "5.00", "applyMinToMarket": True,
         "maxNotional": "9000000.00", "applyMaxToMarket": False, "avgPriceMins": 5},
    ],
}  # fmt: skip


def test_filters_round_to_the_steps_in_the_safe_direction() -> None:
    filters = parse_filters(EXCHANGE_SYMBOL)
    assert (filters.tick_size, filters.step_size) == (Decimal("0.01"), Decimal("0.00001"))
    assert (filters.min_notional, filters.max_notional) == (Decimal(5), Decimal(9000000))
    assert (filters.min_qty, filters.max_price) == (Decimal("0.00001"), Decimal(1000000))
    buy = apply_filters(filters, "buy", Decimal("0.123456789"), Decimal("30000.129"), Decimal(1))
    assert buy == (Decimal("0.12345"), Decimal("30000.12"))
    sell = apply_filters(filters, "sell", Decimal("0.1"), Decimal("30000.121"), Decimal(1))
    assert sell == (Decimal("0.1"), Decimal("30000.13"))


@pytest.mark.parametrize(
    ("quantity", "price", "message"),
    [
        (Decimal("0.000001"), None, "LOT_SIZE"),
        (Decimal("0.0001"), None, "NOTIONAL"),
        (Decimal(10000), None, "LOT_SIZE quantity"),
        (Decimal("0.001"), Decimal("0.001"), "PRICE_FILTER"),
    ],
)
def test_orders_breaking_a_filter_are_refused_naming_it(
    quantity: Decimal, price: Decimal | None, message: str
) -> None:
    with pytest.raises(FilterError, match=message):
        apply_filters(parse_filters(EXCHANGE_SYMBOL), "buy", quantity, price, Decimal(30000))


def test_a_market_order_meets_market_lot_size_and_a_limit_order_does_not_have_to() -> None:
    filters = parse_filters(EXCHANGE_SYMBOL)
    with pytest.raises(FilterError, match="MARKET_LOT_SIZE quantity: 60 is above the maximum 50"):
        apply_filters(filters, "sell", Decimal(60), None, Decimal(30000))
    assert apply_filters(filters, "sell", Decimal(60), Decimal(30000), None) == (
        Decimal(60),
        Decimal(30000),
    )


def _symbol(*filters: dict[str, object]) -> SymbolFilters:
    return parse_filters({"symbol": "XUSDT", "filters": list(filters)})


def test_market_lot_size_has_its_own_step_a_market_quantity_rounds_down_to() -> None:
    filters = _symbol(
        {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "1000", "stepSize": "0.001"},
        {"filterType": "MARKET_LOT_SIZE", "minQty": "0.1", "maxQty": "100", "stepSize": "0.1"},
    )
    assert apply_filters(filters, "buy", Decimal("1.2345"), None, Decimal(1)) == (
        Decimal("1.2"),
        None,
    )
    assert apply_filters(filters, "buy", Decimal("1.2345"), Decimal(1), None) == (
        Decimal("1.234"),
        Decimal(1),
    )
    with pytest.raises(FilterError, match=r"MARKET_LOT_SIZE stepSize 0\.1"):
        apply_filters(filters, "buy", Decimal("0.05"), None, Decimal(1))


@pytest.mark.parametrize(
    "notional",
    [
        {"filterType": "NOTIONAL", "minNotional": "5", "applyMinToMarket": False,
         "maxNotional": "100", "applyMaxToMarket": False, "avgPriceMins": 5},
        {"filterType": "MIN_NOTIONAL", "minNotional": "5", "applyToMarket": False,
         "avgPriceMins": 5},
    ],
)  # fmt: skip
def test_a_notional_rule_not_applied_to_market_orders_holds_only_limit_orders(
    notional: dict[str, object],
) -> None:
    filters = _symbol(notional)
    assert apply_filters(filters, "buy", Decimal(1), None, Decimal(1)) == (Decimal(1), None)
    with pytest.raises(FilterError, match="NOTIONAL: 1 is below the minimum 5"):
        apply_filters(filters, "buy", Decimal(1), Decimal(1), None)


def test_a_maximum_notional_applied_to_market_orders_refuses_a_large_one() -> None:
    filters = _symbol({"filterType": "NOTIONAL", "minNotional": "5", "applyMinToMarket": True,
                       "maxNotional": "100", "applyMaxToMarket": True})  # fmt: skip
    with pytest.raises(FilterError, match="NOTIONAL: 200 is above the maximum 100"):
        apply_filters(filters, "buy", Decimal(2), None, Decimal(100))
    with pytest.raises(FilterError, match="NOTIONAL: 4 is below the minimum 5"):
        apply_filters(filters, "buy", Decimal(4), None, Decimal(1))
