"""Benchmark: signal-to-fill latency through the real broker and database, beside a raw aio-pika
round trip on the same broker in the same run.

The path measured: a Signal published on `mastertrade.signals` -> risk_manager (decision read
and written in PostgreSQL, outbox, `order.approved`) -> order_executor (order recorded with its
paper fill in PostgreSQL against a Redis quote, outbox, `order.filled`) -> this process. Both
services run as real processes (`mastertrade serve`). Latency is from the publish call to the
arrival of the fill event, matched to its signal afterwards through the run's database
(`risk_decisions`: signal id -> client order id): this process consumes one event per signal,
as the floor's listener does, and no service consumes `risk.decision` (no queue of the topology
binds it). The reference publishes a persistent message to a queue of its own and consumes it, at
the same rate, on the same broker and with the same publisher confirms.

Each run's latency is also split at the two writes it passes, read back from the run's database
(`now()`, the start of each service's write statement, in `risk_decisions.decided_at` and
`orders.created_at`; the same clock as this process's): publish -> the risk manager's write
begins (broker hop, waiting for the batch before, the batch's read and rules), -> the
executor's write begins (the risk write and commit, its publish, the second hop, waiting, the
executor's read, quotes and decisions), -> the fill event arrives here (the paper write and
commit, the outbox publish, the third hop).

Two more references run at the same rate in the same minutes: the floor of this design, two
relay processes (`floor_relay.py`) between this process's publish and its listener, so a
message crosses the same three broker hops and two processes as a signal on its way to a fill,
each relay doing only what the issue requires of a stage (take the messages waiting, publish
each on with a confirm, acknowledge after), first with no database, then with one durable
commit per batch in each relay (a decision stored before it is published, an order before it
is executed). No implementation of this design can be faster than the second on the machine.

Beside each run, the CPU time each process spent on it (from /proc, user + system), per signal:
risk_manager, order_executor, the PostgreSQL backends of the run's database, this process (the
load generator and fill listener), the RabbitMQ node and the Redis server (the executor reads
its quotes there; both shared by everyone on the machine, so upper bounds). The floor with its
commits (and the one without) is measured the same way, its two relays in place of the two
services: what the services spend beyond it is the cost of their rules, books and events.

The database starts as a running deployment's does, not empty: HISTORY (default 100,000) past
signals with their decisions, filled orders and fills of another symbol, then VACUUM ANALYZE
and a checkpoint. On an empty, never analyzed database PostgreSQL caches plans made for empty
tables (a sequential scan of `orders` inside a join, for one) and keeps them while the tables
grow, until autovacuum first analyzes them (a minute or more): the run would measure that
first-minute transient, slower every second, and not the platform. `--history 0` measures it.

Rates: RATE signals/s for DURATION s (default 200/s for 10 s); with --ramp the rate doubles
until the p99 passes 50 ms (the sustained rate is the last one under it). Target (the issue):
p99 under 10 ms at 200 signals/s.

    .venv/bin/python bench/signal_to_fill.py [--rate 200] [--duration 10] [--ramp] [--history N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from decimal import Decimal
from pathlib import Path

import aio_pika
import asyncpg
import redis.asyncio as aioredis
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.infra import create_database, create_vhost, delete_vhost, drop_database, free_port

from mastertrade.core.bus import declare_topology, publish_json
from mastertrade.core.prices import TopOfBook, write_book
from mastertrade_model.topology import EXCHANGES, ORDERS, QUEUES, SIGNALS

MASTERTRADE = Path(sys.executable).parent / "mastertrade"
FLOOR_RELAY = Path(__file__).resolve().parent / "floor_relay.py"
FLOOR_EXCHANGE = "bench.floor"
FLOOR_VARIANTS = {
    "broker": "floor: 3 hops, 2 relays, no database",
    "commit": "floor: + a commit per batch",
}
REDIS_URL = os.environ.get("MASTERTRADE_BENCH_REDIS", "redis://127.0.0.1:6379/15")
SYMBOL = "BENCHUSDT"
P99_CEILING_MS = 50.0


def say(line: str) -> None:
    print(f"bench: {line}", file=sys.stderr, flush=True)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of a process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


RABBITMQ_NODE = b"-s\x00rabbit\x00boot"
"""In the command line of the RabbitMQ node (the beam.smp running `rabbit`)."""
REDIS_SERVER = b"redis-server "
"""At the start of the Redis server's command line (its process title)."""


