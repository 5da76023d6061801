"""Property tests of the pure risk rules: sizes, drawdown from the peak, breaker, limits."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from mastertrade.core.messages import SIGNAL_LIFETIME_SECONDS, Signal, stale_signal
from mastertrade.risk.adapters.store import build_events
from mastertrade.risk.domain import (
    OrderRequest,
    Outcome,
    PositionCheck,
    RiskContext,
    RiskLimits,
    decide,
    drawdown,
    evaluate_position,
    is_dust,
)
from mastertrade.strategy.live import EXIT_WAIT_SECONDS
from mastertrade_model.topology import ALERTS

LIMITS = RiskLimits()
money = st.decimals(min_value="0.01", max_value="1000000", places=2)
qty = st.decimals(min_value="0.0001", max_value="1000", places=4)


@given(equity=money, peak=money, exposure=money, held=qty, order=st.tuples(qty, money))
@settings(max_examples=300)
def test_a_buy_never_takes_the_position_beyond_its_size_limit(
    equity: Decimal, peak: Decimal, exposure: Decimal, held: Decimal,
    order: tuple[Decimal, Decimal],
) -> None:  # fmt: skip
    request_qty, price = order
    context = RiskContext(equity=equity, equity_peak=peak, position_quantity=held,
                          symbol_exposure=exposure)  # fmt: skip
    decision = decide(OrderRequest("BTCUSDT", "buy", request_qty, price), context, LIMITS)
    assert Decimal(0) <= decision.quantity <= request_qty
    if decision.outcome is Outcome.REJECTED:
        assert decision.quantity == 0 and decision.reasons
        return
    value = decision.quantity * price
    assert exposure + value <= equity * LIMITS.max_position_size_pct
    assert (decision.outcome is Outcome.RESIZED) == (decision.quantity < request_qty)


@given(held=qty, request_qty=qty, breaker=st.booleans(), equity=money)
def test_a_sell_only_reduces_and_passes_an_open_breaker(
    held: Decimal, request_qty: Decimal, breaker: bool, equity: Decimal
) -> None:
    context = RiskContext(equity=equity, equity_peak=equity * 2, position_quantity=held,
                          breaker_open=breaker)  # fmt: skip
    decision = decide(OrderRequest("ETHUSDT", "sell", request_qty, Decimal(10)), context, LIMITS)
    assert decision.outcome is not Outcome.REJECTED
    assert decision.quantity == min(held, request_qty)


@given(equity=money, peak=money)
def test_the_breaker_trips_exactly_at_the_drawdown_from_the_peak(
    equity: Decimal, peak: Decimal
) -> None:
    context = RiskContext(equity=equity, equity_peak=peak)
    decision = decide(OrderRequest("BTCUSDT", "buy", Decimal(1), Decimal(1)), context, LIMITS)
    true_peak = max(peak, equity)
    fall = (true_peak - equity) / true_peak
    assert decision.drawdown == fall
    assert decision.trips_breaker == (fall >= LIMITS.max_portfolio_drawdown_pct)
    if decision.trips_breaker:
        assert decision.outcome is Outcome.REJECTED
        assert "circuit breaker" in decision.reasons[0]
    assert decision.new_peak == (equity if equity > peak else None)


def test_drawdown_is_from_the_peak_not_the_start() -> None:
    # started at 10000, rose to 20000, now 17000: 15 % below the peak, 70 % above the start
    assert drawdown(Decimal(17000), Decimal(20000)) == Decimal("0.15")
    context = RiskContext(equity=Decimal(17000), equity_peak=Decimal(20000))
    decision = decide(OrderRequest("BTCUSDT", "buy", Decimal(1), Decimal(1)), context, LIMITS)
    assert decision.trips_breaker and decision.outcome is Outcome.REJECTED


def test_a_disabled_breaker_never_trips() -> None:
    limits = RiskLimits(circuit_breaker_enabled=False)
    context = RiskContext(equity=Decimal(5000), equity_peak=Decimal(10000))
    decision = decide(OrderRequest("BTCUSDT", "buy", Decimal(1), Decimal(1)), context, limits)
    assert decision.drawdown == Decimal("0.5")
    assert not decision.trips_breaker and decision.outcome is Outcome.APPROVED


def test_an_account_at_zero_has_no_peak_and_buys_nothing() -> None:
    """A peak of zero would make every later drawdown meaningless (and the state refuses it)."""
    context = RiskContext(equity=Decimal(0), equity_peak=None)
    decision = decide(OrderRequest("BTCUSDT", "buy", Decimal(1), Decimal(1)), context, LIMITS)
    assert decision.new_peak is None
    assert decision.outcome is Outcome.REJECTED and "not positive" in decision.reasons[0]


def test_a_sell_gets_only_what_is_not_being_sold_already() -> None:
    """`position_quantity` is what is held less the sells approved and not filled yet."""
    request = OrderRequest("BTCUSDT", "sell", Decimal(1), Decimal(1))
    part = decide(request, RiskContext(Decimal(1000), None, position_quantity=Decimal("0.4")),
                  LIMITS)  # fmt: skip
    none = decide(request, RiskContext(Decimal(1000), None, position_quantity=Decimal(0)), LIMITS)
    assert (part.outcome, part.quantity) == (Outcome.RESIZED, Decimal("0.4"))
    assert none.outcome is Outcome.REJECTED and "left to sell" in none.reasons[0]


@pytest.mark.parametrize(("age", "passes"), [(59.0, True), (60.0, True), (60.5, False)])
def test_buys_wait_for_a_fresh_valuation_of_the_account(age: float, passes: bool) -> None:
    """Sized on a valuation the executor stopped updating, a buy could be any multiple of the
    limits; sells still pass (they only reduce)."""
    context = RiskContext(equity=Decimal(10000), equity_peak=None, equity_age=age,
                          position_quantity=Decimal(1))  # fmt: skip
    buy = decide(OrderRequest("BTCUSDT", "buy", Decimal(1), Decimal(1)), context, LIMITS)
    sell = decide(OrderRequest("BTCUSDT", "sell", Decimal(1), Decimal(1)), context, LIMITS)
    assert (buy.outcome is Outcome.APPROVED) == passes
    if not passes:
        assert "MAX_EQUITY_AGE_SECONDS=60" in buy.reasons[0]
    assert sell.outcome is Outcome.APPROVED


def test_an_open_breaker_rejects_buys_even_after_recovery() -> None:
    context = RiskContext(equity=Decimal(10000), equity_peak=Decimal(10000), breaker_open=True)
    decision = decide(OrderRequest("BTCUSDT", "buy", Decimal(1), Decimal(1)), context, LIMITS)
    assert decision.outcome is Outcome.REJECTED and not decision.trips_breaker


@pytest.mark.parametrize(
    ("context", "reason"),
    [
        (RiskContext(equity=Decimal(1000), equity_peak=None, kill_switch=True), "kill switch"),
        (RiskContext(equity=Decimal(1000), equity_peak=None, orders_last_minute=60), "rate limit"),
        (RiskContext(equity=Decimal(1000), equity_peak=None, open_positions=10), "positions open"),
        (RiskContext(equity=None, equity_peak=None), "equity unknown"),
    ],
)
def test_each_limit_rejects_with_its_reason(context: RiskContext, reason: str) -> None:
    decision = decide(OrderRequest("BTCUSDT", "buy", Decimal(1), Decimal(1)), context, LIMITS)
    assert decision.outcome is Outcome.REJECTED
    assert reason in decision.reasons[0]


def test_a_signal_holds_for_its_lifetime_and_not_a_second_more() -> None:
    made = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    lifetime = timedelta(seconds=SIGNAL_LIFETIME_SECONDS)
    assert stale_signal(made, made + lifetime) is None
    reason = stale_signal(made, made + lifetime + timedelta(seconds=1))
    assert reason is not None and reason.startswith(
        "signal made 601 s ago (2026-12-07T12:00:00+00:00), and a signal holds for 600 s"
    )
    assert stale_signal(made + timedelta(seconds=5), made) is None  # clocks a little apart
    ahead = stale_signal(made + lifetime + timedelta(seconds=1), made)
    assert ahead is not None and "ahead of this clock" in ahead


def test_a_stale_signal_is_rejected_buy_or_sell_whatever_else_holds() -> None:
    context = RiskContext(equity=Decimal(10000), equity_peak=Decimal(10000),
                          position_quantity=Decimal(1))  # fmt: skip
    for side in ("buy", "sell"):
        request = OrderRequest("BTCUSDT", side, Decimal("0.01"), Decimal(100), "made long ago")
        decision = decide(request, context, LIMITS)
        assert (decision.outcome, decision.rule, decision.reasons) == (
            Outcome.REJECTED, "signal_stale", ("made long ago",))  # fmt: skip


def test_a_buy_decided_after_its_exit_stopped_waiting_for_it_is_too_old_to_approve() -> None:
    """An exit that found nothing held waits EXIT_WAIT_SECONDS for the buy before it (the risk
    manager away); a buy decided later than that would be held with no exit to come."""
    assert SIGNAL_LIFETIME_SECONDS < EXIT_WAIT_SECONDS


def test_a_signal_time_without_a_time_zone_is_refused_saying_so() -> None:
    with pytest.raises(ValidationError, match=r"created_at\n.*timezone"):
        Signal.model_validate({"signal_id": "s", "symbol": "BTCUSDT", "side": "buy",
                               "quantity": "1", "price": "1",
                               "created_at": "2026-12-07T12:00:00"})  # fmt: skip


def test_a_kill_switch_stops_sells_too() -> None:
    context = RiskContext(equity=Decimal(1000), equity_peak=None, position_quantity=Decimal(1),
                          kill_switch=True)  # fmt: skip
    decision = decide(OrderRequest("BTCUSDT", "sell", Decimal(1), Decimal(1)), context, LIMITS)
    assert decision.outcome is Outcome.REJECTED


def test_a_resize_is_floored_to_the_quantity_step() -> None:
    context = RiskContext(equity=Decimal(10000), equity_peak=Decimal(10000))
    decision = decide(OrderRequest("BTCUSDT", "buy", Decimal(1), Decimal(30000)), context, LIMITS)
    assert decision.outcome is Outcome.RESIZED
    assert decision.quantity == Decimal("0.06666666")


@pytest.mark.parametrize("bad", ["Infinity", "-Infinity", "NaN", "1e30", "sNaN"])
def test_the_check_refuses_non_finite_or_huge_values(bad: str) -> None:
    with pytest.raises(ValidationError, match=r"finite|bounds"):
        PositionCheck.model_validate(
            {"position_value": bad, "portfolio_value": "10000", "portfolio_peak": "10000"}
        )


def test_a_peak_below_the_value_is_no_drawdown() -> None:
    check = PositionCheck.model_validate(
        {"position_value": "100", "portfolio_value": "10000", "portfolio_peak": "9000"}
    )
    assert evaluate_position(check, LIMITS).reasons == []


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("quantity", "Infinity", "finite"),
        ("price", "NaN", "finite"),
        ("quantity", "-1", "greater than 0"),
        ("symbol", "BTC/USDT", "symbol"),
    ],
)
def test_signals_refuse_bad_fields_with_a_clear_message(
    field: str, value: str, message: str
) -> None:
    payload = {"signal_id": "s1", "symbol": "BTCUSDT", "side": "buy", "quantity": "1",
               "price": "100", field: value}  # fmt: skip
    with pytest.raises(ValidationError, match=message):
        Signal.model_validate(payload)


def test_amounts_travel_as_decimal_strings() -> None:
    signal = Signal(signal_id="s1", symbol="btcusdt", side="buy", quantity=Decimal("0.1"),
                    price=Decimal("30000.5"))  # fmt: skip
    body = signal.to_json()
    assert (body["symbol"], body["quantity"], body["price"]) == ("BTCUSDT", "0.1", "30000.5")
    assert Signal.model_validate(body) == signal


def test_a_buy_adding_to_an_open_position_is_not_refused_for_the_count() -> None:
    """At the maximum count a buy of a new symbol is refused; one of a symbol already open
    adds to its position and is sized as usual."""
    request = OrderRequest("BTCUSDT", "buy", Decimal(1), Decimal(1))
    full = RiskContext(equity=Decimal(1000), equity_peak=None, open_positions=10)
    new = decide(request, full, LIMITS)
    adding = decide(request, replace(full, position_open=True), LIMITS)
    assert new.outcome is Outcome.REJECTED and "positions open" in new.reasons[0]
    assert adding.outcome is Outcome.APPROVED


@pytest.mark.parametrize(
    ("cost", "equity", "dust"),
    [("9.99", "10000", True), ("10", "10000", False), ("0.01", None, False), ("5", "0", False)],
)
def test_dust_is_a_holding_under_a_thousandth_of_known_positive_equity(
    cost: str, equity: str | None, dust: bool
) -> None:
    assert is_dust(Decimal(cost), Decimal(equity) if equity else None) is dust


def test_a_resize_never_rounds_up_past_the_size_limit() -> None:
    """2000 of room at a price a hair above 2000 buys a step less than 1: the quotient just
    under 1 must not round up onto 1 (Decimal's default 28 digits, half-even, would)."""
    context = RiskContext(equity=Decimal(10000), equity_peak=Decimal(10000))
    price = Decimal("2000.0000000000000000000000000000000000002")
    decision = decide(OrderRequest("BTCUSDT", "buy", Decimal(5), price), context, LIMITS)
    assert decision.outcome is Outcome.RESIZED
    assert decision.quantity == Decimal("0.99999999")
    assert decision.quantity * price <= Decimal(10000) * LIMITS.max_position_size_pct


def test_buys_one_after_another_never_build_a_position_beyond_its_size_limit() -> None:
    """The issue's rule is on the position, not the order: four buys of BTC at 50000, each
    worth 30 % of an equity of 10000, leave at most 20 % of it in BTC (each buy's value counts
    as the symbol's exposure for the next, as the risk manager's view does)."""
    equity, price, exposure, bought = Decimal(10000), Decimal(50000), Decimal(0), []
    for _ in range(4):
        context = RiskContext(equity=equity, equity_peak=equity, symbol_exposure=exposure,
                              position_open=exposure > 0)  # fmt: skip
        decision = decide(OrderRequest("BTCUSDT", "buy", Decimal("0.06"), price), context, LIMITS)
        bought.append((decision.outcome, decision.quantity))
        exposure += decision.quantity * price
    assert bought == [
        (Outcome.RESIZED, Decimal("0.04")),
        (Outcome.REJECTED, Decimal(0)),
        (Outcome.REJECTED, Decimal(0)),
        (Outcome.REJECTED, Decimal(0)),
    ]
    assert exposure == equity * LIMITS.max_position_size_pct
    context = RiskContext(equity=equity, equity_peak=equity, symbol_exposure=Decimal(1500),
                          position_open=True)  # fmt: skip
    topped = decide(OrderRequest("BTCUSDT", "buy", Decimal("0.06"), price), context, LIMITS)
    assert (topped.outcome, topped.quantity, topped.rule) == (
        Outcome.RESIZED,
        Decimal("0.01"),
        "position_size",
    )
    assert "the BTCUSDT position, 1500 held and being bought, leaves 500" in topped.reasons[0]


def test_a_buy_of_a_pair_not_quoted_in_the_accounts_asset_is_rejected_saying_so() -> None:
    """Equity is in USDT: an ETHBTC buy at 0.05 sized against it would be 40000 ETH; it is
    rejected with the reason, and a sell of the pair (unwinding what an older version bought)
    still passes."""
    context = RiskContext(equity=Decimal(10000), equity_peak=Decimal(10000),
                          position_quantity=Decimal(2))  # fmt: skip
    buy = decide(OrderRequest("ETHBTC", "buy", Decimal(1), Decimal("0.05")), context, LIMITS)
    assert (buy.outcome, buy.rule) == (Outcome.REJECTED, "not_quoted")
    assert "ETHBTC is not quoted in USDT (QUOTE_ASSET)" in buy.reasons[0]
    sell = decide(OrderRequest("ETHBTC", "sell", Decimal(1), Decimal("0.05")), context, LIMITS)
    assert sell.outcome is Outcome.APPROVED
    in_btc = RiskLimits(quote_asset="BTC")
    assert decide(OrderRequest("ETHBTC", "buy", Decimal(1), Decimal("0.05")), context,
                  in_btc).outcome is Outcome.APPROVED  # fmt: skip


def rejected_alert(signal: Signal, context: RiskContext) -> dict[str, str]:
    """The alert event a rejection publishes (built as the risk manager builds it)."""
    request = OrderRequest(signal.symbol, signal.side, signal.quantity, signal.price)
    decision = decide(request, context, LIMITS)
    assert decision.outcome is Outcome.REJECTED
    [alert] = [body for exchange, _, body in build_events(signal, decision, None, "paper")
               if exchange == ALERTS.name]  # fmt: skip
    return {key: str(value) for key, value in alert.items()}


def test_a_rejection_of_any_accepted_quantity_makes_a_valid_alert() -> None:
    """An accepted quantity may carry any number of digits; the alert's title may not: it used
    to fail validation, and the whole signal went to the dead letters undecided."""
    signal = Signal(signal_id="s1", symbol="BTCUSDT", side="sell",
                    quantity=Decimal("0." + "1" * 190), price=Decimal(100))  # fmt: skip
    alert = rejected_alert(signal, RiskContext(equity=Decimal(1000), equity_peak=None))
    assert alert["title"] == "Risk rejected sell 0.111111111111 BTCUSDT"


def test_rejections_by_one_rule_share_an_alert_key_whatever_their_numbers() -> None:
    """The account not revalued: each buy is rejected with a later age in its reason; one
    alert, not one per signal, is what an operator needs."""
    signal = Signal(signal_id="s1", symbol="BTCUSDT", side="buy", quantity=Decimal(1),
                    price=Decimal(100))  # fmt: skip
    stale = [RiskContext(equity=Decimal(1000), equity_peak=None, equity_age=age)
             for age in (75.0, 76.0)]  # fmt: skip
    keys = {rejected_alert(signal, context)["dedup_key"] for context in stale}
    full = RiskContext(equity=Decimal(1000), equity_peak=None, open_positions=10)
    assert len(keys) == 1
    assert rejected_alert(signal, full)["dedup_key"] not in keys  # another rule, another alert
