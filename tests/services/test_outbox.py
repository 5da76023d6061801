"""The outbox on real PostgreSQL: published rows are pruned once older than the retention,
never a row still waiting to be published, whatever its age."""

from __future__ import annotations

import asyncpg
import pytest

from mastertrade.core.outbox import prune_published

pytestmark = pytest.mark.infra

ROWS = [  # (routing key, created this long ago, published this long ago or None)
    ("old-published-1", "3 hours", "3 hours"),
    ("old-published-2", "2 hours", "2 hours"),
    ("old-published-3", "2 hours", "61 minutes"),
    ("old-unpublished", "5 hours", None),
    ("recent-published", "30 minutes", "30 minutes"),
    ("just-written", "0 seconds", None),
]


async def test_published_rows_are_pruned_after_the_retention_only(
    trading_env: dict[str, str],
) -> None:
    pool = await asyncpg.create_pool(trading_env["DATABASE_URL"], min_size=1, max_size=2)
    try:
        for key, created, published in ROWS:
            await pool.execute(
                "INSERT INTO outbox (exchange, routing_key, payload, created_at, published_at) "
                "VALUES ('mastertrade.orders', $1, '{}'::jsonb, now() - $2::text::interval, "
                "now() - $3::text::interval)", key, created, published,
            )  # fmt: skip
        pruned = await prune_published(pool, keep_seconds=3600, batch=2)  # in two batches
        left = {row["routing_key"] for row in await pool.fetch("SELECT routing_key FROM outbox")}
        again = await prune_published(pool, keep_seconds=3600)
    finally:
        await pool.close()
    assert pruned == 3
    assert left == {"old-unpublished", "recent-published", "just-written"}
    assert again == 0
