"""What each strategy holds, and the sells that give it back.

A strategy's signals carry ids it alone makes (`signal_id`: `st<id>-<SYMBOL>-<minute>-<side>`),
and the executor stores each order with the id of the signal it came from (`orders.signal_ref`),
so what a strategy holds of its symbol is its own filled buys less its sells
(`held_quantity`), in the trading environment the deployment runs in now (TRADING_ENVIRONMENT:
a strategy that bought on paper holds nothing live, and never sells the live account's coins).
A sell still open counts in full: what it has not sold yet is spoken for; and for an exit, so
does a sell the risk manager approved that is not an order yet (`held_quantity`).

- A strategy's exit sells what it holds (not its notional at today's price, which leaves part of
  a position that rose behind, and asks for more than it bought of one that fell).
- A strategy whose rule changed on candles its pod did not see (read from PostgreSQL later)
  signals the change once it sees it: its latest signal, as the risk manager decided it
  (`last_signal`), says which way it last asked to go.
- A strategy whose exit found nothing held while a buy may still fill (`buy_may_still_fill`)
  sells once it filled (`live`).
- A strategy retired with a position sells it, and an active strategy whose exit was refused
  sells again (`closing`).
"""

from __future__ import annotations

import hashlib
from decimal import ROUND_DOWN, Decimal

import asyncpg

from mastertrade.core.db import Connection
from mastertrade.core.messages import APPROVAL_LIFETIME_SECONDS
from mastertrade.strategy.domain.live import Side

QUANTITY_STEP = Decimal("0.00000001")
BUY_MAY_FILL_SECONDS = 2 * APPROVAL_LIFETIME_SECONDS
"""How long an approved buy not recorded by the executor may still become an order: the
executor refuses it after APPROVAL_LIFETIME_SECONDS, as long again for two pods' clocks."""

CLOSING = "close"
"""What the moment (`signal_id`) of a sell the strategy's rule did not signal starts with: a
closing sell (`closing`), or an exit tried again."""


def held_sql(prefix: str, symbol: str, environment: str) -> str:
    """What a strategy holds, as a query whose parameters are the given placeholders."""
    return f"""
SELECT COALESCE(sum(CASE
    WHEN side = 'buy' THEN filled_quantity
    WHEN status IN ('new', 'submitted', 'partially_filled') THEN -quantity
    ELSE -filled_quantity END), 0)
FROM orders WHERE signal_ref LIKE {prefix} AND symbol = {symbol} AND environment = {environment}
"""


HELD = held_sql("$1", "$2", "$3")
SELL_MAY_FILL_SECONDS = BUY_MAY_FILL_SECONDS
"""How long an approved sell not recorded by the executor may still become an order."""
# What the strategy holds less its sells the risk manager approved that are not orders yet (an
# executor away, a backlog): those coins are already being sold, and an exit that sold them
# again would sell another strategy's coins of the symbol, or fail
SELLS_IN_FLIGHT = f"""
FROM risk_decisions d
WHERE d.signal_id LIKE $1 AND d.symbol = $2 AND d.environment = $3 AND d.side = 'sell'
  AND d.outcome <> 'rejected'
  AND d.decided_at > now() - make_interval(secs => {SELL_MAY_FILL_SECONDS:g})
  AND NOT EXISTS (SELECT FROM orders o WHERE o.client_order_id = d.client_order_id)
"""
SELLABLE = f"SELECT ({HELD}) - COALESCE((SELECT sum(d.approved_quantity) {SELLS_IN_FLIGHT}), 0)"
SELL_IN_FLIGHT = f"SELECT EXISTS (SELECT {SELLS_IN_FLIGHT})"
# A strategy's latest signal is the one it made last (`signal_created_at`, from the signal),
# whichever risk manager replica decided it first: two taking a backlog at once can decide a
# later signal before an earlier one. The leading pod makes the rule's signals, and any pod's
# sweep its closing sells: pods' clocks, NTP-synchronized, differ by milliseconds, and a
# closing sell is rarely made within a second of its rule's signal. Decisions with no such time
# (stored before migration 0044) read as made when decided; of those decided in one batch (one
# now()), the later candle (the minute in the id); between ids with no minute, a signal of the
# rule before a closing sell, then the id itself, so every pod takes the same one for the latest
LATEST_FIRST = f"""ORDER BY COALESCE(signal_created_at, decided_at) DESC,
    substring(signal_id from '-([0-9]+)-(?:buy|sell)$')::bigint DESC NULLS LAST,
    signal_id LIKE '%-{CLOSING}%', signal_id DESC"""
LAST_SIGNAL = f"""
SELECT side, signal_id FROM risk_decisions
WHERE signal_id LIKE $1 AND symbol = $2 AND environment = $3
{LATEST_FIRST}
LIMIT 1
"""

# The latest decided signal of the strategy's rule (not a closing sell, $4) is a buy, and the
# strategy holds something (a quantity step: what a sell of it would ask), or that buy may
# still fill: its order open, or approved less than $5 seconds ago and not an order yet
RULE_IN = f"""
WITH ruled AS (
    SELECT side, outcome, client_order_id, decided_at FROM risk_decisions
    WHERE signal_id LIKE $1 AND signal_id NOT LIKE $4 AND symbol = $2 AND environment = $3
    {LATEST_FIRST}
    LIMIT 1
)
SELECT side = 'buy' AND (({HELD}) >= {QUANTITY_STEP} OR outcome <> 'rejected' AND (
    EXISTS (SELECT FROM orders o WHERE o.client_order_id = ruled.client_order_id
            AND o.status IN ('new', 'submitted', 'partially_filled'))
    OR decided_at > now() - make_interval(secs => $5) AND NOT EXISTS (
        SELECT FROM orders o WHERE o.client_order_id = ruled.client_order_id)))
FROM ruled
"""

