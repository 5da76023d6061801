"""Arithmetic on amounts is exact where it must be (core/amounts.py `exact_arithmetic`): every
case below passes `check_finite_amount` and was rounded wrongly at Python's default 28 digits.
Each is checked against `Fraction`, exact by construction, not against another Decimal sum."""

from __future__ import annotations

import random
from decimal import Decimal, localcontext
from fractions import Fraction
from types import SimpleNamespace
from typing import Any

import pytest

from mastertrade.alerts.domain.report import drawdown_pct
from mastertrade.core.amounts import check_finite_amount
from mastertrade.execution.adapters import paper_batch
from mastertrade.execution.domain import filters, ledger, paper
from mastertrade.execution.domain.price_guard import runaway_price
from mastertrade.risk.adapters.store import BatchView
from mastertrade.risk.domain import rules
from mastertrade.risk.domain.limits import RiskLimits
from mastertrade.risk.domain.position_check import PositionCheck, evaluate_position
from mastertrade.strategy.live import buy_quantity

RATE = Decimal("0.001")


def amount(text: str) -> Decimal:
    return check_finite_amount(Decimal(text))


def test_a_taker_never_fills_better_than_the_book() -> None:
    ask = amount("123456789012345.123456780000000000001")
    bid = amount("123456789012345.123456789999999999999")
    assert paper.fill_price("buy", paper.Quote(ask, ask), Decimal(0), None) >= ask
    assert paper.fill_price("sell", paper.Quote(bid, bid), Decimal(0), None) <= bid


def test_the_fee_is_never_less_than_the_rate_says() -> None:
    quantity, price = amount("1000000.0000000000000000000001"), Decimal(1)
    fill = paper.build_fill("buy", quantity, paper.Quote(price, price), (RATE, Decimal(0)), price,
                            resting=True)  # fmt: skip
    assert Fraction(fill.notional) == Fraction(quantity)
    assert Fraction(fill.fee) >= Fraction(quantity) * Fraction(RATE)
    assert fill.fee == Decimal("1000.00000001")


def test_a_large_fill_is_booked_not_an_error() -> None:
    """1e15 coins at 1e12: a fee of 1e24 to 8 places has 33 digits, past the default 28."""
    big = amount("1e12")
    fill = paper.build_fill("sell", amount("1e15"), paper.Quote(big, big), (RATE, Decimal(0)))
    assert fill.fee == Decimal("1e24")


def _limit_buy(order_id: str, quantity: str) -> dict[str, Any]:
    return {"client_order_id": order_id, "symbol": "BTCUSDT", "side": "buy", "type": "limit",
            "price": Decimal(1), "status": "new", "reserved": Decimal(0), "approved_at": None,
            "environment": "paper", "signal_ref": "s", "filled_quantity": Decimal(0),
            "average_price": None, "fee": Decimal(0), "reason": None, "reduce_only": False,
            "quantity": amount(quantity)}  # fmt: skip


def test_what_resting_buys_hold_back_is_all_released_when_they_are_cancelled() -> None:
    """Locked went to -4E-26 after two cancels: the balances' CHECK (locked >= 0) then refused
    the batch's write on every retry."""
    books = paper_batch.RunningBooks(free=amount("1e15"), locked=Decimal(0), held={}, marks={})
    costs = paper_batch.Costs(RATE, Decimal(0), "USDT")
    orders = [_limit_buy("o1", "99999999999999"), _limit_buy("o2", "1.00000000000000000000000004")]
    reserved = []
    with localcontext() as default:  # what the executor runs in: Python's default context
        assert default.prec == 28
        for order in orders:
            paper_batch.rest(order, books, costs)
            reserved.append(books.updates[-1][5])
        for order, held_back in zip(orders, reserved, strict=True):
            books.cancel({**order, "status": "submitted", "reserved": held_back}, "cancelled")
    assert (books.free, books.locked) == (Decimal("1e15"), Decimal(0))


def test_cash_and_equity_add_up_to_the_last_digit() -> None:
    cash = amount("0.000000000000000000000000000001")
    sold = paper.PaperFill("sell", Decimal(1), Decimal(5), Decimal(5), Decimal(0))
    new_cash, _ = ledger.apply_fill(cash, ledger.Position(Decimal(1), Decimal(5)), sold, "X", "U")
    assert Fraction(new_cash) == Fraction(cash) + 5
    held = {"BTCUSDT": ledger.Position(amount("0.000000000000000000000000000007"), Decimal(1))}
    total = amount("999999999999999.000000000000002")
    valued = ledger.derive_equity(total, held, {"BTCUSDT": Decimal(3)})
    assert valued is not None
    value, equity = valued
    assert Fraction(equity) == Fraction(total) + Fraction(value)
    assert Fraction(value) == Fraction(held["BTCUSDT"].quantity) * 3


def test_an_order_is_never_rounded_past_what_was_approved_or_asked() -> None:
    approved = amount("0.99999999999999999999999999999")
    lot = filters.SymbolFilters("BTCUSDT", step_size=Decimal("0.00000001"))
    assert filters.round_quantity(lot, approved, market=False) == Decimal("0.99999999")
    limit = amount("99.999999999999999999999999999999")
    tick = filters.SymbolFilters("BTCUSDT", tick_size=Decimal("0.01"))
    assert filters.apply_filters(tick, "buy", Decimal(1), limit, None)[1] == Decimal("99.99")
    assert filters.apply_filters(tick, "sell", Decimal(1), limit, None)[1] == Decimal("100")


