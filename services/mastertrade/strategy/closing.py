"""Positions of strategies that no longer trade, sold until nothing is left of them; and the
exits of active strategies that were refused, tried again.

A strategy that is not active (a generation run retired it) signals nothing more, so what its
filled buys left (`holdings.held_quantity`) would stay open with no owner. Its sell is queued in
the transaction that retires it, and every CLOSING_SWEEP_SECONDS the service looks again at every
strategy that was ever active and is not now (`sweep_orphans`), for what is still held:

- a closing sell the risk manager rejected (the kill switch was on) or the executor refused (a
  price too old, a quantity under the exchange's minimum), or that filled only in part;
- a buy that was in flight when the strategy retired and filled afterwards.

Nothing is sold twice. While any signal of the strategy that the risk manager approved is not
an order yet, it is in flight: the sweep waits for its order, which then counts (for
IN_FLIGHT_SECONDS: one not recorded by then is taken as lost, its message dead-lettered, and a
warning says so; the executor rejects an approval older than APPROVAL_LIFETIME_SECONDS, so
even one replayed by hand from the dead letters later sells nothing). A sell still open counts
in full in what is held. A closing sell's id is derived from the
strategy's latest decided signal (`close<hash>`), so everything that sees the same state (two
replicas, a retirement and a sweep, a sweep before the risk manager decided the last one)
queues the same signal, which the risk manager decides once; one queued and not sent yet is
not queued again; and the sweep holds the active set's lock (`locks`), so no strategy is
activated again while it looks. A sell that keeps failing (dust under
the exchange's minimum) is tried again after CLOSING_SWEEP_SECONDS, then after twice as long
after each failure, at most once a day. A strategy that holds nothing, with no order open, no
approved signal that is not an order and no retirement in the last IN_FLIGHT_SECONDS (a signal
its pod sent just before may still be on its way to the risk manager), is closed in the
environment (`strategies.closed_at`, `closed_in`): later sweeps leave it out until an
activation clears the mark, so their work grows with the strategies still holding something,
not with every retirement.

An active strategy's exit can fail the same ways: the risk manager rejects its sell, or the
executor refuses it (an approval that waited past its lifetime for an executor or Binance that
was away), or cancels it short. Its rule is out and stays out, so its pod signals nothing more
until the rule goes long again, and what it bought would be held through the fall it wanted out
of. The sweep looks at the active strategies too (`retry_exits`): one whose rule's latest
decided signal is a sell, whose latest sell (that one, or a sell tried again since) sold nothing
or less than it was approved for, or was lost on its way, and that still holds something, gets a
sell of it queued, with the same ids, waits between attempts and once-a-day cap as a closing
sell. An exit the risk manager resized to what the account holds and that filled is done with,
whatever the strategy's books say: a commission taken in the coin leaves them a crumb that no
sell would be approved for (one whose own sell was rejected for want of coins, its rule's next
buy refused, is tried at the doubling waits: once a day at most). The rule's side is that of its
own signals, not of the sells tried again: a buy it signals while one is on its way is decided
before or after that sell, which sells what was held when it was queued, and the buy's coins are
the rule's, held and not tried again (and `live`'s catch-up takes the strategy as in: a long
rule buys nothing more, and one gone out sells). What the sweep cannot see is a signal published
and not decided yet: were the risk manager away while the rule went long and out again, the
rule's own exit and the sell tried again could both sell the first position; the risk manager
approves no sell beyond what the account holds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

import asyncpg

from mastertrade.core.db import Connection
from mastertrade.core.messages import APPROVAL_LIFETIME_SECONDS, Signal
from mastertrade.core.outbox import add_to_outbox
from mastertrade.core.retry import TRANSIENT
from mastertrade.strategy.domain.changes import StrategyRef
from mastertrade.strategy.holdings import (
    CLOSING,
    LATEST_FIRST,
    after,
    closing_pattern,
    held_amount,
    held_sql,
    signal_id,
    strategy_prefix,
)
from mastertrade.strategy.locks import lock_active_set
from mastertrade_model.topology import SIGNALS

logger = logging.getLogger("mastertrade.strategy.closing")

CLOSING_SWEEP_SECONDS = 300.0
RETRY_CAP_SECONDS = 86_400.0
IN_FLIGHT_SECONDS = 6 * APPROVAL_LIFETIME_SECONDS
"""How long an approved signal not yet an order is waited for (the executor may be away);
beyond it the signal is taken as lost (its message dead-lettered), said, and not waited for.
The executor would reject it by then (it is older than APPROVAL_LIFETIME_SECONDS), with room
to spare for the clocks of the risk manager's and the executor's pods."""

# Strategies that once traded (an activation), do not now, and were not closed in the
# environment since (an activation clears the mark)
ORPHANS = """
SELECT id, symbol, family FROM strategies
WHERE activated_at IS NOT NULL AND status <> 'active' AND symbol IS NOT NULL
  AND closed_in IS DISTINCT FROM $1
