"""Arbitrage detection, pure: a planted triangle is found and sized, stale or non-finite quotes
never make an opportunity, and no opportunity ever claims more than the book holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from mastertrade.arbitrage.domain import Quotes, evaluate_spread
from mastertrade.arbitrage.domain.detector import Detector
from mastertrade.arbitrage.domain.triangle import Pair, find_triangles, parse_pairs
from mastertrade.core.market_messages import BookTicker

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
PAIRS = parse_pairs("BTC/USDT,ETH/BTC,ETH/USDT")


def quote(symbol: str, bid: str, ask: str, bid_qty: str = "10", ask_qty: str = "10", *,
          age: float = 0.0, venue: str = "binance") -> BookTicker:  # fmt: skip
    return BookTicker.model_validate(
        {"symbol": symbol, "bid": bid, "ask": ask, "bid_qty": bid_qty, "ask_qty": ask_qty,
         "time": NOW - timedelta(seconds=age), "venue": venue}
    )  # fmt: skip


def detector(**kwargs: object) -> Detector:
    return Detector(PAIRS, Decimal(10), timedelta(seconds=5), **kwargs)  # type: ignore[arg-type]


def test_the_triangle_is_found_from_the_pairs_starting_at_the_common_quote() -> None:
    (triangle,) = find_triangles(PAIRS)
    assert triangle.start == "USDT"
    assert triangle.cycles()[0] == ("USDT", "BTC", "ETH", "USDT")
    assert find_triangles(parse_pairs("BTC/USDT,ETH/USDT")) == ()


def test_a_planted_triangle_is_found_sized_by_the_book_and_priced_after_fees() -> None:
    found = detector()
    assert found.on_quote(quote("BTCUSDT", "50000", "50001", ask_qty="2"), NOW) == []
    assert found.on_quote(quote("ETHBTC", "0.0499", "0.05", ask_qty="10"), NOW) == []
    (best,) = found.on_quote(quote("ETHUSDT", "2600", "2601", bid_qty="3"), NOW)
    assert best.kind == "triangular"
    assert best.route == "USDT -> BTC -> ETH -> USDT"
    assert [(leg.symbol, leg.side) for leg in best.legs] == [
        ("BTCUSDT", "buy"), ("ETHBTC", "buy"), ("ETHUSDT", "sell"),
    ]  # fmt: skip
    keep = Decimal("0.999")
    rate = keep / Decimal(50001) * keep / Decimal("0.05") * Decimal(2600) * keep
    # ETHUSDT's bid quantity (3 ETH) is the binding limit: start = 3 / (ETH per USDT)
    start = Decimal(3) / (keep / Decimal(50001) * keep / Decimal("0.05"))
    assert abs(best.start_amount - start) < Decimal("1e-9")
    assert abs(best.expected_profit - start * (rate - 1)) < Decimal("1e-8")
    assert best.legs[2].amount_in <= 3
    assert best.legs[2].amount_in > Decimal("2.99999999")
    assert best.profit_bps == ((rate - 1) * 10_000).quantize(Decimal("0.0001"), "ROUND_DOWN")


def test_fees_can_eat_the_profit() -> None:
    found = Detector(PAIRS, Decimal(200), timedelta(seconds=5))
    found.on_quote(quote("BTCUSDT", "50000", "50001"), NOW)
    found.on_quote(quote("ETHBTC", "0.0499", "0.05"), NOW)
    assert found.on_quote(quote("ETHUSDT", "2600", "2601"), NOW) == []


def test_a_stale_quote_never_makes_an_opportunity() -> None:
    found = detector()
    found.on_quote(quote("BTCUSDT", "50000", "50001", age=6), NOW)  # older than 5 s: refused
    found.on_quote(quote("ETHBTC", "0.0499", "0.05"), NOW)
    assert found.on_quote(quote("ETHUSDT", "2600", "2601"), NOW) == []
    # fresh when recorded, stale by the time the triangle closes
    found.on_quote(quote("BTCUSDT", "50000", "50001", age=4), NOW)
    assert found.on_quote(quote("ETHUSDT", "2600", "2601"), NOW + timedelta(seconds=2)) == []


def test_freshness_is_judged_on_the_venues_own_clock() -> None:
    """The simulated market stamps quotes with its market time, hours ahead of the wall clock
    at MARKET_DATA_SPEED: its planted triangle is found; once the venue has moved on by more
    than the maximum age, its older quotes are stale though still ahead of the wall clock."""
    ahead = -2 * 3600.0  # two hours in the wall clock's future
    found = detector()
    found.on_quote(quote("BTCUSDT", "50000", "50001", age=ahead, venue="simulated"), NOW)
    found.on_quote(quote("ETHBTC", "0.0499", "0.05", age=ahead, venue="simulated"), NOW)
    (best,) = found.on_quote(quote("ETHUSDT", "2600", "2601", age=ahead, venue="simulated"), NOW)
    assert best.route == "USDT -> BTC -> ETH -> USDT"
    # ten market seconds later only ETHUSDT is quoted again: the other legs are stale
    later = ahead - 10
    assert found.on_quote(quote("ETHUSDT", "2600", "2601", age=later, venue="simulated"), NOW) == []
    # the venue's clock is its own: a real venue's quotes are still judged on the wall clock
    found.on_quote(quote("BTCUSDT", "50000", "50001"), NOW)
    found.on_quote(quote("ETHBTC", "0.0499", "0.05"), NOW)
    assert len(found.on_quote(quote("ETHUSDT", "2600", "2601"), NOW)) == 1


@pytest.mark.parametrize("bad", ["Infinity", "-Infinity", "NaN", "sNaN", "0", "-1", "1e30"])
def test_non_finite_or_out_of_bounds_quotes_are_refused(bad: str) -> None:
    with pytest.raises(ValidationError) as error:
        quote("ETHUSDT", bad, "2601")
    assert error.value.errors()[0]["loc"] == ("bid",)
    with pytest.raises(ValidationError):
        Quotes.model_validate({"buy_ask": "100", "sell_bid": bad})


def test_a_crossed_book_is_refused() -> None:
    with pytest.raises(ValidationError, match="crossed"):
        quote("ETHUSDT", "2602", "2601")


def test_the_spread_is_exact_and_infinity_is_not_profitable() -> None:
    result = evaluate_spread(Quotes.model_validate({"buy_ask": "100", "sell_bid": "100.5"}))
    assert result.net_bps == Decimal("30.0000")
    with pytest.raises(ValidationError, match="finite"):
        Quotes.model_validate({"buy_ask": "100", "sell_bid": "Infinity"})


@pytest.mark.parametrize(
    ("ask", "bid"), [("1e-30", "1e15"), ("1e15", "1e-30"), ("0.000001", "1e15")]
)
def test_spreads_between_the_bounds_of_an_amount_are_answered_to_four_places(
    ask: str, bid: str
) -> None:
    """(bid - ask) / ask in basis points, to four places, for any two accepted amounts; past
    1e24 it overflowed Decimal's default 28 digits (a 500)."""
    result = evaluate_spread(Quotes.model_validate({"buy_ask": ask, "sell_bid": bid}))
    exact = (Fraction(bid) - Fraction(ask)) / Fraction(ask) * 10_000
    assert abs(Fraction(result.gross_bps) - exact) <= Fraction(1, 20_000)
    assert Fraction(result.net_bps) == Fraction(result.gross_bps) - 20