def pids_running(marker: bytes) -> list[int]:
    """The processes whose command line contains `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if marker in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
    return found


class CpuMeter:
    """CPU seconds of named groups of processes between `start` and `stop`: `processes` (the
    two services, or the floor's relays) and the infrastructure they use."""

    def __init__(self, database_url: str, processes: dict[str, list[int]]) -> None:
        self.database_url, self.processes = database_url, processes
        self.started: dict[str, dict[int, float]] = {}

    async def groups(self) -> dict[str, list[int]]:
        connection = await asyncpg.connect(self.database_url)
        try:
            backends = await connection.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid()"
            )
        finally:
            await connection.close()
        return {
            **self.processes,
            "postgres (run's backends)": [row["pid"] for row in backends],
            "this process (load, listener)": [os.getpid()],
            "rabbitmq node (shared)": pids_running(RABBITMQ_NODE),
            "redis server (shared)": pids_running(REDIS_SERVER),
        }

    async def start(self) -> None:
        groups = await self.groups()
        self.started = {name: {pid: cpu_of(pid) for pid in pids} for name, pids in groups.items()}

    async def stop(self) -> dict[str, float]:
        """CPU seconds per group; a backend that appeared meanwhile counts from zero."""
        groups = await self.groups()
        return {
            name: sum(cpu_of(pid) - self.started.get(name, {}).get(pid, 0.0) for pid in pids)
            for name, pids in groups.items()
        }


def cpu_rows(spent: dict[str, float], signals: int, duration: float) -> list[str]:
    return [
        f"  cpu {name:<30} {seconds:>6.2f} s {seconds * 1000 / max(signals, 1):>7.3f} ms/signal"
        f" {seconds / duration * 100:>5.1f} % of a core"
        for name, seconds in spent.items()
    ]


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


HISTORY_SQL = """
INSERT INTO risk_decisions (signal_id, environment, symbol, side, outcome, requested_quantity,
    approved_quantity, price, client_order_id, decided_at)
SELECT 'history' || n, 'paper', 'HISTORYUSDT', 'buy', 'approved', 0.001, 0.001, 100,
    'mt-history' || n, now() - interval '1 day' + n * interval '1 ms'
FROM generate_series(1, $1::integer) AS n;
INSERT INTO orders (client_order_id, signal_ref, symbol, side, type, quantity, status,
    environment, filled_quantity, average_price, fee, created_at, updated_at)
SELECT 'mt-history' || n, 'history' || n, 'HISTORYUSDT', 'buy', 'market', 0.001, 'filled',
    'paper', 0.001, 100, 0.0001, now() - interval '1 day' + n * interval '1 ms',
    now() - interval '1 day' + n * interval '1 ms'
FROM generate_series(1, $1::integer) AS n;
INSERT INTO fills (client_order_id, fill_id, price, quantity, fee, fee_asset, filled_at)
SELECT 'mt-history' || n, 'mt-history' || n || ':1', 100, 0.001, 0.0001, 'USDT',
    now() - interval '1 day' + n * interval '1 ms'
FROM generate_series(1, $1::integer) AS n;
INSERT INTO outbox (exchange, routing_key, payload, published_at)
SELECT 'mastertrade.orders', 'order.filled',
    jsonb_build_object('client_order_id', 'mt-history' || n),
    now() - interval '30 minutes' + n * interval '10 ms'
FROM generate_series(1, $1::integer) AS n;
"""
"""Past trading of another symbol: the tables' sizes and statistics, not the books (balance and
positions start as a new paper account's). The outbox keeps what it published in the last hour
(`KEEP_PUBLISHED_SECONDS`; at 200 signals/s, two million events): without such rows the writes'
plans, made on an empty outbox, mark what was sent by reading the whole table, longer every
second of the run."""


async def add_history(database_url: str, rows: int) -> None:
    """Write `rows` past signals (HISTORY_SQL), then give PostgreSQL its statistics."""
    connection = await asyncpg.connect(database_url)
    try:
        async with connection.transaction():
            for statement in filter(str.strip, HISTORY_SQL.split(";")):
                await connection.execute(statement, rows)
        await connection.execute("VACUUM ANALYZE")
        await connection.execute("CHECKPOINT")  # its writes are not the run's
    finally:
        await connection.close()