def test_a_fill_above_the_exact_price_ceiling_is_refused() -> None:
    sized, fill = amount("1.00000000000000000000000000042"), amount("1.500000000000000000000000001")
    assert Fraction(fill) > Fraction(sized) * Fraction(3, 2)
    assert runaway_price("buy", "market", sized, fill, Decimal("0.5")) is not None


def test_a_buy_is_sized_to_the_cap_on_the_exact_exposure() -> None:
    held, price, limits = amount("1.000000000000000000000000000049"), Decimal(10), RiskLimits()
    view = BatchView(version=1, equity=Decimal(100), equity_peak=Decimal(100), breaker_open=False,
                     kill_switch=False, recent=0, equity_age=0.0, held={"BTCUSDT": held},
                     held_cost={"BTCUSDT": held * 10}, held_mark={"BTCUSDT": price}, pending={},
                     selling={})  # fmt: skip
    context = view.context("BTCUSDT", price)
    assert Fraction(context.symbol_exposure) == Fraction(held) * 10
    decision = rules.decide(rules.OrderRequest("BTCUSDT", "buy", Decimal(1), price), context,
                            limits)  # fmt: skip
    after = Fraction(held) * 10 + Fraction(decision.quantity) * 10
    assert after <= Fraction(100) * Fraction(limits.max_position_size_pct)


def test_buys_approved_in_a_batch_count_as_the_database_sums_them() -> None:
    view = BatchView(1, Decimal(100), Decimal(100), False, False, 0, 0.0, {}, {}, {}, {}, {})
    price, quantity = (
        amount("3.0000000000000000000000000007"),
        amount("3.00000000000000000000000007"),
    )
    signal: Any = SimpleNamespace(symbol="BTCUSDT", side="buy", price=price)
    view.apply(signal, rules.RiskDecision(rules.Outcome.APPROVED, quantity))
    assert Fraction(view.pending["BTCUSDT"]) == Fraction(price) * Fraction(quantity)


def test_the_breaker_trips_exactly_at_the_limit_and_not_a_digit_before() -> None:
    """Peaks of 40 digits: the drawdown's 28-digit quotient fell on either side of 15 %."""
    limits, chosen = RiskLimits(), random.Random(1)
    for _ in range(300):
        peak = Decimal(chosen.randrange(10**39, 10**40)).scaleb(-25)
        with localcontext(prec=200):
            at_limit = peak * (1 - limits.max_portfolio_drawdown_pct)
            just_above = at_limit + Decimal("1e-25")
        for equity, trips in ((at_limit, True), (just_above, False)):
            context = rules.RiskContext(equity=equity, equity_peak=peak)
            exact = (Fraction(peak) - Fraction(equity)) / Fraction(peak)
            assert (exact >= Fraction(limits.max_portfolio_drawdown_pct)) is trips
            assert rules.assess_breaker(context, limits)[1] is trips, (peak, equity)


@pytest.mark.parametrize("price", ["3.3333333333333333333333333333334", "100.05", "0.00001234"])
def test_a_strategys_buy_never_costs_more_than_its_notional(price: str) -> None:
    notional = Decimal(100)
    quantity = buy_quantity(notional, amount(price))
    assert Fraction(quantity) * Fraction(price) <= notional
    assert (Fraction(quantity) + Fraction(1, 10**8)) * Fraction(price) > notional  # the most


def test_the_stateless_check_judges_size_and_drawdown_exactly() -> None:
    """`POST /api/v1/check`: a position a hair over the size limit, or a fall exactly at the
    drawdown limit, of 40-digit portfolios."""
    limits, chosen = RiskLimits(), random.Random(2)
    for _ in range(300):
        portfolio = Decimal(chosen.randrange(10**39, 8 * 10**39)).scaleb(-25)
        with localcontext(prec=200):
            over = portfolio * limits.max_position_size_pct + Decimal("1e-25")
            # a peak it is 15 % under, to 60 places
            fallen = (portfolio / (1 - limits.max_portfolio_drawdown_pct)).quantize(
                Decimal("1e-60")
            )
        size = PositionCheck(position_value=over, portfolio_value=portfolio,
                             portfolio_peak=portfolio)  # fmt: skip
        assert not evaluate_position(size, limits).approved, portfolio
        fall = PositionCheck(position_value=Decimal(0), portfolio_value=portfolio,
                             portfolio_peak=fallen)  # fmt: skip
        exact = (Fraction(fall.portfolio_peak) - Fraction(portfolio)) / Fraction(
            fall.portfolio_peak
        )
        trips = exact >= Fraction(limits.max_portfolio_drawdown_pct)
        assert (not evaluate_position(fall, limits).approved) is trips, portfolio


def test_the_daily_reports_drawdown_is_rounded_once() -> None:
    """12.344999...9 % (32 digits) is 12.34 %, not 12.35 % by way of 28 digits."""
    assert drawdown_pct(amount("87.655000000000000000000000000001"), Decimal(100)) == Decimal(
        "12.34"
    )
