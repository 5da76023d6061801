"""The paper account's books: cash in the quote asset and long positions, applied fill by fill.

`apply_fill` refuses (raises) rather than let cash or a position go negative, so the books of
a rejected order are untouched. Equity is cash plus every position at its mark: the invariant
the tests check after every step (and no equity at all while a position has no mark).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from mastertrade.core.amounts import DUST_FRACTION, exact_arithmetic, quotient
from mastertrade.execution.domain.paper import PaperFill


class LedgerError(ValueError):
    """The fill cannot be booked; the message says what is missing."""


@dataclass(frozen=True)
class Position:
    quantity: Decimal = Decimal(0)
    average_price: Decimal = Decimal(0)


def apply_fill(
    cash: Decimal, position: Position, fill: PaperFill, symbol: str, quote_asset: str
) -> tuple[Decimal, Position]:
    """(cash, position) after the fill, or LedgerError when it would go negative."""
    with exact_arithmetic():
        return _after_fill(cash, position, fill, symbol, quote_asset)


def _after_fill(
    cash: Decimal, position: Position, fill: PaperFill, symbol: str, quote_asset: str
) -> tuple[Decimal, Position]:
    new_cash = cash + fill.cash_delta
    if new_cash < 0:
        raise LedgerError(
            f"insufficient {quote_asset} balance: the order needs {-fill.cash_delta}, "
            f"{cash} is available"
        )
    if fill.side == "buy":
        quantity = position.quantity + fill.quantity
        cost = position.quantity * position.average_price + fill.notional
        return new_cash, Position(quantity, quotient(cost, quantity))
    if fill.quantity > position.quantity:
        raise LedgerError(
            f"insufficient {symbol} position: selling {fill.quantity}, holding {position.quantity}"
        )
    left = position.quantity - fill.quantity
    return new_cash, Position(left, position.average_price if left > 0 else Decimal(0))


def pay_commission(position: Position, fee: Decimal) -> Position:
    """A position whose coins paid another trade's commission (Binance takes it in BNB when BNB
    pays): as much as it holds goes, the rest came from coins the books do not hold; what is
    left cost what it cost each."""
    with exact_arithmetic():
        left = max(Decimal(0), position.quantity - fee)
    return Position(left, position.average_price if left > 0 else Decimal(0))


def derive_equity(
    cash: Decimal, positions: Mapping[str, Position], marks: Mapping[str, Decimal]
) -> tuple[Decimal, Decimal] | None:
    """(positions value, equity), each position at its mark; None when a position that is not
    dust has no mark (no fresh quote): at its cost it would make an equity the account does not
    have, a fall from the peak that trips the breaker once quotes stall, or a loss that never
    shows. Dust (worth less than DUST_FRACTION of the equity at its cost) counts at its cost:
    it moves the equity by too little to matter, and a crumb of a symbol no longer quoted must
    not stop the account being valued."""
    with exact_arithmetic():  # as PostgreSQL adds the cash: the stored row adds up
        return _valued(cash, positions, marks)


def _valued(
    cash: Decimal, positions: Mapping[str, Position], marks: Mapping[str, Decimal]
) -> tuple[Decimal, Decimal] | None:
    marked = sum(
        (p.quantity * marks[symbol] for symbol, p in positions.items() if symbol in marks),
        Decimal(0),
    )
    at_cost = [
        p.quantity * p.average_price
        for symbol, p in positions.items()
        if symbol not in marks and p.quantity > 0
    ]
    value = marked + sum(at_cost, Decimal(0))
    equity = cash + value
    if any(cost >= equity * DUST_FRACTION for cost in at_cost):
        return None
    return value, equity


def shift_position(
    position: Position, side: str, quantity: Decimal, price: Decimal, fee: Decimal = Decimal(0)
) -> Position:
    """A position after a fill reported by an exchange (its word is final: a sell beyond what
    the books hold, say after a manual trade, leaves the position at 0 instead of failing).
    `fee` is a commission taken in the coin itself (Binance takes a buyer's from the coin
    bought unless BNB pays): it is not held, and what was paid is the cost of what is."""
    with exact_arithmetic():
        if side == "buy":
            total = position.quantity + quantity - fee
            cost = position.quantity * position.average_price + quantity * price
            return Position(total, quotient(cost, total)) if total > 0 else Position()
        left = max(Decimal(0), position.quantity - quantity - fee)
    return Position(left, position.average_price if left > 0 else Decimal(0))