ORDER BY id
"""
# Active strategies: the sweep tries again an exit that failed
ACTIVE = """
SELECT id, symbol, family FROM strategies
WHERE status = 'active' AND symbol IS NOT NULL
ORDER BY id
"""
# Of the strategy's decisions in the environment: the latest, and whether it is a sell that sold
# nothing or not all it was approved for (rejected by the risk manager; its order rejected, or
# cancelled short; approved and not an order after IN_FLIGHT_SECONDS: lost); the side of the
# latest its rule signalled; the approved ones not yet an order, in flight while
# IN_FLIGHT_SECONDS last, then stranded; its orders still open; the closing sells made since
# its latest other signal (the attempts so far); and what it holds, all in one snapshot
STATE = f"""
WITH mine AS (
    SELECT signal_id, side, client_order_id, outcome, decided_at, signal_created_at,
        COALESCE(signal_created_at, decided_at) AS made, signal_id LIKE $3 AS closing
    FROM risk_decisions WHERE signal_id LIKE $1 AND symbol = $2 AND environment = $4
), attempts AS (
    SELECT decided_at FROM mine WHERE closing AND made > COALESCE(
        (SELECT max(made) FROM mine WHERE NOT closing), '-infinity')
), unrecorded AS (
    SELECT decided_at > now() - make_interval(secs => $5) AS recent FROM mine
    WHERE outcome <> 'rejected'
      AND NOT EXISTS (SELECT FROM orders o WHERE o.client_order_id = mine.client_order_id)
), latest AS (
    SELECT signal_id, side, outcome, client_order_id, decided_at FROM mine {LATEST_FIRST} LIMIT 1
), ruled AS (
    SELECT side FROM mine WHERE NOT closing {LATEST_FIRST} LIMIT 1
)
SELECT (SELECT signal_id FROM latest) AS latest,
       (SELECT side = 'sell' AND (outcome = 'rejected' OR EXISTS (
            SELECT FROM orders o WHERE o.client_order_id = latest.client_order_id
              AND o.status IN ('rejected', 'cancelled') AND o.filled_quantity < o.quantity)
            OR (decided_at <= now() - make_interval(secs => $5) AND NOT EXISTS (
            SELECT FROM orders o WHERE o.client_order_id = latest.client_order_id)))
        FROM latest) IS TRUE AS sell_failed,
       (SELECT side FROM ruled) AS rule_side,
       ({held_sql("$1", "$2", "$4")}) AS held,
       EXISTS (SELECT FROM unrecorded WHERE recent) AS in_flight,
       EXISTS (SELECT FROM unrecorded WHERE NOT recent) AS stranded,
       EXISTS (SELECT FROM orders WHERE signal_ref LIKE $1 AND symbol = $2 AND environment = $4
               AND status IN ('new', 'submitted', 'partially_filled')) AS open_orders,
       (SELECT count(*) FROM attempts) AS attempts,
       extract(epoch FROM now() - (SELECT max(decided_at) FROM attempts))::float8 AS waited
