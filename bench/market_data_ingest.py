"""Benchmark: candles from the broker into PostgreSQL, beside raw consumption and raw COPY.

Three cases on the same N candle messages (the JSON market_data_service publishes), in one run,
against the machine's RabbitMQ and PostgreSQL (a vhost and a database created for the run and
removed at the end):

1. raw aio-pika: consume the N messages from a queue (prefetch 2000, one `multiple` ack per
   2000, JSON decoded), nothing stored. The broker's side of the ceiling.
2. raw asyncpg COPY: `copy_records_to_table` of the same N rows (already Decimals) straight into
   an empty `candles` table, in batches of 2000. PostgreSQL's side of the ceiling.
3. MasterTrade ingest (`mastertrade.market_data.ingest.CandleIngest`): consume, parse and
   validate each message into an exact Kline, COPY into a temporary table, INSERT ... ON
   CONFLICT into `candles`, ack after the write. Target: at least 0.5x the slower raw case.

Also the simulated-history writer (`bulk.write_simulated`, binary COPY of integer units)
beside raw COPY of the same candles as Decimal records.

    .venv/bin/python bench/market_data_ingest.py [--messages 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import aio_pika
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.infra import create_database, create_vhost, delete_vhost, drop_database

from mastertrade.market_data.bulk import write_simulated
from mastertrade.market_data.domain.events import Kline, to_message
from mastertrade.market_data.domain.market import SimulatedMarket
from mastertrade.market_data.domain.simulator import SYMBOLS, block_table, instrument_columns
from mastertrade.market_data.ingest import CandleIngest
from mastertrade.market_data.store import CANDLE_COLUMNS, kline_record
from mastertrade.migrations.runner import migrate_database

BATCH = 2000
TARGET_RATIO = 0.5


async def fill_queue(channel: aio_pika.abc.AbstractChannel, name: str, bodies: list[bytes]) -> None:
    queue = await channel.declare_queue(name, durable=False, auto_delete=False)
    await queue.purge()
    for start in range(0, len(bodies), 1000):
        await asyncio.gather(
            *(
                channel.default_exchange.publish(aio_pika.Message(body), routing_key=name)
                for body in bodies[start : start + 1000]
            )
        )
    # the publishes are unconfirmed: wait until the broker holds them all, so that the
    # consumers measured next do not wait for publishing
    while True:
        declared = await channel.declare_queue(name, passive=True)
        if (declared.declaration_result.message_count or 0) >= len(bodies):
            return
        await asyncio.sleep(0.05)


async def raw_consume(channel: aio_pika.abc.AbstractChannel, name: str, count: int) -> float:
    await channel.set_qos(prefetch_count=BATCH * 2)
    queue = await channel.declare_queue(name, durable=False, auto_delete=False)
    done = asyncio.Event()
    seen = 0

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        nonlocal seen
        json.loads(message.body)
        seen += 1
        if seen % BATCH == 0 or seen == count:
            await message.ack(multiple=True)
        if seen == count:
            done.set()

    started = time.perf_counter()
    tag = await queue.consume(on_message)
    await done.wait()
    elapsed = time.perf_counter() - started
    await queue.cancel(tag)
    return elapsed


async def raw_copy(url: str, klines: Sequence[Kline]) -> float:
    records = [kline_record(kline) for kline in klines]
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("TRUNCATE candles")
        started = time.perf_counter()
        for start in range(0, len(records), BATCH):
            await connection.copy_records_to_table(
                "candles", records=records[start : start + BATCH], columns=CANDLE_COLUMNS
            )
        return time.perf_counter() - started
    finally:
        await connection.close()


async def mastertrade_ingest(
    url: str, channel: aio_pika.abc.AbstractChannel, name: str, count: int
) -> float:
    async with asyncpg.create_pool(url, min_size=1, max_size=2) as pool:
        await pool.execute("TRUNCATE candles")
        queue = await channel.declare_queue(name, durable=False, auto_delete=False)
        ingest = CandleIngest(queue, pool, batch=BATCH, flush=0.05)
        started = time.perf_counter()
        await ingest.start()
        while ingest.stored < count:
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - started
        await ingest.stop()
        stored = await pool.fetchval("SELECT count(*) FROM candles")
        if stored != count:
            raise RuntimeError(f"ingest stored {stored} candles, expected {count}")
        return elapsed


async def history_cases(url: str, minutes: int) -> tuple[float, float, int]:
    block = SimulatedMarket(42, 29_000_000).generate(minutes)
    columns = instrument_columns(SYMBOLS)
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("TRUNCATE candles")
        started = time.perf_counter()
        await write_simulated(connection, block_table(block, columns))
        bulk = time.perf_counter() - started
        await connection.execute("TRUNCATE candles")
        started = time.perf_counter()
        records = [kline_record(kline) for kline in block.klines(columns)]
        await connection.copy_records_to_table("candles", records=records, columns=CANDLE_COLUMNS)
        raw = time.perf_counter() - started
    finally:
        await connection.close()
    return bulk, raw, minutes * len(columns)


def row(name: str, count: int, seconds: float, reference: float | None = None) -> str:
    rate = count / seconds
    ratio = f"{rate / reference:5.2f}x" if reference else "     "
    return f"  {name:<48} {count:>8} {seconds:>8.2f} s {rate:>10,.0f}/s  {ratio}"


async def run(messages: int, database: str, vhost: str) -> int:
    await migrate_database(database, 30.0, lambda line: None)
    klines = list(SimulatedMarket(7, 29_000_000).generate(-(-messages // 5)).klines())
    klines = klines[:messages]
    bodies = [json.dumps(to_message(kline)).encode() for kline in klines]
    connection = await aio_pika.connect(vhost)
    async with connection:
        channel = await connection.channel()
        await fill_queue(channel, "bench.raw", bodies)
        consume = await raw_consume(channel, "bench.raw", messages)
        copy = await raw_copy(database, klines)
        await fill_queue(channel, "bench.ingest", bodies)
        ingest = await mastertrade_ingest(database, channel, "bench.ingest", messages)
    bulk, raw_history, rows = await history_cases(database, max(messages // 5, 1000))
    ceiling = min(messages / consume, messages / copy)
    print(f"\nCandle ingest, {messages} messages (rate; ratio to the slower raw case)")
    print(row("raw aio-pika consume (decode + ack)", messages, consume))
    print(row("raw asyncpg COPY into candles", messages, copy))
    print(row("MasterTrade CandleIngest (broker -> PostgreSQL)", messages, ingest, ceiling))
    ratio = messages / ingest / ceiling
    print(f"  target >= {TARGET_RATIO}x: {'met' if ratio >= TARGET_RATIO else 'NOT met'}")
    print(f"\nSimulated history, {rows} candles")
    print(row("raw COPY of Decimal records (built in Python)", rows, raw_history))
    print(row("bulk.write_simulated (binary COPY + upsert)", rows, bulk, rows / raw_history))
    return 0 if ratio >= TARGET_RATIO else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=100_000)
    args = parser.parse_args(argv)
    if args.messages < 1000:
        parser.error("--messages: at least 1000")
    database, vhost = create_database("mastertrade_bench_md"), create_vhost("mastertrade_bench_md")
    try:
        return asyncio.run(run(args.messages, database, vhost))
    finally:
        drop_database(database)
        delete_vhost(vhost)


if __name__ == "__main__":
    sys.exit(main())
