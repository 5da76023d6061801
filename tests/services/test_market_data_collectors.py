"""The sentiment and on-chain collectors against a local server speaking each provider's API,
storing into real PostgreSQL and publishing on the real broker: exact rows, cursors that count
each post once, 429 waits as asked, 401 and malformed answers counted without a crash, and
/health and /metrics saying which collectors are on."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aio_pika
import asyncpg
import httpx
import pytest
from aio_pika.exceptions import AMQPConnectionError
from prometheus_client import CollectorRegistry

from mastertrade.core.bus import declare_topology
from mastertrade.core.settings import load_settings
from mastertrade.market_data.app import create_app
from mastertrade.market_data.domain.observations import Observation
from mastertrade.market_data.metrics import MarketMetrics
from mastertrade.market_data.providers.build import PROVIDERS, Collectors, build_collectors
from mastertrade.market_data.providers.poller import Poller
from mastertrade.market_data.providers.sink import ObservationWriter
from mastertrade.market_data.settings import MarketDataSettings
from mastertrade.market_data.writer import Connections
from mastertrade_model.topology import MARKET_DATA
from tests.fakes.providers import FakeProviders
from tests.services.conftest import migrated_database
from tests.services.helpers import running

pytestmark = pytest.mark.infra

NOW = 1_735_732_800  # 2025-01-01T12:00:00Z
USDT = "0xdac17f958d2ee523a2206206994597c13d831ec7"


def tweet(tweet_id: int, text: str, likes: int) -> dict[str, Any]:
    return {"id": str(tweet_id), "text": text, "created_at": "2025-01-01T11:00:00.000Z",
            "public_metrics": {"like_count": likes, "retweet_count": 1, "reply_count": 0,
                               "quote_count": 0}}  # fmt: skip


def reddit_post(name: str, title: str, created: int, score: int) -> dict[str, Any]:
    return {"name": name, "id": name[3:], "title": title, "selftext": "", "score": score,
            "num_comments": 2, "created_utc": float(created), "subreddit": "Bitcoin"}  # fmt: skip


def transfer(block: int, value: str) -> dict[str, Any]:
    return {"transaction_hash": f"0x{block:064x}", "block_number": str(block), "log_index": 0,
            "block_timestamp": "2025-01-01T11:00:00.000Z", "value": value,
            "token_decimals": "6", "from_address": "0x1", "to_address": "0x2"}  # fmt: skip


def fill(fake: FakeProviders) -> None:
    fake.tweets["BTC"] = [
        tweet(101, "BTC rally, bullish", 10),
        tweet(102, "fear, crash and dump", 4),
    ]
    fake.tweets["ETH"] = [tweet(201, "eth moon", 1)]
    fake.reddit_posts["Bitcoin"] = [reddit_post("t3_b", "HODL strong", NOW - 60, 40),
                                    reddit_post("t3_a", "Dump incoming", NOW - 120, 8)]  # fmt: skip
    fake.coins = [{"id": 1, "symbol": "BTC", "name": "Bitcoin", "galaxy_score": 72.5,
                   "alt_rank": 3, "sentiment": 81, "social_dominance": 21.123456789,
                   "interactions_24h": 123456789, "social_volume_24h": 4567}]  # fmt: skip
    fake.glassnode[("addresses/active_count", "BTC")] = [
        {"t": NOW - 86400, "v": 812345},
        {"t": NOW, "v": 823456.5},
    ]
    fake.transfers[USDT] = [transfer(12, "2500000000000"), transfer(11, "1500000")]


@dataclass
class Harness:
    fake: FakeProviders
    settings: MarketDataSettings
    pool: asyncpg.Pool
    channel: aio_pika.abc.AbstractChannel
    collectors: Collectors
    metrics: MarketMetrics

    def poller(self, name: str) -> Poller:
        return self.collectors.pollers[name]

    async def rows(self, source: str) -> dict[tuple[str, str], Decimal]:
        found = await self.pool.fetch(
            "SELECT subject, metric, value FROM external_metrics WHERE source = $1 "
            "ORDER BY observed_at", source)  # fmt: skip
        return {(r["subject"], r["metric"]): r["value"] for r in found}

    def polls(self, name: str, outcome: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "mastertrade_market_data_collector_polls_total",
            {"service": "market_data_service", "collector": name, "outcome": outcome},
        )
        return value or 0.0


@pytest.fixture
def collectors_db() -> Iterator[str]:
    yield from migrated_database("mastertrade_collectors")


def settings_for(env: dict[str, str], fake: FakeProviders, **extra: str) -> MarketDataSettings:
    values = {**env, **fake.env(), "GLASSNODE_METRICS": "addresses/active_count",
              "SENTIMENT_ASSETS": "BTC,ETH", "REDDIT_SUBREDDITS": "Bitcoin",
              "MORALIS_TOKENS": USDT, "MORALIS_WHALE_THRESHOLD": "1000000", **extra}  # fmt: skip
    return load_settings(MarketDataSettings, "market_data_service", environ=values)


@pytest.fixture
async def harness(
    service_env: dict[str, str], collectors_db: str, rabbitmq_url: str
) -> AsyncIterator[Harness]:
    fake = FakeProviders()
    fill(fake)
    await fake.start()
    settings = settings_for({**service_env, "DATABASE_URL": collectors_db}, fake)
    pool = await asyncpg.create_pool(collectors_db, min_size=1, max_size=2)
    connection = await aio_pika.connect(rabbitmq_url)
    channel = await connection.channel()
    await declare_topology(channel, [MARKET_DATA], [])
    metrics = MarketMetrics(CollectorRegistry(), "market_data_service")
    connections = Connections(pool=lambda: pool, redis=lambda: None,  # type: ignore[arg-type,return-value]
                              channel=lambda: channel)  # fmt: skip
    collectors = build_collectors(settings, ObservationWriter(connections), metrics)
    for poller in collectors.pollers.values():
        poller.clock = lambda: float(NOW)
    for client in collectors.clients:  # Twitter's 429 names a Unix time: the test's own clock
        client.clock = lambda: float(NOW)
    try:
        yield Harness(fake, settings, pool, channel, collectors, metrics)
    finally:
        await collectors.close()
        await connection.close()
        await pool.close()
        await fake.stop()


async def test_every_collector_stores_exact_rows_and_counts_each_post_once(
    harness: Harness,
) -> None:
    for name in PROVIDERS:
        assert await harness.poller(name).poll_once() > 0
        assert harness.poller(name).state == "ok", harness.poller(name).last_error
    assert await harness.rows("twitter") == {
        ("BTC", "posts"): 2, ("BTC", "engagement"): 16, ("BTC", "sentiment"): Decimal("-0.2"),
        ("ETH", "posts"): 1, ("ETH", "engagement"): 2, ("ETH", "sentiment"): 1,
    }  # fmt: skip
    assert await harness.rows("reddit") == {
        ("r/Bitcoin", "posts"): 2, ("r/Bitcoin", "engagement"): 52,
        ("r/Bitcoin", "sentiment"): Decimal("0.3333"),
    }  # fmt: skip
    lunar = await harness.rows("lunarcrush")
    assert lunar[("BTC", "social_dominance")] == Decimal("21.123456789")
    assert lunar[("BTC", "interactions_24h")] == 123456789
    glassnode = await harness.pool.fetch(
        "SELECT observed_at, value FROM external_metrics WHERE source = 'glassnode' "
        "ORDER BY observed_at")  # fmt: skip
    assert [r["value"] for r in glassnode] == [812345, Decimal("823456.5")]
    assert await harness.rows("moralis") == {
        (USDT, "transfers"): 2, (USDT, "transfer_volume"): Decimal("2500001.5"),
        (USDT, "largest_transfer"): 2500000, (USDT, "whale_transfers"): 1,
    }  # fmt: skip

    # the second poll asks only for what is new, and counts only that
    harness.fake.tweets["BTC"].append(tweet(103, "bullish breakout", 0))
    twitter = harness.poller("twitter")
    twitter.clock = lambda: float(NOW + 900)
    await twitter.poll_once()
    assert harness.fake.calls("twitter")[-2]["since_id"] == "102"
    latest = await harness.pool.fetchrow(
        "SELECT value FROM external_metrics WHERE source = 'twitter' AND subject = 'BTC' "
        "AND metric = 'posts' ORDER BY observed_at DESC LIMIT 1")  # fmt: skip
    assert latest is not None and latest["value"] == 1
    harness.fake.transfers[USDT].insert(0, transfer(13, "7000000"))
    moralis = harness.poller("moralis")
    moralis.clock = lambda: float(NOW + 3600)
    await moralis.poll_once()
    newest = await harness.pool.fetchval(
        "SELECT value FROM external_metrics WHERE source = 'moralis' AND metric = "
        "'transfer_volume' ORDER BY observed_at DESC LIMIT 1")  # fmt: skip
    assert newest == 7
    assert harness.polls("twitter", "ok") == 2


async def test_observations_are_published_with_their_routing_keys(harness: Harness) -> None:
    queue = await harness.channel.declare_queue(exclusive=True)
    await queue.bind(MARKET_DATA.name, routing_key="sentiment.#")
    await queue.bind(MARKET_DATA.name, routing_key="onchain.#")
    await harness.poller("lunarcrush").poll_once()
    await harness.poller("glassnode").poll_once()
    messages: list[tuple[str | None, dict[str, Any]]] = []
    deadline = time.monotonic() + 15
    while len(messages) < 8:
        assert time.monotonic() < deadline, messages
        message = await queue.get(fail=False)
        if message is None:
            await asyncio.sleep(0.05)
            continue
        await message.ack()
        messages.append((message.routing_key, json.loads(message.body)))
    keys = {key for key, _ in messages}
    assert keys == {"sentiment.lunarcrush.BTC", "onchain.glassnode.BTC"}
    galaxy = next(body for _, body in messages if body["metric"] == "galaxy_score")
    assert galaxy["value"] == "72.5" and galaxy["kind"] == "sentiment"


async def test_a_429_waits_as_long_as_the_provider_asks(harness: Harness) -> None:
    harness.fake.force("glassnode", 429, '{"error": "too many requests"}', **{"Retry-After": "37"})
    harness.fake.force("twitter", 429, '{"title": "Too Many Requests", "status": 429}',
                       **{"x-rate-limit-reset": str(NOW + 420)})  # fmt: skip
    harness.fake.force("reddit", 429, "{}", **{"x-ratelimit-reset": "250"})
    assert await harness.poller("glassnode").poll_once() == 37
    assert await harness.poller("twitter").poll_once() == 420
    assert await harness.poller("reddit").poll_once() == 250
    assert harness.poller("twitter").state == "rate limited"
    assert harness.polls("glassnode", "rate_limited") == 1
    assert await harness.rows("glassnode") == {}
    # the next poll goes through and stores everything that was due
    assert await harness.poller("glassnode").poll_once() == harness.settings.onchain_poll_seconds
    assert len(await harness.rows("glassnode")) == 1


async def test_refused_keys_and_malformed_answers_are_counted_and_survived(
    harness: Harness,
) -> None:
    harness.fake.force("lunarcrush", 401, '{"error": "Invalid or missing API key"}')
    assert await harness.poller("lunarcrush").poll_once() == harness.settings.collector_max_backoff
    assert harness.poller("lunarcrush").state == "unauthorized"
    assert "refused the credentials (401)" in harness.poller("lunarcrush").last_error
    harness.fake.force("moralis", 200, '{"result": [')
    harness.fake.force("glassnode", 200, '[{"t": 1735732800, "v": NaN}]')
    harness.fake.force("glassnode", 500, "upstream broke")
    for name in ("moralis", "glassnode"):
        wait = await harness.poller(name).poll_once()
        assert 2.5 <= wait <= 5 and harness.poller(name).state == "failing"
    assert harness.polls("moralis", "malformed") == 1 and harness.polls("glassnode", "malformed")
    assert await harness.poller("glassnode").poll_once() <= 10  # 500: backing off further
    assert harness.polls("glassnode", "error") == 1
    assert await harness.rows("glassnode") == {} and await harness.rows("moralis") == {}
    for name in ("lunarcrush", "moralis", "glassnode"):  # the provider is well again
        await harness.poller(name).poll_once()
        assert harness.poller(name).state == "ok"


async def test_a_revoked_reddit_token_is_renewed_once(harness: Harness) -> None:
    reddit = harness.poller("reddit")
    await reddit.poll_once()
    harness.fake.revoke_reddit_tokens()
    reddit.clock = lambda: float(NOW + 900)
    await reddit.poll_once()
    assert reddit.state == "ok" and harness.fake.tokens_issued == 2
    harness.fake.force("reddit_token", 401, '{"message": "Unauthorized", "error": 401}')
    harness.fake.revoke_reddit_tokens()
    await reddit.poll_once()
    assert reddit.state == "unauthorized"


async def test_health_and_metrics_say_which_collectors_are_on(
    service_env: dict[str, str], collectors_db: str
) -> None:
    fake = FakeProviders()
    fill(fake)
    await fake.start()
    env = {**service_env, "DATABASE_URL": collectors_db, "DEPENDENCY_TIMEOUT": "5",
           "MARKET_DATA_BACKFILL_DAYS": "0"}  # fmt: skip
    keyed = {k: v for k, v in fake.env().items() if not k.startswith(("REDDIT", "MORALIS"))}
    try:
        async with running(create_app(load_settings(
            MarketDataSettings, "market_data_service", environ={**env, **keyed}
        ))) as client:  # fmt: skip
            section = await wait_for_collectors(client, ("twitter", "lunarcrush", "glassnode"))
            assert section["collectors"]["reddit"] == "off (no key)"
            assert section["collectors"]["moralis"] == "off (no key)"
            assert section["collectors"]["twitter"] == "on"
            metrics = (await client.get("/metrics")).text
            assert gauge(metrics, "twitter") == 1 and gauge(metrics, "reddit") == 0
            assert 'collector="glassnode",outcome="ok"' in metrics
    finally:
        await fake.stop()


def gauge(metrics: str, collector: str) -> float:
    prefix = "mastertrade_market_data_collector_enabled{"
    for line in metrics.splitlines():
        if line.startswith(prefix) and f'collector="{collector}"' in line:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no gauge for {collector}")


async def wait_for_collectors(
    client: httpx.AsyncClient, names: tuple[str, ...], timeout: float = 60.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        section = (await client.get("/health")).json().get("market_data", {})
        external = section.get("external", {})
        if all(external.get(name, {}).get("state") == "ok" for name in names):
            return dict(section)
        assert time.monotonic() < deadline, section
        await asyncio.sleep(0.2)


class DownWriter(ObservationWriter):
    """A writer whose database is down."""

    def __init__(self) -> None:
        pass

    async def store(self, rows: Sequence[Observation]) -> int:
        raise ConnectionRefusedError("the database is down")


async def test_a_poll_that_cannot_be_stored_is_asked_again_in_full(harness: Harness) -> None:
    twitter = harness.poller("twitter")
    failing = Poller(twitter.provider, DownWriter(), harness.metrics, interval=900,
                     max_backoff=900, clock=lambda: float(NOW), jitter=lambda: 1.0)  # fmt: skip
    assert await failing.poll_once() == 5  # the first backoff
    assert failing.state == "failing" and "database is down" in failing.last_error
    assert harness.polls("twitter", "error") == 1
    await twitter.poll_once()  # the database is back: the same tweets, none lost
    assert "since_id" not in harness.fake.calls("twitter")[-1]
    assert (await harness.rows("twitter"))[("BTC", "posts")] == 2


async def test_a_poll_stored_while_the_broker_is_down_is_published_later_never_counted_twice(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rows are stored and the cursor moves; their publish fails: they are published
    before the next poll, which asks only for what is newer, so the posts count once (polled
    again from the old cursor, they were stored a second time under the new poll's time)."""
    twitter = harness.poller("twitter")
    writer, published = twitter.writer, []
    real_publish = writer.publish

    async def broker_down_once(rows: Sequence[Observation]) -> None:
        published.append(len(rows))
        if len(published) == 1:
            raise AMQPConnectionError("the broker is down")
        await real_publish(rows)

    monkeypatch.setattr(writer, "publish", broker_down_once)
    times = iter((float(NOW), float(NOW) + 900))  # the two polls, a poll interval apart
    monkeypatch.setattr(twitter, "clock", lambda: next(times))
    assert await twitter.poll_once() <= 5  # the first backoff, with jitter
    assert twitter.state == "failing" and "broker is down" in twitter.last_error
    await twitter.poll_once()
    posts = await harness.pool.fetchval(
        "SELECT sum(value) FROM external_metrics WHERE source = 'twitter' AND subject = 'BTC' "
        "AND metric = 'posts'")  # fmt: skip
    assert "since_id" in harness.fake.calls("twitter")[-1]  # the cursor had moved
    assert published[:2] == [published[0], published[0]] and published[0] > 0
    assert posts == 2 and twitter.state == "ok" and twitter.unpublished == []
