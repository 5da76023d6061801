"""Migrations on a real, empty PostgreSQL database: applied once, in order, under a lock."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from mastertrade.migrations.runner import MigrationError, load_migrations, migrate_database

pytestmark = pytest.mark.infra

BASE_TABLES = {
    "candles", "trades", "strategies", "backtests", "signals", "orders", "fills",
    "positions", "balances", "risk_events", "alerts", "schema_migrations",
    "book_tickers",  # 0010_market_data
    "risk_state", "risk_decisions", "account_equity", "outbox", "alert_deliveries",
}  # fmt: skip


def quiet(line: str) -> None:
    del line


async def test_migrations_apply_to_an_empty_database_and_reapply_as_no_ops(
    empty_database_url: str,
) -> None:
    lines: list[str] = []
    applied = await migrate_database(empty_database_url, 5, lines.append)
    assert [m.version for m in applied] == [m.version for m in load_migrations()]
    assert await migrate_database(empty_database_url, 5, lines.append) == []
    assert lines[-1].endswith("nothing to apply")

    connection = await asyncpg.connect(empty_database_url)
    try:
        tables = {
            row["tablename"]
            for row in await connection.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname='public'"
            )
        }
        recorded = await connection.fetch("SELECT version, checksum FROM schema_migrations")
        order_key = await connection.fetchval(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'orders'::regclass AND i.indisprimary"
        )
    finally:
        await connection.close()
    assert tables >= BASE_TABLES
    assert "arbitrage_opportunities" in tables
    assert [row["version"] for row in recorded] == [m.version for m in load_migrations()]
    assert order_key == "client_order_id"


async def test_concurrent_runners_apply_each_migration_once(empty_database_url: str) -> None:
    results = await asyncio.gather(
        *(migrate_database(empty_database_url, 5, quiet) for _ in range(3))
    )
    assert sorted(len(applied) for applied in results) == [0, 0, len(load_migrations())]


async def test_an_edited_applied_migration_is_refused(empty_database_url: str) -> None:
    await migrate_database(empty_database_url, 5, quiet)
    connection = await asyncpg.connect(empty_database_url)
    try:
        await connection.execute(
            "UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1"
        )
    finally:
        await connection.close()
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await migrate_database(empty_database_url, 5, quiet)


UPDATED_IN_PLACE = ("positions", "balances", "risk_state", "account_equity", "risk_order_rate")
"""The rows the trading loop updates at every batch or fill: a position, a balance, the risk
state, the equity, the order rate's second."""


async def test_the_rows_every_fill_updates_carry_no_index_but_their_key(
    empty_database_url: str,
) -> None:
    """Their keys never change, so with no other index every update of them can be HOT (no new
    index entry, no growth between vacuums). An index on a column an update changes
    (`positions_updated` on updated_at, until migration 0042) makes every update write an entry
    in each of the table's indexes."""
    await migrate_database(empty_database_url, 5, quiet)
    connection = await asyncpg.connect(empty_database_url)
    try:
        rows = await connection.fetch(
            "SELECT tablename, indexname FROM pg_indexes WHERE tablename = ANY($1::text[])",
            list(UPDATED_IN_PLACE),
        )
    finally:
        await connection.close()
    indexes = sorted((row["tablename"], row["indexname"]) for row in rows)
    assert indexes == sorted((table, f"{table}_pkey") for table in UPDATED_IN_PLACE)
