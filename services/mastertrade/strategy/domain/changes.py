"""The alert announcing a change of the active strategies, built from what changed.

The active set changes when a generation run finishes (its best replace the previous set) or
when an admin activates a strategy by hand. The alert system hears of it as an `AlertEvent` of
kind `strategy_change` (`alert.strategy_change` on `mastertrade.alerts`) saying which strategies
started and stopped trading, how many trade now, and why. Its dedup key names the change itself
(the run, or the strategy and the instant it was activated): a redelivery of one change is one
alert, and two changes are never merged, even within the alert system's dedup window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from mastertrade.core.messages import AlertEvent

KIND = "strategy_change"
ROUTING_KEY = f"alert.{KIND}"
SOURCE = "strategy_service"
LISTED = 20
"""Strategies named in each list of the message; the rest are counted (a run may change
hundreds, and an alert's message holds 4000 characters)."""
MESSAGE_LIMIT = 4000


@dataclass(frozen=True)
class StrategyRef:
    """A strategy as a person recognises it in an alert: id, symbol and family."""

    id: int
    symbol: str | None
    family: str | None

    def describe(self) -> str:
        return f"#{self.id} {self.symbol or '(no symbol)'} {self.family or '(no family)'}"


@dataclass(frozen=True)
class ActiveSetChange:
    """The strategies one change started and stopped trading, the count after it, and why."""

    activated: tuple[StrategyRef, ...]
    retired: tuple[StrategyRef, ...]
    active: int
    cause: str
    dedup_key: str

    @property
    def changed(self) -> bool:
        """False when the set is what it was: nothing to announce."""
        return bool(self.activated or self.retired)


def derive_run_change(
    run_id: int,
    run_key: str,
    trigger: str,
    *,
    activated: Sequence[StrategyRef],
    retired: Sequence[StrategyRef],
    active: int,
) -> ActiveSetChange:
    """The change a finished generation run made (a run finishes once: its id is the key)."""
    return ActiveSetChange(
        activated=tuple(sorted(activated, key=lambda ref: ref.id)),
        retired=tuple(sorted(retired, key=lambda ref: ref.id)),
        active=active,
        cause=f"generation run {run_id} ({run_key}, started by {trigger}) chose its best "
        "out-of-sample candidates",
        dedup_key=f"strategy-change:run:{run_id}",
    )


def derive_hand_activation(
    strategy: StrategyRef, activated_at: datetime, requested_by: str, active: int
) -> ActiveSetChange:
    """The change an admin's activation made (the strategy can be activated again after a run
    retired it: the activation time tells the two apart)."""
    return ActiveSetChange(
        activated=(strategy,),
        retired=(),
        active=active,
        cause=f"activated by hand by {requested_by} "
        f"(POST /api/v1/admin/strategies/{strategy.id}/activate)",
        dedup_key=f"strategy-change:activated:{strategy.id}:{activated_at.isoformat()}",
    )


def _named(refs: Sequence[StrategyRef]) -> str:
    if not refs:
        return "none"
    names = ", ".join(ref.describe() for ref in refs[:LISTED])
    more = len(refs) - LISTED
    return f"{names} and {more} more" if more > 0 else names


def build_change_alert(change: ActiveSetChange) -> AlertEvent:
    """The AlertEvent a person reads: what started and stopped trading, and why."""
    title = (
        f"Active strategies changed: {len(change.activated)} activated, "
        f"{len(change.retired)} retired, {change.active} active now"
    )
    message = (
        f"Why: {change.cause}.\nActivated: {_named(change.activated)}.\n"
        f"Retired: {_named(change.retired)}.\nActive now: {change.active}."
    )
    return AlertEvent(
        kind=KIND, severity="info", source=SOURCE, title=title,
        message=message[:MESSAGE_LIMIT], dedup_key=change.dedup_key,
    )  # fmt: skip