def test_an_unknown_field_is_refused_not_ignored() -> None:
    with pytest.raises(ValidationError, match="extra"):
        Quotes.model_validate({"buy_ask": "100", "sell_bid": "101", "fees_bps": "0"})


def test_cross_venue_buys_low_and_sells_high_within_both_books() -> None:
    found = Detector(PAIRS, Decimal(10), timedelta(seconds=5), venue_fees_bps={"b": Decimal(5)})
    found.on_quote(quote("BTCUSDT", "49900", "50000", ask_qty="0.5", venue="a"), NOW)
    (best,) = found.on_quote(quote("BTCUSDT", "50200", "50300", bid_qty="2", venue="b"), NOW)
    assert best.kind == "cross_venue"
    assert best.route == "BTCUSDT: a -> b"
    assert best.start_amount == Decimal(25000)  # 0.5 BTC at 50000
    proceeds = Decimal("0.5") * Decimal("0.999") * Decimal(50200) * Decimal("0.9995")
    assert best.expected_profit == (proceeds - 25000).quantize(Decimal("1e-12"), "ROUND_DOWN")


prices = st.decimals(min_value="0.0001", max_value="100000", places=4)
quantities = st.decimals(min_value="0.001", max_value="1000", places=3)


@st.composite
def books(draw: st.DrawFn) -> list[BookTicker]:
    found = []
    for symbol in ("BTCUSDT", "ETHBTC", "ETHUSDT"):
        bid = draw(prices)
        ask = bid + draw(st.decimals(min_value="0", max_value="10", places=4))
        found.append(quote(symbol, str(bid), str(ask), str(draw(quantities)),
                           str(draw(quantities))))  # fmt: skip
    return found


@settings(max_examples=300, deadline=None)
@given(books(), st.decimals(min_value="0", max_value="100", places=2))
def test_every_opportunity_fits_the_book_and_really_pays(
    book: list[BookTicker], fee: Decimal
) -> None:
    found = Detector(PAIRS, fee, timedelta(seconds=5))
    opportunities = [item for q in book for item in found.on_quote(q, NOW)]
    by_symbol = {q.symbol: q for q in book}
    for item in opportunities:
        assert item.expected_profit >= 0 and item.profit_bps > 0
        assert item.legs[0].amount_in == item.start_amount
        for leg in item.legs:
            top = by_symbol[leg.symbol]
            if leg.side == "buy":  # never buys more base than the ask offers
                assert leg.amount_in <= top.ask * top.ask_qty + Decimal("1e-9")
            else:  # never sells more base than the bid takes
                assert leg.amount_in <= top.bid_qty + Decimal("1e-9")
        assert item.legs[-1].amount_out - item.start_amount >= item.expected_profit


@settings(max_examples=200, deadline=None)
@given(prices, prices, st.decimals(min_value="0", max_value="50", places=2))
def test_consistent_prices_never_make_a_triangle(
    btc: Decimal, eth_btc: Decimal, fee: Decimal
) -> None:
    found = Detector((Pair("BTC", "USDT"), Pair("ETH", "BTC"), Pair("ETH", "USDT")), fee,
                     timedelta(seconds=5))  # fmt: skip
    found.on_quote(quote("BTCUSDT", str(btc), str(btc)), NOW)
    found.on_quote(quote("ETHBTC", str(eth_btc), str(eth_btc)), NOW)
    eth = btc * eth_btc
    assert found.on_quote(quote("ETHUSDT", str(eth), str(eth)), NOW) == []
