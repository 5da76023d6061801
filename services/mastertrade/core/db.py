"""Small helpers for asyncpg code: one connection type, rows that must exist, and the session
settings of the trading services' connections."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"

GENERIC_PLANS: Mapping[str, str] = {"plan_cache_mode": "force_generic_plan"}
"""Session settings of the risk manager's and the order executor's connections: each prepared
statement is planned once per connection, not at every call. Their batch statements take arrays
whose length the planner sees in a custom plan, so it never settles on the generic plan by
itself and re-plans at every call, which cost more than running them (0.4 against 0.08 ms for
the risk view at 200 signals/s; bench/README.md). A generic plan cannot see a parameter's value:
every statement of the two services is written so that its generic plan reads by index what it
needs and no more (a partial index's predicate spelled out in the query, arrays of ids
probed one by one), which tests/services/test_generic_plans.py checks for each of them."""


def one(row: asyncpg.Record | None, what: str) -> asyncpg.Record:
    """The row, or a LookupError naming what was missing (a broken invariant, not bad input)."""
    if row is None:
        raise LookupError(f"{what} not found")
    return row
