"""The risk decision for one order request: approve, resize or reject, with every reason.

Spot trading, long only: a buy adds exposure, a sell reduces a position and can never exceed
it. Drawdown is measured from the equity peak (never from the start). Rules, in order:

1. kill switch on: reject everything;
2. a signal older than SIGNAL_LIFETIME_SECONDS (core/messages.py): reject;
3. order rate limit reached: reject;
4. drawdown from the peak at or beyond the limit (breaker enabled): the breaker trips;
5. a sell: approved up to the position held, less the sells approved and not filled yet
   (resized down), even with the breaker open;
6. a buy: rejected when its symbol is not quoted in QUOTE_ASSET (the asset equity is kept in),
   while the breaker is open, when equity is unknown, not positive or valued
   longer ago than MAX_EQUITY_AGE_SECONDS (the executor stopped revaluing: sizes and drawdown
   would be measured on a past account), when it would open a position beyond the maximum
   count (a holding worth less than DUST_FRACTION of equity at its mark, what an exchange's lot
   sizes leave behind a sell and no order can sell, is not a position); otherwise resized
   down to the room left under the position size limit: the symbol's position (its exposure:
   held at market, plus buys approved and not filled yet) stays within MAX_POSITION_SIZE_PCT
   of equity, whether one buy or several build it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import ROUND_DOWN, ROUND_FLOOR, Decimal, localcontext
from enum import StrEnum

from mastertrade.core.amounts import DUST_FRACTION, EXACT_DIGITS, exact_arithmetic
from mastertrade.core.messages import not_quoted_reason
from mastertrade.risk.domain.limits import RiskLimits

SIZING_DIGITS = EXACT_DIGITS
"""Significant digits of a buy's sizing, every step rounded down (core/amounts.py)."""


def is_dust(worth: Decimal, equity: Decimal | None) -> bool:
    """Is a holding worth `worth` too small to count as a position (equity known)?"""
    return equity is not None and equity > 0 and worth < equity * DUST_FRACTION


class Outcome(StrEnum):
    APPROVED = "approved"
    RESIZED = "resized"
    REJECTED = "rejected"


@dataclass(frozen=True)
class OrderRequest:
    """What a signal asks for: `quantity` of `symbol` at about `price`; `stale` says why the
    signal is too old to decide (`stale_signal`), None when it is not."""

    symbol: str
    side: str
    quantity: Decimal
    price: Decimal
    stale: str | None = None


@dataclass(frozen=True)
class RiskContext:
    """The portfolio as the rules see it at decision time.

    `equity` is None when the executor has not reported one yet; `equity_age` is how many
    seconds ago it valued the account. `symbol_exposure` is the value
    held in the symbol (at the higher of the signal's price and the executor's last mark of it)
    plus approved buys not yet filled; `position_quantity` what can be sold:
    what is held less the approved sells not yet filled. `open_positions` counts the symbols
    held (beyond dust) or being bought; `position_open` says whether this symbol is one of them
    (a buy of it adds to a position rather than opening one)."""

    equity: Decimal | None
    equity_peak: Decimal | None
    position_quantity: Decimal = Decimal(0)
    symbol_exposure: Decimal = Decimal(0)
    open_positions: int = 0
    position_open: bool = False
    orders_last_minute: int = 0
    breaker_open: bool = False
    kill_switch: bool = False
    equity_age: float = 0.0


@dataclass(frozen=True)
class RiskDecision:
    """The outcome, the quantity let through, every reason, the rule that limited it (a name
    that stays the same whatever the numbers in the reason; "" when nothing did), and what the
    breaker state becomes."""

    outcome: Outcome
    quantity: Decimal
    reasons: tuple[str, ...] = ()
    rule: str = ""
    trips_breaker: bool = False
    new_peak: Decimal | None = None
    drawdown: Decimal = Decimal(0)


def drawdown(equity: Decimal, peak: Decimal) -> Decimal:
    """Fall from the peak as a fraction of it (0 at or above the peak)."""
    if peak <= 0:
        return Decimal(0)
    return max(Decimal(0), (peak - equity) / peak)


def fell_beyond(equity: Decimal, peak: Decimal, limit: Decimal) -> bool:
    """Has the equity fallen `limit` (a fraction) or more below `peak`? Multiplied out, exactly:
    the rounded quotient `drawdown` could land on either side of the limit."""
    with exact_arithmetic():
        return peak > 0 and peak - equity >= limit * peak


def _floor(quantity: Decimal, step: Decimal) -> Decimal:
    return (quantity / step).to_integral_value(rounding=ROUND_DOWN) * step


def _reject(rule: str, reason: str) -> RiskDecision:
    return RiskDecision(Outcome.REJECTED, Decimal(0), (reason,), rule)


