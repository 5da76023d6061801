"""Each channel's digest of what its rate limit held back, on real PostgreSQL: every held-back
delivery is told once, whichever replica held it back and whether it still runs; the first
digest at once, then at most one a window per channel; two replicas raising digests at once
tell each delivery once between them; a digest that cannot be stored leaves it untold."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from mastertrade.alerts.adapters.digests import RECORD_DIGEST, store_digest, untold_channels
from mastertrade.alerts.adapters.store import LeaseHolder, mark_delivery, store_alert
from mastertrade.alerts.domain.delivery import HELD_BACK_KIND
from mastertrade.core.messages import AlertEvent

pytestmark = pytest.mark.infra

PER_MINUTE = 20


def replica(owner: str) -> LeaseHolder:
    return LeaseHolder(owner, 60.0)


@pytest.fixture
async def pool(trading_env: dict[str, str]) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(trading_env["DATABASE_URL"], min_size=1, max_size=4)
    yield pool
    await pool.close()


async def held_back(pool: asyncpg.Pool, channel: str, kind: str, count: int = 1) -> None:
    """`count` alerts of `kind` that a replica's rate limit held back on `channel`, recorded as
    its dispatcher records them (the replica may be gone since)."""
    holder = replica("replica-gone")
    for number in range(count):
        alert = AlertEvent(kind=kind, title=f"{kind} {number}")
        alert_id = await store_alert(pool, alert, [channel], 300.0, holder)
        assert alert_id is not None
        limited = ("rate_limited", 0, f"over {PER_MINUTE} per minute")
        assert await mark_delivery(pool, alert_id, channel, limited, holder.owner)


async def window_passes(pool: asyncpg.Pool, channel: str) -> None:
    """The channel's last digest is now more than a window old."""
    await pool.execute("UPDATE alert_digests SET told_at = told_at - interval '61 seconds' "
                       "WHERE channel = $1", channel)  # fmt: skip


async def test_what_a_gone_replica_held_back_is_told_once_then_once_a_window(
    pool: asyncpg.Pool,
) -> None:
    await held_back(pool, "slack", "order_filled", 2)
    await held_back(pool, "slack", "order_rejected")
    await held_back(pool, "sms", "order_filled")
    assert await untold_channels(pool) == {"slack", "sms"}

    stored = await store_digest(pool, "slack", PER_MINUTE, replica("replica-b"))
    assert stored is not None
    alert_id, digest = stored
    assert digest.kind == HELD_BACK_KIND
    assert digest.title == "3 alerts not sent on slack: over its rate limit"
    assert "order_filled x2, order_rejected x1" in digest.message
    row = await pool.fetchrow("SELECT a.kind, d.channel, d.status, d.lease_owner FROM alerts a "
                              "JOIN alert_deliveries d ON d.alert_id = a.id WHERE a.id = $1",
                              alert_id)  # fmt: skip
    assert row is not None
    assert dict(row) == {"kind": HELD_BACK_KIND, "channel": "slack", "status": "pending",
                         "lease_owner": "replica-b"}  # fmt: skip
    assert await untold_channels(pool) == {"sms"}  # slack's are told; sms's wait for their own

    await held_back(pool, "slack", "order_filled")
    assert await store_digest(pool, "slack", PER_MINUTE, replica("replica-b")) is None
    assert await untold_channels(pool) == {"slack", "sms"}  # not told yet: the window
    await window_passes(pool, "slack")
    later = await store_digest(pool, "slack", PER_MINUTE, replica("replica-c"))
    assert later is not None and later[1].title == "1 alert not sent on slack: over its rate limit"
    await window_passes(pool, "slack")
    assert await store_digest(pool, "slack", PER_MINUTE, replica("replica-c")) is None  # all told


async def test_two_replicas_raising_a_digest_at_once_tell_each_delivery_once(
    pool: asyncpg.Pool, trading_env: dict[str, str]
) -> None:
    await held_back(pool, "email", "order_filled", 12)
    other = await asyncpg.create_pool(trading_env["DATABASE_URL"], min_size=1, max_size=2)
    try:
        results = await asyncio.gather(
            store_digest(pool, "email", PER_MINUTE, replica("replica-a")),
            store_digest(other, "email", PER_MINUTE, replica("replica-b")),
        )
    finally:
        await other.close()
    [stored] = [result for result in results if result is not None]
    assert stored[1].title == "12 alerts not sent on email: over its rate limit"
    digests = await pool.fetchval("SELECT count(*) FROM alerts WHERE kind = $1", HELD_BACK_KIND)
    untold = await pool.fetchval("SELECT count(*) FROM alert_deliveries WHERE told_at IS NULL "
                                 "AND status = 'rate_limited'")  # fmt: skip
    assert (digests, untold) == (1, 0)


async def test_a_replica_waits_for_one_raising_the_channels_digest_and_keeps_its_window(
    pool: asyncpg.Pool, trading_env: dict[str, str]
) -> None:
    """Replica A is raising slack's digest (it holds the channel's lock) when another delivery
    is held back; replica B, due at the same moment, waits for A and then finds the window
    taken: the new one waits for the next digest, a minute on, not a second one now."""
    await held_back(pool, "slack", "order_filled")
    replica_a = await asyncpg.connect(trading_env["DATABASE_URL"])
    try:
        async with replica_a.transaction():
            await replica_a.execute("SELECT pg_advisory_xact_lock(hashtext('alerts_held_back:"
                                    "slack'))")  # fmt: skip
            replica_b = asyncio.create_task(
                store_digest(pool, "slack", PER_MINUTE, replica("replica-b"))
            )
            await asyncio.sleep(0.5)
            assert not replica_b.done(), "replica B did not wait for A's digest"
            await replica_a.execute("UPDATE alert_deliveries SET told_at = now()")
            await replica_a.execute(RECORD_DIGEST, "slack")
            await held_back(pool, "slack", "order_rejected")  # held back meanwhile
        assert await replica_b is None
    finally:
        await replica_a.close()
    assert await untold_channels(pool) == {"slack"}  # told in the next digest


async def test_a_digest_that_cannot_be_stored_leaves_what_it_tells_untold(
    pool: asyncpg.Pool,
) -> None:
    """The digest's alert is refused (here by a rule the test adds to the table, as a full
    disk or a lost connection would refuse it): the deliveries it counted stay untold, for
    the next round to tell."""
    await held_back(pool, "discord", "order_filled", 3)
    await pool.execute(
        f"ALTER TABLE alerts ADD CONSTRAINT no_digest CHECK (kind <> '{HELD_BACK_KIND}')"
    )
    with pytest.raises(asyncpg.CheckViolationError):
        await store_digest(pool, "discord", PER_MINUTE, replica("replica-a"))
    assert await untold_channels(pool) == {"discord"}
    await pool.execute("ALTER TABLE alerts DROP CONSTRAINT no_digest")
    stored = await store_digest(pool, "discord", PER_MINUTE, replica("replica-a"))
    assert stored is not None and stored[1].title.startswith("3 alerts not sent on discord")
