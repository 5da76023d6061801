"""One finite-amount check with one bound: the trading messages, the bus's book tickers and the
exchange events accept exactly the same amounts, up to and including 1e15, and nothing beyond."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from mastertrade.core.amounts import (
    AMOUNT_FLOOR,
    AMOUNT_LIMIT,
    AmountError,
    check_finite_amount,
)
from mastertrade.core.market_messages import BookTicker
from mastertrade.core.messages import Amount, Signal
from mastertrade.core.prices import PriceUnavailableError, parse_book
from mastertrade.market_data.domain.events import MalformedEventError, exact

LARGEST = Decimal("1e15")
JUST_ABOVE = LARGEST + Decimal("1e-8")  # one satoshi more


class Signed(BaseModel):
    value: Amount


def signal(quantity: Decimal) -> Any:
    return Signal.model_validate(
        {
            "signal_id": "s-1",
            "symbol": "BTCUSDT",
            "side": "buy",
            "quantity": str(quantity),
            "price": "1",
        }
    ).quantity


def ticker(bid: Decimal) -> Any:
    return BookTicker.model_validate(
        {
            "symbol": "BTCUSDT",
            "bid": str(bid),
            "ask": str(bid),
            "bid_qty": "1",
            "ask_qty": "1",
            "time": datetime(2025, 1, 1, tzinfo=UTC),
        }
    ).bid


def event(value: Decimal) -> Any:
    return exact(str(value), "price")


def book(bid: Decimal) -> Any:
    """The executor's quote as read from Redis."""
    return parse_book("BTCUSDT", {"bid": str(bid), "ask": str(bid), "ts": "0"}).bid


USERS: list[Callable[[Decimal], Any]] = [signal, ticker, event, book, check_finite_amount]


def test_the_bound_is_1e15() -> None:
    assert AMOUNT_LIMIT == LARGEST


@pytest.mark.parametrize("use", USERS)
def test_every_user_accepts_the_bound_itself_and_a_satoshi_below(use: Callable[..., Any]) -> None:
    assert use(LARGEST) == LARGEST
    assert use(LARGEST - Decimal("1e-8")) == LARGEST - Decimal("1e-8")
    assert use(Decimal("1e-8")) == Decimal("1e-8")


@pytest.mark.parametrize("use", USERS)
@pytest.mark.parametrize(
    "bad",
    [JUST_ABOVE, Decimal("1e18"), Decimal("Infinity"), Decimal("NaN"), Decimal("1e-999999"),
     Decimal("9.9e-31")],
)  # fmt: skip
def test_every_user_refuses_non_finite_or_beyond_the_bound(
    use: Callable[..., Any], bad: Decimal
) -> None:
    with pytest.raises(
        (ValidationError, MalformedEventError, AmountError, PriceUnavailableError)
    ) as error:
        use(bad)
    assert "finite" in str(error.value) or "out of bounds" in str(error.value)


@pytest.mark.parametrize("use", USERS)
@pytest.mark.parametrize("bad", ["1." + "0" * 16384, "0E+99999"])
def test_every_user_refuses_what_postgresql_could_not_store(
    use: Callable[..., Any], bad: str
) -> None:
    """Within the bounds by value, but 16384 decimal places (PostgreSQL's numeric keeps 16383,
    and asyncpg fails the whole batch's write) or a zero written 0E+99999."""
    with pytest.raises(
        (ValidationError, MalformedEventError, AmountError, PriceUnavailableError)
    ) as error:
        use(Decimal(bad))
    assert "decimal places" in str(error.value) or "exponent" in str(error.value)


@pytest.mark.parametrize("use", USERS)
def test_every_user_accepts_the_floor(use: Callable[..., Any]) -> None:
    assert use(AMOUNT_FLOOR) == AMOUNT_FLOOR


def test_zero_is_not_below_the_floor() -> None:  # a price or a quantity may refuse it itself
    assert check_finite_amount(Decimal(0)) == 0
    assert check_finite_amount(Decimal("-0E-40")) == 0


def test_the_quotient_of_two_accepted_amounts_stays_in_decimal_range() -> None:
    """What the risk check divides (a position by a portfolio's value) cannot overflow."""
    assert check_finite_amount(LARGEST) / check_finite_amount(AMOUNT_FLOOR) == Decimal("1e45")


def test_negative_amounts_are_bounded_by_the_same_magnitude() -> None:
    assert Signed.model_validate({"value": str(-LARGEST)}).value == -LARGEST
    with pytest.raises(ValidationError, match="out of bounds"):
        Signed.model_validate({"value": str(-JUST_ABOVE)})
    with pytest.raises(ValidationError, match="not a finite number"):
        Signed.model_validate({"value": "-Infinity"})


def test_the_error_says_what_to_send() -> None:
    with pytest.raises(AmountError, match=r"send a decimal string such as '1.5'"):
        check_finite_amount(Decimal("sNaN"))
    with pytest.raises(AmountError, match=r"at most 1e\+15"):
        check_finite_amount(JUST_ABOVE)
