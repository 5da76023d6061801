"""The Binance stream's reconnects against the local fake Binance: a server that accepts every
connection and drops it at once is asked again after a growing backoff, not in a tight loop
(each pass used to queue a REST backfill, and Binance bans an IP beyond 300 connections per
5 minutes); the backoff starts again from its first step only once a connection stayed up."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime

import pytest
from prometheus_client import CollectorRegistry

from mastertrade.market_data import binance_ws
from mastertrade.market_data.binance_ws import BinanceStream
from mastertrade.market_data.domain.events import MarketEvent
from mastertrade.market_data.metrics import MarketMetrics
from mastertrade.market_data.sink import MarketSink
from tests.fakes.binance import FakeBinance
from tests.services.helpers import until

pytestmark = pytest.mark.infra
T0_MS = 1735689600000


class Discard:
    async def write(self, events: Sequence[MarketEvent]) -> None:
        return None


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    server = FakeBinance(history_start_ms=T0_MS, history_end_ms=T0_MS)
    await server.start()
    yield server
    await server.stop()


def stream_of(fake: FakeBinance, gaps: list[dict[str, datetime]]) -> BinanceStream:
    async def on_gap(since: Mapping[str, datetime]) -> None:
        gaps.append(dict(since))

    metrics = MarketMetrics(CollectorRegistry(), "test")
    return BinanceStream(fake.ws_url, ["btcusdt@kline_1m"], sink=MarketSink(Discard(), metrics,
                         100, 60), metrics=metrics, rotate_seconds=3600, max_backoff=0.4,
                         on_gap=on_gap, rng=random.Random(7))  # fmt: skip


@contextlib.asynccontextmanager
async def streaming(stream: BinanceStream) -> AsyncIterator[None]:
    task = asyncio.create_task(stream.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_server_that_drops_every_connection_at_once_is_asked_again_after_a_backoff(
    fake: FakeBinance,
) -> None:
    fake.max_connection_seconds = 0.0  # accepted, then closed at once
    gaps: list[dict[str, datetime]] = []
    stream = stream_of(fake, gaps)
    async with streaming(stream):
        await asyncio.sleep(2.0)
    # delays drawn from [0, 0.4 s]: about ten in 2 s (the tight loop made hundreds)
    assert 3 <= fake.ws_connections <= 25, fake.ws_connections
    assert len(gaps) <= fake.ws_connections
    assert stream.failures >= fake.ws_connections - 1


async def test_the_backoff_starts_again_once_a_connection_stayed_up(
    fake: FakeBinance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(binance_ws, "STABLE_SECONDS", 0.5)
    fake.max_connection_seconds = 0.0
    stream = stream_of(fake, [])

    async def failing() -> bool:
        return stream.failures >= 3

    async def connected() -> bool:
        return fake.open_connections == 1

    async with streaming(stream):
        await until(failing, "three connections dropped at once")
        fake.max_connection_seconds = None  # the next connection stays
        await until(connected, "a connection that stays")
        assert stream.failures >= 3
        await asyncio.sleep(0.6)  # up longer than STABLE_SECONDS
        opened = fake.ws_connections

        async def reconnected() -> bool:
            return fake.ws_connections > opened

        await fake.drop_connections()
        await until(reconnected, "the reconnect")
        assert stream.failures == 0
