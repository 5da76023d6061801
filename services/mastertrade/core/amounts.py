"""The one finite-amount check of MasterTrade, and its one bound.

Every price, quantity and value the platform takes in (trading messages, book tickers on the
bus, exchange events, the risk check, collected metrics) passes `check_finite_amount`: NaN and
Infinity are refused, and so is anything whose magnitude is above `AMOUNT_LIMIT`.

Why 1e15 (inclusive): every amount here is a price, a quantity of a coin, or a value in a quote
currency. The largest real ones stay below it: all the crypto in the world is worth about 3e12
USD, world GDP about 1e14; the largest coin supplies traded on Binance (SHIB, ~9.9995e14) sit
just under it, and Binance relists bigger ones rescaled (1000SATS, 1MBABYDOGE) precisely to keep
quantities in range. 1e18 only let more garbage through. 1e15 is also below 2**53 (~9.007e15),
so the integer part of an accepted amount stays exact if a consumer (the monitoring UI's
JavaScript, a float column in a notebook) reads it as a double.

And a non-zero amount must be at least `AMOUNT_FLOOR` (1e-30) in magnitude: no coin has a unit
below 1e-18, and a quotient of two accepted amounts (a share of equity, a drawdown) then stays
within 1e45, where an amount such as 1e-999999 overflowed Decimal's range (a 500 answer) or
made an answer of thousands of digits.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import AbstractContextManager
from decimal import Context, Decimal, localcontext
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

AMOUNT_LIMIT = Decimal("1e15")
AMOUNT_FLOOR = Decimal("1e-30")
DUST_FRACTION = Decimal("0.001")
"""A holding worth less than this share of equity is dust: what an exchange's lot sizes leave
behind a sell, which no order can sell. It is not a position (the risk manager's count, judged
at its last mark, at its cost until it has one) and may be valued at its cost when no quote
marks it (the executor's equity)."""


MAX_PLACES = 200
"""The most decimal places an amount may be written with. Any value computed here has at most
130 (EXACT_DIGITS significant digits, AMOUNT_FLOOR at least); PostgreSQL's numeric keeps at most
16383 and asyncpg refuses more, so a signal written as '1.' and 16384 zeros failed the write of
its whole batch, and was dead-lettered with no decision stored."""
MAX_EXPONENT = AMOUNT_LIMIT.adjusted()
"""The largest exponent an amount may be written with (1E+15): beyond it only a zero such as
0E+99999 passes the bound, and nothing sends one."""


EXACT_DIGITS = 100
"""The digits of `exact_arithmetic`: a sum, difference or product of two amounts of up to 50
significant digits each is exact, and an amount quantized to a step with a directed rounding is
rounded once, the way the rounding says."""
QUOTIENT_DIGITS = 28
"""The digits a quotient that is stored or published keeps (an average price): Python's default,
as before, so an average does not grow to EXACT_DIGITS digits."""


def exact_arithmetic() -> AbstractContextManager[Context]:
    """A decimal context for arithmetic on amounts. Python's default 28 digits round a product
    such as price x quantity as soon as the two carry more digits together (a quantity of
    9.9995e14 to 8 places times a price of 1e-5 needs 33), and a limit is then compared with a
    rounded figure, a fee rounded up from a product already rounded down, a reserve released
    into a balance that no longer adds up. Only +, -, * and directed quantizes belong inside: a
    quotient is still rounded, to EXACT_DIGITS, so one that is kept goes through `quotient`."""
    return localcontext(prec=EXACT_DIGITS)


def exactly(function: Callable[P, R]) -> Callable[P, R]:
    """`function`, run inside `exact_arithmetic` (one that only adds, subtracts, multiplies)."""

    @functools.wraps(function)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with exact_arithmetic():
            return function(*args, **kwargs)

    return run


def quotient(dividend: Decimal, divisor: Decimal) -> Decimal:
    """`dividend / divisor` to QUOTIENT_DIGITS significant digits (rounded half even)."""
    with localcontext(prec=QUOTIENT_DIGITS):
        return dividend / divisor


class AmountError(ValueError):
    """An amount that is not finite or is out of bounds; the message says what to send."""


def check_finite_amount(value: Decimal) -> Decimal:
    """`value` itself when finite, |value| <= AMOUNT_LIMIT and, unless zero, >= AMOUNT_FLOOR,
    written with at most MAX_PLACES decimal places and an exponent of at most MAX_EXPONENT;
    else an AmountError."""
    if not value.is_finite():
        raise AmountError(f"{value} is not a finite number: send a decimal string such as '1.5'")
    # copy_abs: abs() rounds to the context, and an exponent beyond it raises Overflow
    if value.copy_abs() > AMOUNT_LIMIT:
        raise AmountError(f"{value} is out of bounds: amounts must be at most {AMOUNT_LIMIT:e}")
    if value and value.copy_abs() < AMOUNT_FLOOR:
        raise AmountError(f"{value:e} is out of bounds: a non-zero amount must be at least "
                          f"{AMOUNT_FLOOR:e} (or 0)")  # fmt: skip
    exponent = int(value.as_tuple().exponent)  # finite: an int
    if exponent > MAX_EXPONENT or -exponent > MAX_PLACES:
        raise AmountError(f"{str(value)[:40]}... is out of bounds: an amount is written with at "
                          f"most {MAX_PLACES} decimal places and an exponent of at most "
                          f"{MAX_EXPONENT}: send a plain decimal such as '1.5'")  # fmt: skip
    return value


BRIEF_DIGITS = 12


def brief(value: Decimal) -> str:
    """`value` for a title a person reads: as it is when short, else its fraction rounded to
    BRIEF_DIGITS significant digits, its whole part kept (an accepted amount may carry any
    number of digits; a title may not)."""
    text = format(value, "f")
    if len(text) <= BRIEF_DIGITS + 8 or not value:
        return text
    exponent = min(0, value.adjusted() - BRIEF_DIGITS + 1)
    return format(value.quantize(Decimal(1).scaleb(exponent)).normalize(), "f")
