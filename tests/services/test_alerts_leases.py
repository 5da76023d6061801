"""Alert deliveries leased to the replica delivering them, on real PostgreSQL: a delivery whose
replica died is finished by exactly one other replica; a replica that lost its lease (it could
not renew it in time) stops delivering, renews nothing of the new holder's and records nothing
over its outcome."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from mastertrade.alerts.adapters.channels.base import ChannelError
from mastertrade.alerts.adapters.dispatcher import Dispatcher, RetryPolicy
from mastertrade.alerts.adapters.store import (
    claim_pending,
    mark_delivery,
    renew_leases,
    store_alert,
)
from mastertrade.alerts.domain.delivery import RateLimiter
from mastertrade.core.messages import AlertEvent

pytestmark = pytest.mark.infra

ALERT = AlertEvent(kind="custom", severity="critical", title="drawdown 16%")


class Recorded:
    """A channel that records each send; fails (retryably) while `down`."""

    name = "hook"

    def __init__(self, down: bool = False) -> None:
        self.down, self.sends = down, 0

    async def send(self, alert: AlertEvent) -> None:
        self.sends += 1
        if self.down:
            raise ChannelError("hook: HTTP 503: down", retryable=True)


def replica(pool: asyncpg.Pool, channel: Recorded, owner: str) -> Dispatcher:
    return Dispatcher({"hook": channel}, lambda: pool, RateLimiter(60), RetryPolicy(1000, 0.05,
                      0.05), owner)  # fmt: skip


@pytest.fixture
async def pool(trading_env: dict[str, str]) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(trading_env["DATABASE_URL"], min_size=1, max_size=4)
    yield pool
    await pool.close()


async def expire(pool: asyncpg.Pool, alert_id: int) -> None:
    """The lease runs out, as LEASE_SECONDS without a renewal would have it."""
    await pool.execute("UPDATE alert_deliveries SET lease_until = now() - interval '1 second' "
                       "WHERE alert_id = $1", alert_id)  # fmt: skip


async def delivery(pool: asyncpg.Pool, alert_id: int) -> tuple[str, int, str, str]:
    row = await pool.fetchrow(
        "SELECT d.status, d.attempts, d.lease_owner, a.status AS alert_status "
        "FROM alert_deliveries d JOIN alerts a ON a.id = d.alert_id WHERE a.id = $1",
        alert_id,
    )
    assert row is not None
    return row["status"], row["attempts"], row["lease_owner"], row["alert_status"]


async def test_a_delivery_whose_replica_died_is_finished_by_one_other_replica(
    pool: asyncpg.Pool,
) -> None:
    alert_id = await store_alert(pool, ALERT, ["hook"], 300, "a")  # a dies before delivering
    assert alert_id is not None
    assert await claim_pending(pool, "b") == []  # a's lease still runs: nobody takes it over
    await expire(pool, alert_id)
    claims = await asyncio.gather(claim_pending(pool, "b"), claim_pending(pool, "c"))
    assert sorted(len(claimed) for claimed in claims) == [0, 1]
    owner = "b" if claims[0] else "c"
    channel = Recorded()
    await replica(pool, channel, owner).deliver(alert_id, "hook", ALERT)
    assert channel.sends == 1
    assert await delivery(pool, alert_id) == ("sent", 1, owner, "sent")


async def test_a_replica_that_lost_its_lease_stops_and_records_nothing_over_the_new_holder(
    pool: asyncpg.Pool,
) -> None:
    slow_channel, channel = Recorded(down=True), Recorded()
    slow = replica(pool, slow_channel, "slow")
    alert_id = await store_alert(pool, ALERT, ["hook"], 300, slow.owner)
    assert alert_id is not None
    slow.dispatch(alert_id, ALERT, ["hook"])  # retrying against a channel that is down
    await asyncio.sleep(0.3)
    await expire(pool, alert_id)  # its renewals did not reach the database in time
    [(_, name, alert)] = await claim_pending(pool, "new")
    lease = await pool.fetchval("SELECT lease_until FROM alert_deliveries WHERE alert_id = $1",
                                alert_id)  # fmt: skip

    lost = await renew_leases(pool, set(slow.active), slow.owner)
    slow.stop_lost(lost)
    await asyncio.gather(*slow.tasks, return_exceptions=True)
    sends_when_stopped = slow_channel.sends

    assert lost == {(alert_id, "hook")} and not slow.active and not slow.tasks
    assert sends_when_stopped > 1
    assert await pool.fetchval("SELECT lease_until FROM alert_deliveries WHERE alert_id = $1",
                               alert_id) == lease  # fmt: skip
    await replica(pool, channel, "new").deliver(alert_id, name, alert)
    late = ("failed", sends_when_stopped, "hook: HTTP 503: down")  # an outcome it had in hand
    assert not await mark_delivery(pool, alert_id, "hook", late, slow.owner)
    await asyncio.sleep(0.2)
    assert slow_channel.sends == sends_when_stopped
    assert await delivery(pool, alert_id) == ("sent", 1, "new", "sent")


async def test_a_replica_renews_its_own_leases_and_loses_none(pool: asyncpg.Pool) -> None:
    alert_id = await store_alert(pool, ALERT, ["hook"], 300, "a")
    assert alert_id is not None
    await expire(pool, alert_id)
    assert await renew_leases(pool, {(alert_id, "hook")}, "a") == set()
    assert await claim_pending(pool, "b") == []  # the renewal put the lease back in the future
