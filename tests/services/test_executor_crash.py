"""kill -9 of the order executor, 20 times, at random moments and inside fills: no order lost,
none doubled.

The executor runs as a real process (`mastertrade serve order_executor`) on the real broker,
database and Redis; approved orders keep arriving (about 20 a second) while it is SIGKILLed,
restarted, 20 times, and finally left to finish. Then every order must exist once, every filled
order must have exactly one fill, and the cash must be exactly the start minus what the fills
cost.

A third of the kills come at random moments once it serves (a new seed each run, printed;
KILL_SEED replays one), the others inside a fill, made certain (`tests/services/crash.py`):
its messages unacknowledged and its write of the orders ended before its commit, or committed
after the kill.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from functools import partial
from pathlib import Path

import asyncpg
import httpx
import pytest
from aio_pika.abc import AbstractChannel

from mastertrade.core.bus import publish_json
from mastertrade.execution.app import QUEUE
from mastertrade_model.topology import DEAD_LETTER_QUEUE, ORDERS
from tests.infra import free_port
from tests.services.crash import Landed, kill_inside_a_fill, kill_moments
from tests.services.trading import new_symbol, recording, set_quote

pytestmark = pytest.mark.infra

MAX_ORDERS = 6000  # 5 minutes of the feed: a slow machine's 20 kills end well before
KILLS = 20
START = Decimal(1000000)
MASTERTRADE = str(Path(sys.executable).parent / "mastertrade")


def start_executor(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A fresh executor process; its warnings and errors go to the end of `log`."""
    environ = {**os.environ, **env, "PAPER_TRADING_INITIAL_BALANCE": str(START),
               "LOG_LEVEL": "WARNING", "LOG_FORMAT": "console"}  # fmt: skip
    port = free_port()
    with log.open("ab") as output:
        process = subprocess.Popen(
            [MASTERTRADE, "serve", "order_executor", "--port", str(port), "--host", "127.0.0.1"],
            env=environ, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    return process, port


async def until_serving(port: int, timeout: float = 60.0) -> None:
    """Until the process answers HTTP (its consumer starts in the same lifespan)."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while True:
            try:
                if (await client.get(f"http://127.0.0.1:{port}/livez")).status_code == 200:
                    return
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the executor did not start"
            await asyncio.sleep(0.05)


async def count_terminal(url: str) -> int:
    connection = await asyncpg.connect(url)
    try:
        return int(await connection.fetchval(
            "SELECT count(*) FROM orders WHERE status IN ('filled', 'rejected')"))  # fmt: skip
    finally:
        await connection.close()


async def ready(channel: AbstractChannel, queue: str) -> int:
    declared = await channel.declare_queue(queue, passive=True)
    return int(declared.declaration_result.message_count or 0)


async def unfinished(url: str, channel: AbstractChannel, sent: int, log: Path) -> str:
    """What stands between the books and the orders sent, said for a failing assertion."""
    connection = await asyncpg.connect(url)
    try:
        statuses = await connection.fetch("SELECT status, count(*) FROM orders GROUP BY status")
    finally:
        await connection.close()
    by_status = {row["status"]: row["count"] for row in statuses}
    queues = {name: await ready(channel, name) for name in (QUEUE, DEAD_LETTER_QUEUE)}
    lines = log.read_text(errors="replace").splitlines()
    return (f"{sent} orders sent; recorded by status: {by_status}; "
            f"messages ready: {queues}; the executors' last log lines:\n"
            + "\n".join(lines[-40:]))  # fmt: skip


async def audit(url: str) -> dict[str, object]:
    connection = await asyncpg.connect(url)
    try:
        orders = await connection.fetch("SELECT client_order_id, status FROM orders")
        fills = await connection.fetch(
            "SELECT client_order_id, count(*) AS n, sum(price * quantity + fee) AS cost, "
            "sum(quantity) AS quantity FROM fills GROUP BY client_order_id"
        )
        cash = await connection.fetchval(
            "SELECT free + locked FROM balances WHERE environment = 'paper' AND asset = 'USDT'"
        )
        held = await connection.fetchval("SELECT COALESCE(sum(quantity), 0) FROM positions")
    finally:
        await connection.close()
    return {"orders": orders, "fills": fills, "cash": cash, "held": held}


async def feed(channel: AbstractChannel, symbol: str, sent: list[str], stop: asyncio.Event) -> None:
    """Approved orders at about 20 a second, while the executor lives and dies."""
    while not stop.is_set() and len(sent) < MAX_ORDERS:
        client_order_id = f"mt-crash-{uuid.uuid4().hex[:16]}"
        order = {"client_order_id": client_order_id, "signal_id": client_order_id,
                 "symbol": symbol, "side": "buy", "order_type": "market",
                 "quantity": "0.5"}  # fmt: skip
        await publish_json(channel, ORDERS.name, "order.approved", order)
        sent.append(client_order_id)
        await asyncio.sleep(0.05)


async def sigkill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)


async def kill_repeatedly(env: dict[str, str], rng: random.Random, log: Path) -> None:
    """SIGKILL a fresh executor KILLS times, in turn: at a random moment, inside a fill before
    its commit, inside a fill after its commit (unacknowledged)."""
    for kill in range(KILLS):
        process, port = start_executor(env, log)
        try:
            await until_serving(port)
            if kill % 3:
                landed = Landed.BEFORE_COMMIT if kill % 3 == 1 else Landed.AFTER_COMMIT
                await kill_inside_a_fill(env["DATABASE_URL"], partial(sigkill, process), landed)
            else:
                await asyncio.sleep(rng.uniform(0.05, 1.5))
        finally:  # killed here too when a check failed: no executor outlives the test
            await sigkill(process)


async def test_sigkill_twenty_times_loses_and_doubles_nothing(
    trading_env: dict[str, str], tmp_path: Path
) -> None:
    symbol, rng, stop = new_symbol(), kill_moments(), asyncio.Event()
    log = tmp_path / "executors.log"
    sent: list[str] = []
    await set_quote(symbol, "99.5", "100")
    env = {**trading_env, "PRICE_MAX_AGE_SECONDS": "0"}
    async with recording(trading_env["RABBITMQ_URL"]) as (_, channel):
        feeder = asyncio.create_task(feed(channel, symbol, sent, stop))
        await kill_repeatedly(env, rng, log)
        stop.set()
        await feeder
        process, _ = start_executor(env, log)
        try:
            deadline = time.monotonic() + 120
            while await count_terminal(env["DATABASE_URL"]) < len(sent):
                # a dead letter will never be an order: no use waiting out the deadline
                if time.monotonic() > deadline or await ready(channel, DEAD_LETTER_QUEUE):
                    why = await unfinished(env["DATABASE_URL"], channel, len(sent), log)
                    raise AssertionError(f"the executor did not finish the orders: {why}")
                await asyncio.sleep(0.5)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        dead_letters = await ready(channel, DEAD_LETTER_QUEUE)
    books = await audit(env["DATABASE_URL"])
    orders, fills = books["orders"], books["fills"]
    assert isinstance(orders, list) and isinstance(fills, list)
    assert sorted(row["client_order_id"] for row in orders) == sorted(sent)  # 0 lost
    assert {row["status"] for row in orders} == {"filled"}
    assert len(fills) == len(sent) and {row["n"] for row in fills} == {1}  # 0 doubled
    assert books["cash"] == START - sum(row["cost"] for row in fills)
    assert books["held"] == Decimal("0.5") * len(sent)
    assert dead_letters == 0
