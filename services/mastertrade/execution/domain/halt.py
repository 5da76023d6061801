"""Why the executor takes no new exposure: the risk manager's circuit breaker or kill switch.

The risk manager stops approving buys when either is on; a buy it approved before that (still
on its way, or resting in the book) would add exposure all the same. The executor reads both
from the shared `risk_state` row of its environment and cancels what rests, rejects what was
not sent; sells (they only reduce) go on."""

from __future__ import annotations

KILL_SWITCH = "kill switch engaged: no new exposure"
BREAKER = "circuit breaker open: no new exposure until an admin resets it"

RISK_STATE = "SELECT breaker_open, kill_switch FROM risk_state WHERE environment = $1"
"""The two flags of an environment (no row: the risk manager never decided there)."""


def halt_reason(breaker_open: bool | None, kill_switch: bool | None) -> str | None:
    """Why a buy may not add exposure now, or None when it may."""
    if kill_switch:
        return KILL_SWITCH
    if breaker_open:
        return BREAKER
    return None


def blocks(side: str, halted: str | None) -> bool:
    """Does the halt stop an order of `side` (only buys add exposure)?"""
    return halted is not None and side == "buy"
