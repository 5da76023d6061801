"""Why the executor takes no new exposure, or no order at all: the risk manager's circuit
breaker or kill switch.

The risk manager stops approving buys when the breaker is open, and every order when the kill
switch is on; an order it approved before that (still on its way, or resting in the book) would
go on all the same. The executor reads both from the shared `risk_state` row of its environment
and cancels what rests, rejects what was not sent: under the breaker the buys only (sells only
reduce exposure, and go on), under the kill switch every order, as its admin call promises
("stop every order")."""

from __future__ import annotations

KILL_SWITCH = "kill switch engaged: no orders"
BREAKER = "circuit breaker open: no new exposure until an admin resets it"

RISK_STATE = "SELECT breaker_open, kill_switch FROM risk_state WHERE environment = $1"
"""The two flags of an environment (no row: the risk manager never decided there)."""


def halt_reason(breaker_open: bool | None, kill_switch: bool | None) -> str | None:
    """Why orders are halted now (the kill switch's reason first: it stops more), or None."""
    if kill_switch:
        return KILL_SWITCH
    if breaker_open:
        return BREAKER
    return None


def blocks(side: str, halted: str | None) -> bool:
    """Does the halt stop an order of `side`: any under the kill switch, a buy (only buys add
    exposure) under the breaker?"""
    return halted == KILL_SWITCH or (halted is not None and side == "buy")
