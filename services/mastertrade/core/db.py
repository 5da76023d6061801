"""Small typing helpers for asyncpg code: one connection type, rows that must exist."""

from __future__ import annotations

from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"


def one(row: asyncpg.Record | None, what: str) -> asyncpg.Record:
    """The row, or a LookupError naming what was missing (a broken invariant, not bad input)."""
    if row is None:
        raise LookupError(f"{what} not found")
    return row