def _sized(request: OrderRequest, allowed: Decimal, why: str, rule: str) -> RiskDecision:
    if allowed >= request.quantity:
        return RiskDecision(Outcome.APPROVED, request.quantity)
    if allowed <= 0:
        return _reject(rule, f"{why}: nothing left to trade")
    return RiskDecision(Outcome.RESIZED, allowed, (why,), rule)


def _decide_sell(request: OrderRequest, context: RiskContext) -> RiskDecision:
    held = context.position_quantity
    if held <= 0:
        return _reject(
            "position_empty",
            f"no {request.symbol} left to sell: the position is empty or already being sold "
            "(spot trading is long only)",
        )
    return _sized(request, held, f"sell resized to the {held} {request.symbol} held", "position")


def _buy_room(
    request: OrderRequest, equity: Decimal, context: RiskContext, limits: RiskLimits
) -> tuple[Decimal, str]:
    """(value the buy may reach, why): what keeps the symbol's whole position, held and being
    bought, within MAX_POSITION_SIZE_PCT of equity, however many buys build it."""
    share = f"{limits.max_position_size_pct:.2%} of equity"
    room = equity * limits.max_position_size_pct - context.symbol_exposure
    if context.symbol_exposure <= 0:
        return room, f"position capped at {share}"
    why = (
        f"the {request.symbol} position, {context.symbol_exposure} held and being bought, "
        f"leaves {max(room, 0)} under {share}"
    )
    return room, why


def _decide_buy(
    request: OrderRequest, context: RiskContext, limits: RiskLimits, breaker: bool
) -> RiskDecision:
    if reason := not_quoted_reason(request.symbol, request.side, limits.quote_asset):
        # sized against an equity in another asset, its size would mean nothing; approved, it
        # would take a slot of the order rate and count as exposure until the executor refused it
        return _reject("not_quoted", reason)
    if breaker:
        return _reject(
            "circuit_breaker", "circuit breaker open: only orders that reduce a position"
        )
    equity = context.equity
    if equity is None or equity <= 0:
        return _reject("equity_unknown", "equity unknown or not positive: no new exposure")
    if context.equity_age > limits.max_equity_age_seconds:
        return _reject(
            "equity_stale",
            f"equity last valued {context.equity_age:.0f}s ago, more than "
            f"MAX_EQUITY_AGE_SECONDS={limits.max_equity_age_seconds}: no new exposure until the "
            "order executor revalues the account (is it running, and are quotes of every "
            "position fresh?)",
        )
    if not context.position_open and context.open_positions >= limits.max_open_positions:
        return _reject(
            "open_positions",
            f"{context.open_positions} positions open, the maximum is {limits.max_open_positions}",
        )
    # every step rounded down, at more digits than any amount has: a quotient rounded up
    # (28 digits, half-even by default) could land on the next step, past the limit
    with localcontext(prec=SIZING_DIGITS, rounding=ROUND_FLOOR):
        room, why = _buy_room(request, equity, context, limits)
        allowed = _floor(room / request.price, limits.quantity_step) if room > 0 else Decimal(0)
    return _sized(request, allowed, why, "position_size")


def assess_breaker(
    context: RiskContext, limits: RiskLimits
) -> tuple[bool, bool, Decimal, Decimal | None]:
    """(breaker open now, trips now, drawdown, new peak or None when unchanged)."""
    if context.equity is None:
        return context.breaker_open, False, Decimal(0), None
    peak = max(context.equity_peak or context.equity, context.equity)
    fall = drawdown(context.equity, peak)
    beyond = limits.circuit_breaker_enabled and fell_beyond(
        context.equity, peak, limits.max_portfolio_drawdown_pct
    )
    trips = beyond and not context.breaker_open
    # a peak of nothing is no peak: the drawdown is measured from the first positive equity
    new_peak = peak if peak > 0 and peak != context.equity_peak else None
    return context.breaker_open or beyond, trips, fall, new_peak


def _rule(
    request: OrderRequest, context: RiskContext, limits: RiskLimits, breaker: bool
) -> RiskDecision:
    if context.kill_switch:
        return _reject("kill_switch", "kill switch on: no orders at all")
    if request.stale is not None:
        return _reject("signal_stale", request.stale)
    if context.orders_last_minute >= limits.max_orders_per_minute:
        return _reject(
            "order_rate",
            f"order rate limit: {context.orders_last_minute} orders in the last minute, "
            f"the maximum is {limits.max_orders_per_minute}",
        )
    if request.side == "sell":
        return _decide_sell(request, context)
    return _decide_buy(request, context, limits, breaker)


def decide(request: OrderRequest, context: RiskContext, limits: RiskLimits) -> RiskDecision:
    """The decision for one request; see the module's docstring for the rules."""
    breaker, trips, fall, new_peak = assess_breaker(context, limits)
    decision = _rule(request, context, limits, breaker)
    return replace(decision, trips_breaker=trips, new_peak=new_peak, drawdown=fall)