# The latest decided signal is a buy that can no longer fill: refused, or its order finished
BUY_SETTLED = f"""
WITH latest AS (
    SELECT side, outcome, client_order_id FROM risk_decisions
    WHERE signal_id LIKE $1 AND symbol = $2 AND environment = $3
    {LATEST_FIRST}
    LIMIT 1
)
SELECT l.side = 'buy'
   AND (l.outcome = 'rejected' OR o.status IN ('filled', 'rejected', 'cancelled'))
FROM latest l LEFT JOIN orders o ON o.client_order_id = l.client_order_id
"""


def signal_id(strategy_id: int, symbol: str, moment: int | str, side: Side) -> str:
    """The id of a strategy's signal: one per (strategy, symbol, candle or event, side)."""
    return f"{strategy_prefix(strategy_id)}{symbol}-{moment}-{side}"


def after(last_signal_id: str | None, environment: str, kind: str = "after") -> str:
    """The moment (for `signal_id`) of a signal that follows the strategy's latest signal in
    `environment`, `last_signal_id` (None: it has none there), for a change the candle of which
    is unknown (`kind` names what follows it): every pod that reads the same latest signal makes
    the same id. Without one, the environment is the anchor: a signal id is decided once ever,
    so the first live signal after a switch must not take the id of a paper one."""
    anchor_of = last_signal_id if last_signal_id is not None else f"first-{environment}"
    anchor = hashlib.sha256(anchor_of.encode()).hexdigest()[:12]
    return f"{kind}{anchor}"


def strategy_prefix(strategy_id: int) -> str:
    """What every signal id of the strategy starts with."""
    return f"st{strategy_id}-"  # the dash keeps strategy 1's ids apart from strategy 12's


async def held_quantity(
    connection: Connection | asyncpg.Pool, strategy_id: int, symbol: str, environment: str
) -> Decimal:
    """What the strategy holds of `symbol` in `environment` and is not selling yet (never below
    zero): a sell open counts in full, and so does one approved and not an order yet."""
    prefix = f"{strategy_prefix(strategy_id)}%"
    held = await connection.fetchval(SELLABLE, prefix, symbol, environment)
    return held_amount(held)


async def sell_in_flight(
    connection: Connection | asyncpg.Pool, strategy_id: int, symbol: str, environment: str
) -> bool:
    """Whether a sell of the strategy the risk manager approved may still become an order (an
    exit that finds nothing to sell waits for it: refused by the executor, it leaves its coins
    to sell again)."""
    found = await connection.fetchval(
        SELL_IN_FLIGHT, f"{strategy_prefix(strategy_id)}%", symbol, environment
    )
    return found is True


def held_amount(held: Decimal) -> Decimal:
    """What `HELD` read, as held: never below zero, in whole quantity steps."""
    return max(Decimal(held), Decimal(0)).quantize(QUANTITY_STEP, rounding=ROUND_DOWN)


async def last_signal(
    connection: Connection | asyncpg.Pool, strategy_id: int, symbol: str, environment: str
) -> tuple[Side, str] | None:
    """The side and id of the strategy's latest signal the risk manager decided (approved or
    not) in `environment`, None before its first."""
    row = await connection.fetchrow(
        LAST_SIGNAL, f"{strategy_prefix(strategy_id)}%", symbol, environment
    )
    return None if row is None else (row["side"], row["signal_id"])


def closing_pattern(strategy_id: int, symbol: str) -> str:
    """The LIKE pattern of the strategy's sells not of its rule (closing sells, exits tried
    again: `closing`)."""
    return f"{strategy_prefix(strategy_id)}{symbol}-{CLOSING}%"


async def rule_is_in(
    connection: Connection | asyncpg.Pool, strategy_id: int, symbol: str, environment: str
) -> bool:
    """Whether the strategy is in, as its rule last asked in `environment`: the rule's latest
    decided signal is a buy, and the strategy holds something or that buy may still fill
    (whatever closing sells came after it)."""
    found = await connection.fetchval(
        RULE_IN, f"{strategy_prefix(strategy_id)}%", symbol, environment,
        closing_pattern(strategy_id, symbol), BUY_MAY_FILL_SECONDS,
    )  # fmt: skip
    return found is True


async def was_decided(connection: Connection | asyncpg.Pool, signal: str) -> bool:
    """Whether the risk manager has decided the signal with this id (in either environment: a
    signal id is decided once, ever)."""
    found = await connection.fetchval("SELECT 1 FROM risk_decisions WHERE signal_id = $1", signal)
    return found is not None


async def buy_may_still_fill(
    connection: Connection | asyncpg.Pool, strategy_id: int, symbol: str, environment: str
) -> bool:
    """Whether a buy of the strategy may still fill in `environment`: its latest decided signal
    is not a buy refused or finished. A signal the risk manager has not decided yet is not seen,
    so a latest sell, or none, leaves it in doubt."""
    settled = await connection.fetchval(
        BUY_SETTLED, f"{strategy_prefix(strategy_id)}%", symbol, environment
    )
    return settled is not True