@contextlib.contextmanager
def infrastructure(history: int) -> Iterator[dict[str, str]]:
    """A database (with `history` past signals) and a vhost of the run's own, migrated; the
    services' environment."""
    database, vhost = create_database("mastertrade_bench"), create_vhost("mastertrade_bench")
    env = {
        **os.environ,
        "DATABASE_URL": database,
        "RABBITMQ_URL": vhost,
        "REDIS_URL": REDIS_URL,
        "LOG_LEVEL": "WARNING",
        "LOG_FORMAT": "console",
        "MAX_ORDERS_PER_MINUTE": "100000",
        "PAPER_TRADING_INITIAL_BALANCE": "100000000",
        "MAX_POSITION_SIZE_PCT": "1",
    }
    try:
        subprocess.run([str(MASTERTRADE), "migrate"], env=env, check=True, capture_output=True)
        if history:
            say(f"adding {history} past signals, orders and fills, then VACUUM ANALYZE")
            asyncio.run(add_history(database, history))
        yield env
    finally:
        delete_vhost(vhost)
        drop_database(database)


def floor_hops(variant: str) -> list[str]:
    """The routing keys (and queue names) of a floor variant's three hops."""
    return [f"{variant}_hop{hop}" for hop in (1, 2, 3)]


def floor_commands(env: dict[str, str]) -> list[list[str]]:
    """Two relays per floor variant: hop 1 -> hop 2 and hop 2 -> hop 3."""
    commands = []
    for variant in FLOOR_VARIANTS:
        database = [env["DATABASE_URL"]] if variant == "commit" else []
        hops = floor_hops(variant)
        for source, target in itertools.pairwise(hops):
            commands.append([sys.executable, str(FLOOR_RELAY), env["RABBITMQ_URL"], FLOOR_EXCHANGE,
                             source, target, *database])  # fmt: skip
    return commands


@contextlib.contextmanager
def services(env: dict[str, str]) -> Iterator[dict[str, dict[str, list[int]]]]:
    """The two services and the floor's relays as processes; their pids by what they run (the
    services, each floor variant), then by process."""
    serve = [
        [str(MASTERTRADE), "serve", name, "--host", "127.0.0.1", "--port", str(free_port())]
        for name in ("risk_manager", "order_executor")
    ]
    children = [
        subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for command in serve + floor_commands(env)
    ]
    try:
        relays = iter(children[len(serve) :])  # two per variant, in floor_commands' order
        yield {
            "services": {"risk_manager": [children[0].pid], "order_executor": [children[1].pid]},
            **{variant: {"floor relays (2)": [next(relays).pid, next(relays).pid]}
               for variant in FLOOR_VARIANTS},
        }  # fmt: skip
    finally:
        for child in children:
            child.send_signal(signal.SIGTERM)
        for child in children:
            child.wait(timeout=30)


WALL_OFFSET = time.time() - time.perf_counter()
"""Added to a `perf_counter` reading, the wall clock PostgreSQL's `now()` is on."""

RUN_SQL = """
SELECT d.signal_id, d.client_order_id, extract(epoch FROM d.decided_at)::float8 AS risk_began,
       extract(epoch FROM o.created_at)::float8 AS executor_began
FROM risk_decisions d JOIN orders o ON o.client_order_id = d.client_order_id
WHERE d.signal_id LIKE $1 || '%'
"""
STAGES = (
    "publish -> risk write begins",
    "risk write -> executor write begins",
    "executor write -> fill event here",
)


class Tracker:
    """Publish times by signal id, and arrival times of fill events by client order id."""

    def __init__(self) -> None:
        self.sent: dict[str, float] = {}
        self.filled_at: dict[str, float] = {}

    async def on_fill(self, message: AbstractIncomingMessage) -> None:
        now = time.perf_counter()
        await message.ack()
        self.filled_at[json.loads(message.body)["client_order_id"]] = now


async def run_latencies(
    tracker: Tracker, database_url: str, prefix: str
) -> tuple[list[float], dict[str, list[float]]]:
    """Publish-to-fill of the filled signals whose id starts with `prefix`, and the same cut
    where their two writes began (see the docstring)."""
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(RUN_SQL, prefix)
    finally:
        await connection.close()
    fills: list[float] = []
    stages: dict[str, list[float]] = {name: [] for name in STAGES}
    for record in rows:
        filled_at = tracker.filled_at.get(record["client_order_id"])
        if filled_at is None:
            continue
        sent = tracker.sent[record["signal_id"]]
        fills.append((filled_at - sent) * 1000)
        points = (
            sent + WALL_OFFSET, record["risk_began"], record["executor_began"],
            filled_at + WALL_OFFSET,
        )  # fmt: skip
        for name, (start, end) in zip(STAGES, itertools.pairwise(points), strict=True):
            stages[name].append((end - start) * 1000)
    return fills, stages


