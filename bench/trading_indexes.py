"""Benchmark: what an index on a hot trading table costs each write, beside the same writes
without it, in one run on one database.

Migration 0042 dropped two indexes that no query needed any more (`positions_updated`: positions
are paged by their primary key; `orders_created`: `orders_created_id` reads the same order). This
measures what each cost the trading loop, in the writes it makes per fill: a position's update
(quantity, average price and `updated_at`, one a fill) and an order's insert (one a signal).
Each write is its own transaction, as the services' are, with a prepared statement on one
connection. An index on a column an update changes (`updated_at`) also makes every update a
non-HOT one: a new entry in each of the table's indexes, and a table that grows until vacuumed.
Both sides run alternately, ROUNDS times each, on the migrated schema of the run's own database
(the index created again for its side); the table is emptied between runs.

    .venv/bin/python bench/trading_indexes.py [--writes 10000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.infra import create_database, drop_database

MASTERTRADE = Path(sys.executable).with_name("mastertrade")
SYMBOLS = 20


@dataclass(frozen=True)
class Case:
    """The writes of one table, with and without one index of it."""

    name: str
    table: str
    index: str
    setup: str
    write: str
    key: Callable[[int], str]
    """The write's one parameter, for its i-th run."""

    @property
    def index_name(self) -> str:
        return self.index.split()[2]


CASES = (
    Case(
        "position update",
        "positions",
        "CREATE INDEX positions_updated ON positions (updated_at, environment, symbol)",
        "TRUNCATE positions; INSERT INTO positions (environment, symbol, quantity, average_price)"
        f" SELECT 'paper', 'S' || g || 'USDT', 1, 100 FROM generate_series(0, {SYMBOLS - 1}) g",
        "UPDATE positions SET quantity = quantity + 1, average_price = average_price + 0.01, "
        "updated_at = clock_timestamp() WHERE environment = 'paper' AND symbol = $1",
        lambda i: f"S{i % SYMBOLS}USDT",
    ),
    Case(
        "order insert",
        "orders",
        "CREATE INDEX orders_created ON orders (created_at DESC)",
        "TRUNCATE orders CASCADE",
        "INSERT INTO orders (client_order_id, symbol, side, type, quantity, status, environment) "
        "VALUES ($1, 'BTCUSDT', 'buy', 'market', 1, 'filled', 'paper')",
        lambda i: f"mt-{uuid.uuid4().hex[:20]}",
    ),
)


@dataclass(frozen=True)
class Run:
    seconds: float
    hot: int
    updated: int
    size: int


async def measure(url: str, case: Case, indexed: bool, writes: int) -> Run:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(f"DROP INDEX IF EXISTS {case.index_name}")
        if indexed:
            await connection.execute(case.index)
        await connection.execute(case.setup)
        await connection.execute(f"VACUUM ANALYZE {case.table}")
        before = await connection.fetchrow(STATS, case.table)
        statement = await connection.prepare(case.write)
        started = time.perf_counter()
        for i in range(writes):
            await statement.fetch(case.key(i))
        seconds = time.perf_counter() - started
        await connection.execute("SELECT pg_stat_force_next_flush()")
        await asyncio.sleep(1.1)  # flushed once the backend is idle, at most once a second
        await connection.execute("SELECT pg_stat_clear_snapshot()")
        after = await connection.fetchrow(STATS, case.table)
        size = await connection.fetchval("SELECT pg_total_relation_size($1::regclass)", case.table)
        assert before is not None and after is not None
        return Run(seconds, after["hot"] - before["hot"], after["upd"] - before["upd"], size)
    finally:
        await connection.close()


STATS = """
SELECT n_tup_hot_upd AS hot, n_tup_upd AS upd FROM pg_stat_user_tables WHERE relname = $1
"""


def report(case: Case, indexed: bool, runs: list[Run], writes: int) -> None:
    micros = [run.seconds / writes * 1e6 for run in runs]
    last = runs[-1]
    hot = f"{last.hot}/{last.updated}" if last.updated else "-"
    index = ("with " if indexed else "without ") + case.index_name
    print(f"{case.name:<16} {index:<28} {statistics.median(micros):>8.0f} {min(micros):>8.0f} "
          f"{max(micros):>8.0f} {hot:>13} {last.size / 1024:>10.0f}")  # fmt: skip


async def bench(url: str, writes: int, rounds: int) -> None:
    print(f"{writes} writes per run, each its own transaction; {rounds} runs per side, alternating")
    print(f"{'write':<16} {'index':<28} {'us p50':>8} {'min':>8} {'max':>8} {'HOT updates':>13} "
          f"{'kB after':>10}")  # fmt: skip
    for case in CASES:
        runs: dict[bool, list[Run]] = {True: [], False: []}
        for _ in range(rounds):
            for indexed in (True, False):
                runs[indexed].append(await measure(url, case, indexed, writes))
        for indexed in (True, False):
            report(case, indexed, runs[indexed], writes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writes", type=int, default=10_000, help="writes per run")
    parser.add_argument("--rounds", type=int, default=2, help="runs per side")
    options = parser.parse_args()
    url = create_database("mastertrade_bench_indexes")
    try:
        subprocess.run([str(MASTERTRADE), "migrate"], env={"DATABASE_URL": url, "PATH": ""},
                       check=True, capture_output=True)  # fmt: skip
        asyncio.run(bench(url, options.writes, options.rounds))
    finally:
        drop_database(url)


if __name__ == "__main__":
    main()
