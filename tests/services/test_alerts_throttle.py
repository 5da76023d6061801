"""A channel that refuses for sending too often, or is down for a while, still gets every alert:
a burst of critical alerts on a Discord webhook that allows 5 requests in 2 s (its documented
limit, answered 429 with `retry_after` by the local server) is sent in full at that pace, its
429s spending no attempt; a channel down for longer than a few backoffs gets the alert once it
is back, within ALERT_RETRY_FOR_SECONDS, and not after it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from mastertrade.alerts.adapters.channels.base import ChannelError
from mastertrade.alerts.adapters.channels.chat import DiscordChannel
from mastertrade.alerts.adapters.dispatcher import Dispatcher, RetryPolicy
from mastertrade.alerts.adapters.store import store_alert
from mastertrade.alerts.domain.delivery import RateLimiter
from mastertrade.core.messages import AlertEvent
from tests.services.fake_channels import FakeChannels, build_app
from tests.services.trading import serve_app

pytestmark = pytest.mark.infra


@pytest.fixture
async def pool(trading_env: dict[str, str]) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(trading_env["DATABASE_URL"], min_size=1, max_size=8)
    yield pool
    await pool.close()


async def dispatch_all(dispatcher: Dispatcher, pool: asyncpg.Pool, alerts: list[AlertEvent],
                       channel: str) -> list[int]:  # fmt: skip
    """Store and dispatch each alert, as the consumer does; their ids."""
    ids = []
    for alert in alerts:
        alert_id = await store_alert(pool, alert, [channel], 300, dispatcher.holder)
        assert alert_id is not None
        dispatcher.dispatch(alert_id, alert, [channel])
        ids.append(alert_id)
    return ids


async def deliver_all(dispatcher: Dispatcher, pool: asyncpg.Pool, alerts: list[AlertEvent],
                      channel: str) -> list[int]:  # fmt: skip
    """Dispatch the alerts, then wait until every delivery has ended; their ids."""
    ids = await dispatch_all(dispatcher, pool, alerts, channel)
    await asyncio.gather(*dispatcher.tasks)
    return ids


async def outcomes(pool: asyncpg.Pool, ids: list[int]) -> dict[str, int]:
    rows = await pool.fetch("SELECT status, count(*) AS n FROM alert_deliveries "
                            "WHERE alert_id = ANY($1) GROUP BY status", ids)  # fmt: skip
    return {row["status"]: row["n"] for row in rows}


async def test_a_burst_of_critical_alerts_on_a_throttled_webhook_is_sent_in_full(
    pool: asyncpg.Pool,
) -> None:
    """40 critical alerts at once (a Prometheus batch during an outage) with the service's
    default retry policy: all 40 reach Discord, at no more than its 5 requests in 2 s, though
    most are refused with a 429 first (before, 15 of them ended `failed` on their 429s)."""
    fake = FakeChannels(windows={"discord": (5, 2.0)})
    alerts = [AlertEvent(kind="prometheus", severity="critical", title=f"ServiceDown {i}")
              for i in range(40)]  # fmt: skip
    async with serve_app(build_app(fake)) as url, httpx.AsyncClient() as http:
        channel = DiscordChannel(http, f"{url}/api/v10/webhooks/1/token")
        dispatcher = Dispatcher({"discord": channel}, lambda: pool, RateLimiter(1000),
                                RetryPolicy(), "burst")  # fmt: skip
        ids = await deliver_all(dispatcher, pool, alerts, "discord")
    assert await outcomes(pool, ids) == {"sent": 40}
    contents = [body["content"] for body in fake.received["discord"]]
    for i in range(40):  # each once
        assert sum(f"ServiceDown {i}\n" in f"{text}\n" for text in contents) == 1, i
    refused = len(fake.arrivals["discord"]) - 40
    assert refused > 0, "the webhook's limit was never reached: the test proves nothing"


async def test_critical_alerts_go_first_when_a_throttled_webhook_opens_again(
    pool: asyncpg.Pool,
) -> None:
    """A Discord webhook that allows one request in 1.5 s: of 6 warnings (a burst of fills) one
    is sent, the others wait for the webhook to open again; the 2 critical alerts (a tripped
    breaker) that come while they wait go first, one each time it opens, before every warning
    still waiting (before, they took their turn among the warnings). Every alert is sent once."""
    fake = FakeChannels(windows={"discord": (1, 1.5)})
    warnings = [AlertEvent(kind="order_filled", severity="warning", title=f"Filled {i}")
                for i in range(6)]  # fmt: skip
    critical = [AlertEvent(kind="circuit_breaker", severity="critical", title=f"Breaker {i}")
                for i in range(2)]  # fmt: skip
    async with serve_app(build_app(fake)) as url, httpx.AsyncClient() as http:
        channel = DiscordChannel(http, f"{url}/api/v10/webhooks/1/token")
        policy = RetryPolicy(base_delay=0.05, max_delay=0.4)  # the webhook's retry_after kept
        dispatcher = Dispatcher({"discord": channel}, lambda: pool, RateLimiter(1000), policy,
                                "urgent-first")  # fmt: skip
        ids = await dispatch_all(dispatcher, pool, warnings, "discord")
        while len(fake.arrivals.get("discord", [])) < 2:  # one sent, one refused: it is closed
            await asyncio.sleep(0.01)
        ids += await deliver_all(dispatcher, pool, critical, "discord")
        await asyncio.gather(*dispatcher.tasks)
    assert await outcomes(pool, ids) == {"sent": 8}
    sent = ["Breaker" in body["content"] for body in fake.received["discord"]]
    assert sent == [False, True, True, False, False, False, False, False], (
        f"critical alerts waited behind warnings: {sent}"
    )


class Outage:
    """A channel that fails every request with `error` for `seconds` from its first one."""

    name = "hook"

    def __init__(self, seconds: float, error: ChannelError) -> None:
        self.seconds, self.error, self.first, self.sends = seconds, error, 0.0, 0

    async def send(self, alert: AlertEvent) -> None:
        now = time.monotonic()
        self.first = self.first or now
        self.sends += 1
        if now - self.first < self.seconds:
            raise self.error


DOWN = ChannelError("hook: HTTP 503: down for a deploy", retryable=True)
# a 429 asking for no wait (Retry-After: 0)
NO_WAIT = ChannelError("hook: HTTP 429: slow down", True, 0.0, throttled=True)


@pytest.mark.parametrize(("down", "outcome"), [(1.5, "sent"), (6.0, "failed")])
async def test_a_channel_down_for_a_while_gets_the_alert_within_the_retry_time(
    pool: asyncpg.Pool, down: float, outcome: str
) -> None:
    """Retried for ALERT_RETRY_FOR_SECONDS (3 s here, at delays doubling from 0.05 s up to
    0.4 s), whatever the attempts: a channel back after 1.5 s gets the alert, one down for 6 s
    does not, and its delivery ends `failed` within the retry time."""
    policy = RetryPolicy(max_attempts=1000, base_delay=0.05, max_delay=0.4, retry_for=3.0)
    channel = Outage(down, DOWN)
    dispatcher = Dispatcher({"hook": channel}, lambda: pool, RateLimiter(60), policy, "outage")
    alert = AlertEvent(kind="custom", severity="critical", title="breaker tripped")
    started = time.monotonic()
    ids = await deliver_all(dispatcher, pool, [alert], "hook")
    assert await outcomes(pool, ids) == {outcome: 1}
    assert time.monotonic() - started < 3.0 + policy.attempt_seconds
    assert channel.sends > 5  # more than the old default's five attempts


class Throttling:
    """A channel that answers 429 (retry_after 0.05 s) `times` times, then takes the alert."""

    name = "hook"

    def __init__(self, times: int) -> None:
        self.times, self.sends = times, 0

    async def send(self, alert: AlertEvent) -> None:
        self.sends += 1
        if self.sends <= self.times:
            raise ChannelError("hook: HTTP 429: slow down", True, 0.05, throttled=True)


async def test_a_refusal_for_sending_too_often_spends_no_attempt(pool: asyncpg.Pool) -> None:
    """Two attempts allowed, six 429s first: the alert is sent on the seventh request."""
    policy = RetryPolicy(max_attempts=2, base_delay=0.05, max_delay=0.05)
    channel = Throttling(6)
    dispatcher = Dispatcher({"hook": channel}, lambda: pool, RateLimiter(60), policy, "slow")
    alert = AlertEvent(kind="custom", severity="warning", title="order rejected")
    ids = await deliver_all(dispatcher, pool, [alert], "hook")
    row = await pool.fetchrow("SELECT status, attempts FROM alert_deliveries WHERE alert_id = $1",
                              ids[0])  # fmt: skip
    assert row is not None and (row["status"], row["attempts"], channel.sends) == ("sent", 7, 7)


async def test_a_429_that_asks_for_no_wait_is_backed_off_all_the_same(pool: asyncpg.Pool) -> None:
    """Refused for 2 s with Retry-After: 0: the delivery asks again at doubling delays from
    ALERT_RETRY_BASE_SECONDS (0.05 s here) up to the cap, a handful of requests in those 2 s,
    not one after the other as fast as the server answers."""
    policy = RetryPolicy(max_attempts=2, base_delay=0.05, max_delay=0.4)
    channel = Outage(2.0, NO_WAIT)
    dispatcher = Dispatcher({"hook": channel}, lambda: pool, RateLimiter(60), policy, "eager")
    alert = AlertEvent(kind="custom", severity="critical", title="breaker tripped")
    ids = await deliver_all(dispatcher, pool, [alert], "hook")
    assert await outcomes(pool, ids) == {"sent": 1}
    assert channel.sends <= 12, channel.sends  # 0.05 + 0.1 + 0.2 + 0.4 x 4 > 2 s: 8 or 9
