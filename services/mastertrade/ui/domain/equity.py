"""The equity history the chart draws: valuations sampled on every read, kept in a ring.

The executor stores only its latest valuation (`account_equity`), so the history is what this
process has seen since it started; P&L is equity minus the paper account's starting balance,
or minus the first valuation seen when there is none (live). Amounts stay decimal strings on
the wire; only the chart turns them into pixels.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any


@dataclass(frozen=True)
class EquityPoint:
    """One valuation: when the executor made it, and the amount."""

    time: str
    equity: Decimal


def parse_amount(value: Any) -> Decimal | None:
    """A finite decimal from an upstream's decimal string, or None when it is not one."""
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return amount if amount.is_finite() else None


class EquityHistory:
    """The last `size` distinct valuations, oldest first."""

    def __init__(self, size: int) -> None:
        self._points: deque[EquityPoint] = deque(maxlen=size)
        self.baseline: Decimal | None = None

    def add(self, time: str, equity: Decimal, baseline: Decimal | None) -> None:
        """Record a valuation (a repeat of the last one, same time, is not a new point)."""
        if baseline is not None:
            self.baseline = baseline
        elif self.baseline is None:
            self.baseline = equity
        if self._points and self._points[-1].time == time:
            return
        self._points.append(EquityPoint(time, equity))

    def as_json(self) -> dict[str, Any]:
        """Points with their P&L against the baseline, as decimal strings."""
        base = self.baseline
        return {
            "baseline": None if base is None else str(base),
            "points": [
                {
                    "time": point.time,
                    "equity": str(point.equity),
                    "pnl": None if base is None else str(point.equity - base),
                }
                for point in self._points
            ],
        }