"""
QUEUED = """
SELECT EXISTS (SELECT 1 FROM outbox WHERE published_at IS NULL AND payload->>'signal_id' = $1)
"""
# Only once retired for IN_FLIGHT_SECONDS: a signal its pod sent just before the retirement may
# not be decided yet (retired before retired_at was kept: long ago)
CLOSED = """
UPDATE strategies SET closed_at = now(), closed_in = $2
WHERE id = $1 AND COALESCE(retired_at, '-infinity') < now() - make_interval(secs => $3)
"""
LAST_CLOSE = """
SELECT close FROM candles WHERE symbol = $1 AND interval = '1m' ORDER BY open_time DESC LIMIT 1
"""


@dataclass(frozen=True)
class Closing:
    """Where a strategy's closing stands in one environment: its latest decided signal (None: it
    never signalled); whether an approved signal of it is on its way to an order (`in_flight`),
    or was lost on the way (`stranded`); whether an order of it is still open; the closing
    sells decided since its latest other signal, the newest `waited` seconds ago; whether its
    latest signal is a sell that sold nothing or not all it was approved for; the side of the
    latest signal its rule sent (None: none); and what it holds (`holdings`)."""

    latest: str | None
    in_flight: bool = False
    stranded: bool = False
    open_orders: bool = False
    attempts: int = 0
    waited: float | None = None
    sell_failed: bool = False
    rule_side: str | None = None
    held: Decimal = Decimal(0)

    def due(self, base: float) -> bool:
        """Whether a sell may be tried now, `base` seconds after the first failure, doubling."""
        if self.latest is None or self.in_flight:
            return False
        if self.attempts == 0 or self.waited is None:
            return True
        doublings = min(self.attempts - 1, 32)  # past the cap long before; 2.0**n stays finite
        return self.waited >= min(base * 2.0**doublings, RETRY_CAP_SECONDS)

    def settled(self) -> bool:
        """With nothing held: whether nothing can change that (no order open, no approved
        signal that may still become one)."""
        return not (self.in_flight or self.stranded or self.open_orders)

    def moment(self, environment: str) -> str:
        """The closing sell's moment: one per latest decided signal, the same in every pod."""
        return after(self.latest, environment, CLOSING)


async def closing_state(connection: Connection, strategy: StrategyRef, environment: str) -> Closing:
    """Where the strategy's closing stands in `environment`."""
    assert strategy.symbol is not None
    prefix = strategy_prefix(strategy.id)
    closing = closing_pattern(strategy.id, strategy.symbol)
    row = await connection.fetchrow(
        STATE, f"{prefix}%", strategy.symbol, closing, environment, IN_FLIGHT_SECONDS
    )
    assert row is not None  # one row, whatever the strategy's history
    return Closing(
        latest=row["latest"],
        in_flight=row["in_flight"],
        stranded=row["stranded"],
        open_orders=row["open_orders"],
        attempts=row["attempts"],
        waited=row["waited"],
        sell_failed=row["sell_failed"],
        rule_side=row["rule_side"],
        held=held_amount(row["held"]),
    )


async def close_positions(
    connection: Connection,
    strategies: Sequence[StrategyRef],
    environment: str,
    base: float = CLOSING_SWEEP_SECONDS,
) -> int:
    """In the caller's transaction: queue the sell of what each strategy holds in
    `environment`, where one is due and not queued already, and mark closed those that hold
    nothing for good; the number of sells queued."""
    queued = 0
    for strategy in strategies:
        if strategy.symbol is not None:
            queued += await _close(connection, strategy, environment, base)
    return queued


async def _close(
    connection: Connection, strategy: StrategyRef, environment: str, base: float
) -> int:
    state = await closing_state(connection, strategy, environment)
    if state.in_flight:
        return 0
    if state.held <= 0:
        if state.settled():
            await connection.execute(CLOSED, strategy.id, environment, IN_FLIGHT_SECONDS)
        return 0
    if not state.due(base):
        return 0
    return await _queue_sell(connection, strategy, environment, state, "no longer trades and holds")


