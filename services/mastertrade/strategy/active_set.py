"""PostgreSQL writes that change which strategies trade, each announced through the outbox.

Two paths change the active set: a finished generation run (`apply_run_choice`, called inside
`store.finish_run`'s transaction) and an admin's activation (`activate_strategy`). Each writes
its `strategy_change` alert (`domain/changes.py`) into the outbox in the same transaction as the
change (`mastertrade.core.outbox`), and the service's outbox loop publishes it after the commit:
a crash between the two delays the alert, never loses it, and a change rolled back or refused
(the maximum reached, a strategy active already) leaves no alert behind. A strategy a run
retires while it holds a position has the sell of it queued the same way (`closing`). Both
paths hold one advisory lock while they change the set, so an activation racing a run can
neither take a place the run gives away nor slip past the run's retirement unannounced.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from mastertrade.core.db import Connection
from mastertrade.core.messages import quoted_in
from mastertrade.core.outbox import add_to_outbox
from mastertrade.strategy.closing import close_positions
from mastertrade.strategy.domain.changes import (
    ROUTING_KEY,
    ActiveSetChange,
    StrategyRef,
    build_change_alert,
    derive_hand_activation,
    derive_run_change,
)
from mastertrade.strategy.locks import lock_active_set
from mastertrade_model.topology import ALERTS

ACTIVATABLE = ("backtested", "paused", "retired")

RETIRE = """
UPDATE strategies SET status = 'retired', retired_at = now()
WHERE status = 'active' AND NOT (id = ANY($1::bigint[]))
RETURNING id, symbol, family
"""
# A chosen strategy active already (activated by hand while its run ran) stays as it was
ACTIVATE = """
UPDATE strategies SET status = 'active', activated_at = now(), closed_at = NULL, closed_in = NULL
WHERE id = ANY($1::bigint[]) AND status <> 'active'
RETURNING id, symbol, family
"""
ACTIVE_COUNT = "SELECT count(*) FROM strategies WHERE status = 'active'"


def _refs(rows: Sequence[asyncpg.Record]) -> list[StrategyRef]:
    return [StrategyRef(row["id"], row["symbol"], row["family"]) for row in rows]


async def record_change(connection: Connection, change: ActiveSetChange) -> None:
    """Queue the change's alert in the caller's transaction (the one making the change)."""
    alert = build_change_alert(change)
    await add_to_outbox(connection, ALERTS.name, ROUTING_KEY, alert.to_json())


async def apply_run_choice(
    connection: Connection,
    run_id: int,
    run_key: str,
    trigger: str,
    chosen: Sequence[int],
    *,
    environment: str,
) -> int:
    """In the caller's transaction: make `chosen` the active set, retiring the rest and queueing
    the sell of what they hold in `environment` (nothing chosen: the set stays as it is), and
    queue the alert when the set changed; the number of active strategies afterwards."""
    if not chosen:
        return int(await connection.fetchval(ACTIVE_COUNT))
    await lock_active_set(connection)
    retired = _refs(await connection.fetch(RETIRE, list(chosen)))
    await close_positions(connection, retired, environment)
    activated = _refs(await connection.fetch(ACTIVATE, list(chosen)))
    active = int(await connection.fetchval(ACTIVE_COUNT))
    change = derive_run_change(
        run_id, run_key, trigger, activated=activated, retired=retired, active=active
    )
    if change.changed:
        await record_change(connection, change)
    return active


@dataclass(frozen=True)
class Activation:
    """What an activation by hand did: `outcome` is activated, already, missing, not_backtested,
    not_quoted or full; `active` the number of active strategies afterwards."""

    outcome: str
    active: int


async def activate_strategy(
    pool: asyncpg.Pool, strategy_id: int, max_active: int, requested_by: str, quote_asset: str
) -> Activation:
    """Make one backtested (or paused, or retired) strategy active beside the active set, up to
    `max_active`, announcing it; the next generation run replaces the set as usual. One whose
    symbol is not quoted in `quote_asset` is refused: the account could not book its buys."""
    async with pool.acquire() as connection, connection.transaction():
        await lock_active_set(connection)
        row = await connection.fetchrow(
            "SELECT status, symbol, family FROM strategies WHERE id = $1 FOR UPDATE", strategy_id
        )
        active = int(await connection.fetchval(ACTIVE_COUNT))
        if row is None:
            return Activation("missing", active)
        if row["status"] == "active":
            return Activation("already", active)
        if row["status"] not in ACTIVATABLE or row["symbol"] is None:
            return Activation("not_backtested", active)
        if not quoted_in(row["symbol"], quote_asset):
            return Activation("not_quoted", active)
        if active >= max_active:
            return Activation("full", active)
        activated_at = await connection.fetchval(
            "UPDATE strategies SET status = 'active', activated_at = now(), closed_at = NULL, "
            "closed_in = NULL WHERE id = $1 RETURNING activated_at",
            strategy_id,
        )
        strategy = StrategyRef(strategy_id, row["symbol"], row["family"])
        await record_change(
            connection, derive_hand_activation(strategy, activated_at, requested_by, active + 1)
        )
    return Activation("activated", active + 1)
