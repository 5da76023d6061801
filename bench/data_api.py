"""Benchmark: p50/p99 of a page of candles over a year of 1-minute candles (525,600 rows).

In one run, on one scratch database filled by COPY:
- reference: the same keyset query through raw asyncpg from this process (what the database
  alone costs, without HTTP, JSON or the cache);
- data_access_api (`mastertrade serve`, a real uvicorn process) with its page cache off: every
  page read from PostgreSQL and encoded;
- the same with the Redis page cache on, each page asked twice: the second answer is a hit.
Pages start at random minutes of the year (a cursor made for that position), 1000 rows each.

    .venv/bin/python bench/data_api.py [--samples 300] [--limit 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.httpbench import Client, ms, percentile, scratch_infrastructure, serving, table

from mastertrade.data_api.cursor import encode_cursor, query_digest
from mastertrade.data_api.queries import Selection, build_query
from mastertrade.data_api.resources import CANDLES

SYMBOL = "BENCHUSDT"
START = datetime(2024, 1, 1, tzinfo=UTC)
MINUTES = 525_600


async def fill(url: str) -> float:
    records = [
        (SYMBOL, "1m", START + timedelta(minutes=i), Decimal("100.5"), Decimal("101.25"),
         Decimal("99.75"), Decimal(100) + Decimal(i) / 1000, Decimal(i % 97))
        for i in range(MINUTES)
    ]  # fmt: skip
    connection = await asyncpg.connect(url)
    try:
        started = time.perf_counter()
        columns = ["symbol", "interval", "open_time", "open", "high", "low", "close", "volume"]
        await connection.copy_records_to_table("candles", records=records, columns=columns)
        elapsed = time.perf_counter() - started
        await connection.execute("ANALYZE candles")
    finally:
        await connection.close()
    return elapsed


def cursor_at(minute: int) -> str:
    selection = Selection({"symbol": SYMBOL, "interval": "1m"})
    digest = query_digest(CANDLES, selection.identity())
    return encode_cursor(CANDLES, digest, [START + timedelta(minutes=minute)])


async def raw_pages(url: str, minutes: list[int], limit: int) -> list[float]:
    connection = await asyncpg.connect(url)
    try:
        times = []
        for minute in minutes:
            selection = Selection({"symbol": SYMBOL, "interval": "1m"},
                                  after=[START + timedelta(minutes=minute)])  # fmt: skip
            sql, args = build_query(CANDLES, selection, limit + 1)
            started = time.perf_counter()
            rows = await connection.fetch(sql, *args)
            times.append(time.perf_counter() - started)
            assert len(rows) == limit + 1 or minute + limit >= MINUTES
        return times
    finally:
        await connection.close()


def api_pages(port: int, minutes: list[int], limit: int, repeat: bool) -> list[float]:
    client = Client(port)
    times = []
    try:
        for minute in minutes:
            path = f"/api/v1/candles/{SYMBOL}?limit={limit}&cursor={cursor_at(minute)}"
            status, _, seconds = client.get(path)
            if repeat:
                status, _, seconds = client.get(path)
            assert status == 200, status
            times.append(seconds)
        return times
    finally:
        client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--limit", type=int, default=1000)
    args = parser.parse_args()
    rng = random.Random(7)
    with scratch_infrastructure() as env:
        copy_seconds = asyncio.run(fill(env["DATABASE_URL"]))
        print(f"COPY of {MINUTES:,} candles: {copy_seconds:.1f} s")
        results = {}
        minutes = [rng.randrange(MINUTES - args.limit) for _ in range(args.samples)]
        results["raw asyncpg (reference)"] = asyncio.run(
            raw_pages(env["DATABASE_URL"], minutes, args.limit)
        )
        with serving("data_access_api", {**env, "DATA_API_CACHE_TTL": "0"}) as port:
            api_pages(port, minutes[:20], args.limit, repeat=False)  # warm-up
            results["data API, cache off"] = api_pages(port, minutes, args.limit, repeat=False)
        with serving("data_access_api", {**env, "DATA_API_CACHE_TTL": "60"}) as port:
            results["data API, cache hit"] = api_pages(port, minutes, args.limit, repeat=True)
    rows = [["case", "p50 ms", "p99 ms", "pages"]]
    for name, times in results.items():
        rows.append([name, ms(percentile(times, 0.5)), ms(percentile(times, 0.99)),
                     str(len(times))])  # fmt: skip
    print(f"pages of {args.limit} one-minute candles at random places in {MINUTES:,} rows:")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
