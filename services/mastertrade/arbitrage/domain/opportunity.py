"""What an arbitrage opportunity is: its legs, its size and its expected profit after fees."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

Side = Literal["buy", "sell"]
Kind = Literal["triangular", "cross_venue"]
AMOUNT_PLACES = Decimal("1e-12")


@dataclass(frozen=True)
class Leg:
    """One trade: `side` `symbol` on `venue` at `price`, converting `amount_in` of one asset
    into `amount_out` of another (fee already deducted from what is received)."""

    venue: str
    symbol: str
    side: Side
    price: Decimal
    amount_in: Decimal
    amount_out: Decimal

    def as_json(self) -> dict[str, str]:
        return {
            "venue": self.venue,
            "symbol": self.symbol,
            "side": self.side,
            "price": str(self.price),
            "amount_in": str(self.amount_in),
            "amount_out": str(self.amount_out),
        }


@dataclass(frozen=True)
class Opportunity:
    """A cycle that ends with more of `start_asset` than it began with, after fees."""

    kind: Kind
    venue: str
    route: str
    start_asset: str
    start_amount: Decimal
    expected_profit: Decimal
    profit_bps: Decimal
    legs: tuple[Leg, ...]
    detected_at: datetime

    def as_json(self) -> dict[str, Any]:
        """The message body and API shape: decimals as strings, time in ISO 8601."""
        return {
            "kind": self.kind,
            "venue": self.venue,
            "route": self.route,
            "start_asset": self.start_asset,
            "start_amount": str(self.start_amount),
            "expected_profit": str(self.expected_profit),
            "profit_bps": str(self.profit_bps),
            "legs": [leg.as_json() for leg in self.legs],
            "detected_at": self.detected_at.isoformat(),
        }


def exact(value: Decimal) -> Decimal:
    """Rounded down to 12 places, so a reported amount is never more than what is there."""
    return value.quantize(AMOUNT_PLACES, rounding="ROUND_DOWN")
