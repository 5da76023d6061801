"""PostgreSQL reads of candles (the `candles` table of the base schema)."""

from __future__ import annotations

import asyncpg

from mastertrade.market_data.domain import Candle

CANDLES_QUERY = """
SELECT symbol, interval, open_time, open, high, low, close, volume
FROM candles
WHERE symbol = $1 AND interval = $2
ORDER BY open_time DESC
LIMIT $3
"""


async def fetch_candles(pool: asyncpg.Pool, symbol: str, interval: str, limit: int) -> list[Candle]:
    """The latest `limit` candles of a symbol, newest first."""
    rows = await pool.fetch(CANDLES_QUERY, symbol, interval, limit)
    return [Candle.model_validate(dict(row)) for row in rows]
