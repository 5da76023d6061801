"""Positions of strategies that no longer trade, sold until nothing is left of them.

A strategy that is not active (a generation run retired it) signals nothing more, so what its
filled buys left (`holdings.held_quantity`) would stay open with no owner. Its sell is queued in
the transaction that retires it, and every CLOSING_SWEEP_SECONDS the service looks again at every
strategy that was ever active and is not now (`sweep_orphans`), for what is still held:

- a closing sell the risk manager rejected (the kill switch was on) or the executor refused (a
  price too old, a quantity under the exchange's minimum), or that filled only in part;
- a buy that was in flight when the strategy retired and filled afterwards.

Nothing is sold twice. A signal of the strategy that the risk manager approved and the executor
has not stored as an order yet is in flight: the sweep waits for its order, which then counts. A
sell still open counts in full in what is held. A closing sell's id is derived from the
strategy's latest decided signal (`close<hash>`), so everything that sees the same state (two
replicas, a retirement and a sweep, a sweep before the risk manager decided the last one)
queues the same signal, which the risk manager decides once; and one queued and not sent yet is
not queued again. A sell that keeps failing (dust under the exchange's minimum) is tried again
after CLOSING_SWEEP_SECONDS, then after twice as long after each failure, at most once a day.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import asyncpg

from mastertrade.core.db import Connection
from mastertrade.core.outbox import add_to_outbox
from mastertrade.core.retry import TRANSIENT
from mastertrade.strategy.domain.changes import StrategyRef
from mastertrade.strategy.holdings import LATEST_FIRST, after, closing_signal, strategy_prefix
from mastertrade_model.topology import SIGNALS

logger = logging.getLogger("mastertrade.strategy.closing")

CLOSING_SWEEP_SECONDS = 300.0
RETRY_CAP_SECONDS = 86_400.0
CLOSING = "close"
"""What a closing sell's moment (`holdings.signal_id`) starts with."""

# Strategies that once traded (an activation) and do not now
ORPHANS = """
SELECT id, symbol, family FROM strategies
WHERE status <> 'active' AND activated_at IS NOT NULL AND symbol IS NOT NULL
ORDER BY id
"""
# The latest decided signal of a strategy, whether it is still on its way to an order, and the
# closing sells decided since its latest other signal (the attempts of this closing)
STATE = f"""
WITH mine AS (
    SELECT signal_id, outcome, decided_at, signal_id LIKE $3 AS closing FROM risk_decisions
    WHERE signal_id LIKE $1 AND symbol = $2 AND environment = $4
), attempts AS (
    SELECT decided_at FROM mine WHERE closing AND decided_at > COALESCE(
        (SELECT max(decided_at) FROM mine WHERE NOT closing), '-infinity')
), latest AS (
    SELECT signal_id, outcome FROM mine {LATEST_FIRST} LIMIT 1
)
SELECT latest.signal_id,
       latest.outcome <> 'rejected'
           AND NOT EXISTS (SELECT 1 FROM orders WHERE signal_ref = latest.signal_id) AS in_flight,
       (SELECT count(*) FROM attempts) AS attempts,
       extract(epoch FROM now() - (SELECT max(decided_at) FROM attempts))::float8 AS waited
FROM latest
"""
QUEUED = """
SELECT EXISTS (SELECT 1 FROM outbox WHERE published_at IS NULL AND payload->>'signal_id' = $1)
"""


@dataclass(frozen=True)
class Closing:
    """Where a strategy's closing stands: its latest decided signal (None: it never signalled),
    whether that one is still on its way to an order, and the closing sells decided since its
    latest other signal, the newest `waited` seconds ago."""

    latest: str | None
    in_flight: bool
    attempts: int
    waited: float | None

    def due(self, base: float) -> bool:
        """Whether a sell may be tried now, `base` seconds after the first failure, doubling."""
        if self.latest is None or self.in_flight:
            return False
        if self.attempts == 0 or self.waited is None:
            return True
        doublings = min(self.attempts - 1, 32)  # past the cap long before; 2.0**n stays finite
        return self.waited >= min(base * 2.0**doublings, RETRY_CAP_SECONDS)

    def moment(self) -> str:
        """The closing sell's moment: one per latest decided signal, the same in every pod."""
        return after(self.latest, CLOSING)


async def closing_state(connection: Connection, strategy: StrategyRef, environment: str) -> Closing:
    """Where the strategy's closing stands in `environment`."""
    assert strategy.symbol is not None
    prefix = strategy_prefix(strategy.id)
    closing = f"{prefix}{strategy.symbol}-{CLOSING}%"
    row = await connection.fetchrow(STATE, f"{prefix}%", strategy.symbol, closing, environment)
    if row is None:
        return Closing(None, False, 0, None)
    return Closing(row["signal_id"], row["in_flight"], row["attempts"], row["waited"])


async def close_positions(
    connection: Connection,
    strategies: Sequence[StrategyRef],
    environment: str,
    base: float = CLOSING_SWEEP_SECONDS,
) -> int:
    """In the caller's transaction: queue the sell of what each strategy holds in
    `environment`, where one is due and not queued already; the number queued."""
    queued = 0
    for strategy in strategies:
        if strategy.symbol is None:
            continue
        state = await closing_state(connection, strategy, environment)
        if not state.due(base):
            continue
        moment = state.moment()
        signal = await closing_signal(connection, strategy.id, strategy.symbol, moment, environment)
        if signal is None or await connection.fetchval(QUEUED, signal.signal_id):
            continue
        await add_to_outbox(connection, SIGNALS.name, f"signal.{strategy.symbol}", signal.to_json())
        queued += 1
        logger.info("strategy %d no longer trades and holds %s %s: its sell is queued "
                    "(attempt %d)", strategy.id, signal.quantity, strategy.symbol,
                    state.attempts + 1)  # fmt: skip
    return queued


async def sweep_orphans(
    connection: Connection, environment: str, base: float = CLOSING_SWEEP_SECONDS
) -> int:
    """In the caller's transaction: queue the sells due of every strategy that once traded and
    no longer does, of what it holds in `environment`; the number queued."""
    rows = await connection.fetch(ORPHANS)
    refs = [StrategyRef(row["id"], row["symbol"], row["family"]) for row in rows]
    return await close_positions(connection, refs, environment, base)


async def run_closing_loop(
    pool_of: Callable[[], asyncpg.Pool], environment: str, interval: float, stop: asyncio.Event
) -> None:
    """Sweep every `interval` seconds until `stop`; a failed sweep waits for the next."""
    while not stop.is_set():
        try:
            async with pool_of().acquire() as connection, connection.transaction():
                await sweep_orphans(connection, environment, interval)
        except TRANSIENT as error:
            logger.warning("looking for positions of retired strategies failed, retrying in "
                           "%.0fs: %s", interval, error)  # fmt: skip
        except Exception:  # a fault of ours: said loudly, and the next sweep tries again
            logger.exception("looking for positions of retired strategies failed")
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except TimeoutError:
            continue