async def _queue_sell(
    connection: Connection,
    strategy: StrategyRef,
    environment: str,
    state: Closing,
    why: str,
) -> int:
    """Queue the sell of what the strategy holds at the last close (`why` it is sold, said),
    unless there is no close yet or the same sell is queued and not sent; the number queued."""
    symbol = strategy.symbol
    assert symbol is not None
    price = await connection.fetchval(LAST_CLOSE, symbol)
    if price is None:
        return 0
    sell = Signal(
        signal_id=signal_id(strategy.id, symbol, state.moment(environment), "sell"),
        strategy_id=str(strategy.id),
        symbol=symbol,
        side="sell",
        quantity=state.held,
        price=price,
        strength=Decimal(1),
    )
    if await connection.fetchval(QUEUED, sell.signal_id):
        return 0
    if state.stranded:
        logger.warning("strategy %d: a signal approved over %.0f s ago never became an order "
                       "(dead-lettered?); selling what it holds all the same",
                       strategy.id, IN_FLIGHT_SECONDS)  # fmt: skip
    await add_to_outbox(connection, SIGNALS.name, f"signal.{symbol}", sell.to_json())
    logger.info("strategy %d %s %s %s: its sell is queued (attempt %d)",
                strategy.id, why, state.held, symbol, state.attempts + 1)  # fmt: skip
    return 1


async def retry_exits(
    connection: Connection, environment: str, base: float = CLOSING_SWEEP_SECONDS
) -> int:
    """In the caller's transaction: queue again the sell due of each active strategy in
    `environment` whose rule's latest signal is a sell and whose latest sell sold nothing or
    not all it was approved for (rejected, refused by the executor, cancelled short, or lost
    on its way), while it holds something; the number queued."""
    queued = 0
    for row in await connection.fetch(ACTIVE):
        strategy = StrategyRef(row["id"], row["symbol"], row["family"])
        queued += await _retry_exit(connection, strategy, environment, base)
    return queued


async def _retry_exit(
    connection: Connection, strategy: StrategyRef, environment: str, base: float
) -> int:
    state = await closing_state(connection, strategy, environment)
    if state.rule_side != "sell" or not state.sell_failed or state.held <= 0:
        return 0
    if not state.due(base):
        return 0
    why = "is out (its rule's latest signal a sell that failed) yet still holds"
    return await _queue_sell(connection, strategy, environment, state, why)


async def sweep_orphans(
    connection: Connection, environment: str, base: float = CLOSING_SWEEP_SECONDS
) -> int:
    """In the caller's transaction: queue the sells due of every strategy that once traded and
    no longer does, of what it holds in `environment`, and of every active strategy whose exit
    failed (`retry_exits`); the number queued."""
    await lock_active_set(connection)
    rows = await connection.fetch(ORPHANS, environment)
    refs = [StrategyRef(row["id"], row["symbol"], row["family"]) for row in rows]
    queued = await close_positions(connection, refs, environment, base)
    return queued + await retry_exits(connection, environment, base)


async def run_closing_loop(
    pool_of: Callable[[], asyncpg.Pool], environment: str, interval: float, stop: asyncio.Event
) -> None:
    """Sweep every `interval` seconds until `stop`; a failed sweep waits for the next."""
    while not stop.is_set():
        try:
            async with pool_of().acquire() as connection, connection.transaction():
                await sweep_orphans(connection, environment, interval)
        except TRANSIENT as error:
            logger.warning("looking for positions of retired strategies and failed exits "
                           "failed, retrying in %.0fs: %s", interval, error)  # fmt: skip
        except Exception:  # a fault of ours: said loudly, and the next sweep tries again
            logger.exception("looking for positions of retired strategies and failed exits failed")
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except TimeoutError:
            continue