def signal_body(signal_id: str) -> dict[str, str]:
    """A market buy of the bench's symbol: what every run publishes, the floor's included."""
    return {"signal_id": signal_id, "symbol": SYMBOL, "side": "buy", "quantity": "0.001",
            "price": "100"}  # fmt: skip


async def paced(rate: float, duration: float) -> AsyncIterator[int]:
    """Indices at `rate` per second for `duration` seconds, on a fixed schedule."""
    start, count = time.perf_counter(), int(rate * duration)
    for index in range(count):
        delay = start + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        yield index


async def run_pipeline(
    channel: AbstractChannel, tracker: Tracker, rate: float, duration: float
) -> str:
    """Signals at `rate`, until all are filled or 10 s after the last; their ids' prefix."""
    run, filled_before = f"b{uuid.uuid4().hex[:8]}", len(tracker.filled_at)
    async for index in paced(rate, duration):
        signal_id = f"{run}{index}"
        tracker.sent[signal_id] = time.perf_counter()
        await publish_json(channel, SIGNALS.name, f"signal.{SYMBOL}", signal_body(signal_id))
    expected = int(rate * duration)
    deadline = time.perf_counter() + 10
    while len(tracker.filled_at) - filled_before < expected and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    return run


async def run_reference(channel: AbstractChannel, rate: float, duration: float) -> list[float]:
    """A persistent, confirmed publish to a queue and its consumption, at the same rate."""
    queue = await channel.declare_queue(exclusive=True)
    sent: dict[str, float] = {}
    latencies: list[float] = []

    async def on_message(message: AbstractIncomingMessage) -> None:
        latencies.append((time.perf_counter() - sent[message.body.decode()]) * 1000)
        await message.ack()

    await queue.consume(on_message)
    exchange = channel.default_exchange
    async for index in paced(rate, duration):
        sent[str(index)] = time.perf_counter()
        await exchange.publish(
            aio_pika.Message(str(index).encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            queue.name,
        )
    deadline = time.perf_counter() + 5
    while len(latencies) < len(sent) and time.perf_counter() < deadline:
        await asyncio.sleep(0.02)
    return latencies


class Floor:
    """The floor's exchange and queues, and the latencies of the messages reaching the end."""

    def __init__(self) -> None:
        self.sent: dict[str, float] = {}
        self.arrived: dict[str, float] = {}

    async def declare(self, channel: AbstractChannel) -> None:
        exchange = await channel.declare_exchange(FLOOR_EXCHANGE, "topic", durable=True)
        for variant in FLOOR_VARIANTS:
            for hop in floor_hops(variant):
                queue = await channel.declare_queue(hop, durable=True)
                await queue.bind(exchange, hop)
                if hop.endswith("3"):
                    await queue.consume(self.on_arrival)

    async def on_arrival(self, message: AbstractIncomingMessage) -> None:
        now = time.perf_counter()
        await message.ack()
        self.arrived[json.loads(message.body)["signal_id"]] = now

    async def send(self, channel: AbstractChannel, variant: str, signal_id: str) -> None:
        self.sent[signal_id] = time.perf_counter()
        await publish_json(channel, FLOOR_EXCHANGE, floor_hops(variant)[0], signal_body(signal_id))

    async def ready(self, channel: AbstractChannel) -> None:
        """Until a message has crossed each variant's relays."""
        for variant in FLOOR_VARIANTS:
            for attempt in range(600):
                await self.send(channel, variant, f"warm-{variant}-{attempt}")
                await asyncio.sleep(0.1)
                if any(key.startswith(f"warm-{variant}") for key in self.arrived):
                    break
            else:
                raise RuntimeError(f"the floor's {variant} relays passed nothing in a minute")

    async def run(
        self, channel: AbstractChannel, variant: str, rate: float, duration: float
    ) -> list[float]:
        """Messages through a variant's relays at `rate`; the latencies of those arriving."""
        run = f"{variant}-{uuid.uuid4().hex[:8]}-"
        async for index in paced(rate, duration):
            await self.send(channel, variant, f"{run}{index}")
        ids = [f"{run}{index}" for index in range(int(rate * duration))]
        deadline = time.perf_counter() + 10
        while not all(i in self.arrived for i in ids) and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        return [(self.arrived[i] - self.sent[i]) * 1000 for i in ids if i in self.arrived]


def row(name: str, rate: float, values: list[float], expected: int) -> str:
    return (
        f"{name:<38} {rate:>7.0f} {len(values):>5}/{expected:<5} {percentile(values, 0.5):>8.2f}"
        f" {percentile(values, 0.99):>8.2f} {max(values, default=float('nan')):>8.2f}"
    )


async def ready(channel: AbstractChannel, tracker: Tracker) -> None:
    """Until one signal goes all the way through (both services up, account open)."""
    for attempt in range(600):
        signal_id = f"warm{attempt}"
        tracker.sent[signal_id] = time.perf_counter()
        await publish_json(channel, SIGNALS.name, f"signal.{SYMBOL}", signal_body(signal_id))
        await asyncio.sleep(0.5)
        if tracker.filled_at:
            return
    raise RuntimeError("no fill after 5 minutes: are both services starting?")


async def bench(args: argparse.Namespace, env: dict[str, str]) -> None:
    client = aioredis.Redis.from_url(REDIS_URL)
    await write_book(
        client,
        TopOfBook(SYMBOL, Decimal("99.99"), Decimal("100.01"), int(time.time() * 1000) + 3_600_000),
    )
    await client.aclose()
    connection = await aio_pika.connect(env["RABBITMQ_URL"])
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await declare_topology(channel, EXCHANGES, QUEUES)
        events = await channel.declare_queue(exclusive=True)
        await events.bind(ORDERS.name, "order.filled")
        tracker, floor = Tracker(), Floor()
        await events.consume(tracker.on_fill)
        await floor.declare(channel)
        with services(env) as pids:
            await ready(channel, tracker)
            await floor.ready(channel)
            say("both services and the floor's relays up; measuring")
            meters = {name: CpuMeter(env["DATABASE_URL"], group) for name, group in pids.items()}
            await report(channel, tracker, floor, args, meters)


async def report(
    channel: AbstractChannel,
    tracker: Tracker,
    floor: Floor,
    args: argparse.Namespace,
    meters: dict[str, CpuMeter],
) -> None:
    print(f"{'path':<38} {'rate/s':>7} {'done':>11} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    rate, sustained = args.rate, 0.0
    while True:
        expected = int(rate * args.duration)
        reference = await run_reference(channel, rate, args.duration)
        print(row("raw aio-pika round trip", rate, reference, expected), flush=True)
        for variant, name in FLOOR_VARIANTS.items():
            await meters[variant].start()
            started = time.perf_counter()
            floor_latencies = await floor.run(channel, variant, rate, args.duration)
            spent, elapsed = await meters[variant].stop(), time.perf_counter() - started
            print(row(name, rate, floor_latencies, expected), flush=True)
            print("\n".join(cpu_rows(spent, expected, elapsed)), flush=True)
        meter = meters["services"]
        await meter.start()
        started = time.perf_counter()
        run = await run_pipeline(channel, tracker, rate, args.duration)
        spent, elapsed = await meter.stop(), time.perf_counter() - started
        latencies, stages = await run_latencies(tracker, meter.database_url, run)
        print(row("signal -> risk -> executor -> fill", rate, latencies, expected), flush=True)
        for name, values in stages.items():
            print(row(f"  {name}", rate, values, expected), flush=True)
        print("\n".join(cpu_rows(spent, expected, elapsed)), flush=True)
        ok = len(latencies) == expected and percentile(latencies, 0.99) <= P99_CEILING_MS
        sustained = rate if ok else sustained
        if not args.ramp or not ok:
            break
        rate *= 2
    if args.ramp:
        print(f"sustained: {sustained:.0f} signals/s with p99 <= {P99_CEILING_MS:.0f} ms")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--ramp", action="store_true", help="double the rate until p99 > 50 ms")
    parser.add_argument(
        "--history", type=int, default=100_000, help="past signals in the database (0: none)"
    )
    args = parser.parse_args(argv)
    if args.history < 0:
        parser.error(f"--history is a number of past signals, 0 or more, not {args.history}")
    with infrastructure(args.history) as env:
        asyncio.run(bench(args, env))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
