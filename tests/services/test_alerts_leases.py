"""Alert deliveries leased to the replica delivering them, and repeats of an alert, on real
PostgreSQL: a delivery whose replica died is finished by exactly one other replica; a replica
that lost its lease stops and records nothing over the new holder; one whose renewals do not
reach the database stops trying before its lease can run out; an outcome is recorded through a
database blip; at shutdown the leases are handed over at once and a request on the wire is
finished and recorded; an e-mail that reached some recipients is handed over, after a crash or
a stop, for the others alone; repeats that keep coming stay suppressed, and a repeat that came
while its alert was still being tried does not silence the next one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from mastertrade.alerts.adapters import dispatcher as dispatcher_module
from mastertrade.alerts.adapters.channels.base import ChannelError
from mastertrade.alerts.adapters.channels.email import EmailChannel, build_tls_context
from mastertrade.alerts.adapters.dispatcher import Dispatcher, RetryPolicy
from mastertrade.alerts.adapters.store import (
    LeaseHolder,
    claim_pending,
    mark_delivery,
    renew_leases,
    store_alert,
)
from mastertrade.alerts.domain.delivery import RateLimiter
from mastertrade.core.messages import AlertEvent
from tests.services.fake_channels import smtp_server

pytestmark = pytest.mark.infra

ALERT = AlertEvent(kind="custom", severity="critical", title="drawdown 16%")
LEASE = RetryPolicy().lease_seconds


def held(owner: str) -> LeaseHolder:
    """A lease of `owner` as long as a replica with the default policy takes."""
    return LeaseHolder(owner, LEASE)


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
    policy = RetryPolicy(max_attempts=1000, base_delay=0.05, max_delay=0.05)
    return Dispatcher({"hook": channel}, lambda: pool, RateLimiter(60), policy, owner)


@pytest.fixture
async def pool(trading_env: dict[str, str]) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(trading_env["DATABASE_URL"], min_size=1, max_size=4)
    yield pool
    await pool.close()


async def expire(pool: asyncpg.Pool, alert_id: int) -> None:
    """The lease runs out, as it would with no renewal for its whole length."""
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


async def stored(pool: asyncpg.Pool, owner: str, alert: AlertEvent = ALERT) -> int:
    alert_id = await store_alert(pool, alert, ["hook"], 300, held(owner))
    assert alert_id is not None
    return alert_id


async def test_a_delivery_whose_replica_died_is_finished_by_one_other_replica(
    pool: asyncpg.Pool,
) -> None:
    alert_id = await stored(pool, "a")  # a dies before delivering
    assert await claim_pending(pool, held("b")) == []  # a's lease still runs: nobody takes it over
    await expire(pool, alert_id)
    claims = await asyncio.gather(claim_pending(pool, held("b")), claim_pending(pool, held("c")))
    assert sorted(len(claimed) for claimed in claims) == [0, 1]
    owner = "b" if claims[0] else "c"
    channel = Recorded()
    await replica(pool, channel, owner).deliver(alert_id, "hook", ALERT)
    assert channel.sends == 1
    assert await delivery(pool, alert_id) == ("sent", 1, owner, "sent")


async def test_deliveries_left_pending_are_claimed_a_bounded_number_at_once_expired_first(
    pool: asyncpg.Pool,
) -> None:
    """After an outage that left many pending, a replica takes `limit` of them a round, those
    whose lease ran out first, and leaves the rest to the next round or to the other
    replicas."""
    ids = [await stored(pool, "a") for _ in range(5)]
    for minutes, alert_id in zip([1, 5, 2, 4, 3], ids, strict=True):  # ran out minutes ago
        expired = "now() - make_interval(mins => $1)"
        await pool.execute(f"UPDATE alert_deliveries SET lease_until = {expired} "
                           "WHERE alert_id = $2", minutes, alert_id)  # fmt: skip
    ids = [ids[1], ids[3], ids[4], ids[2], ids[0]]  # the longest expired first
    rounds = [await claim_pending(pool, held("b"), limit=2) for _ in range(4)]
    taken = [sorted(claimed.alert_id for claimed in round_) for round_ in rounds]
    assert taken == [sorted(ids[:2]), sorted(ids[2:4]), ids[4:], []]


async def test_a_resumed_delivery_carries_the_time_its_event_happened(
    pool: asyncpg.Pool,
) -> None:
    """A replica that died before delivering: the replica finishing it sends the alert as it
    came, its `occurred_at` the event's (a signed webhook's body is then the same at every
    attempt), not the time the delivery was resumed."""
    happened = datetime.now(UTC) - timedelta(minutes=7)
    alert_id = await stored(pool, "a", ALERT.model_copy(update={"occurred_at": happened}))
    await expire(pool, alert_id)
    [(claimed_id, _, resumed, _)] = await claim_pending(pool, held("b"))
    assert (claimed_id, resumed.occurred_at) == (alert_id, happened)
    assert resumed.to_json() == ALERT.model_copy(update={"occurred_at": happened}).to_json()


async def test_a_replica_that_lost_its_lease_stops_and_records_nothing_over_the_new_holder(
    pool: asyncpg.Pool,
) -> None:
    slow_channel, channel = Recorded(down=True), Recorded()
    slow = replica(pool, slow_channel, "slow")
    alert_id = await stored(pool, slow.owner)
    slow.dispatch(alert_id, ALERT, ["hook"])  # retrying against a channel that is down
    await asyncio.sleep(0.3)
    await expire(pool, alert_id)  # its renewals did not reach the database in time
    [(_, name, alert, _)] = await claim_pending(pool, held("new"))
    lease = await pool.fetchval("SELECT lease_until FROM alert_deliveries WHERE alert_id = $1",
                                alert_id)  # fmt: skip

    await slow.renew()  # the first renewal that gets through
    await asyncio.gather(*slow.tasks, return_exceptions=True)
    sends_when_stopped = slow_channel.sends

    assert not slow.active and not slow.tasks and sends_when_stopped > 1
    assert await pool.fetchval("SELECT lease_until FROM alert_deliveries WHERE alert_id = $1",
                               alert_id) == lease  # fmt: skip
    await replica(pool, channel, "new").deliver(alert_id, name, alert)
    late = ("failed", sends_when_stopped, "hook: HTTP 503: down")  # an outcome it had in hand
    assert not await mark_delivery(pool, alert_id, "hook", late, slow.owner)
    await asyncio.sleep(0.2)
    assert slow_channel.sends == sends_when_stopped
    assert await delivery(pool, alert_id) == ("sent", 1, "new", "sent")


async def test_a_replica_renews_its_own_leases_and_loses_none(pool: asyncpg.Pool) -> None:
    alert_id = await stored(pool, "a")
    await expire(pool, alert_id)
    renewed, lost = await renew_leases(pool, {(alert_id, "hook")}, held("a"))
    assert (renewed, lost) == ({(alert_id, "hook")}, set())
    # the renewal put the lease back in the future
    assert await claim_pending(pool, held("b")) == []
    assert await renew_leases(pool, {(alert_id, "hook")}, held("b")) == (
        set(),
        {(alert_id, "hook")},
    )


@pytest.mark.parametrize("renewing", [True, False])
async def test_a_replica_whose_renewals_fail_stops_trying_before_its_lease_can_run_out(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch, renewing: bool
) -> None:
    """With renewals due every 0.5 s (two may fail: a second), a replica that renews keeps
    trying; one whose renewals do not reach the database stops within that second, records
    nothing (another replica may have it now) and sends nothing once the channel is back."""
    monkeypatch.setattr(dispatcher_module, "RENEW_SECONDS", 0.5)
    channel = Recorded(down=True)
    cut_off = replica(pool, channel, "a")
    alert_id = await stored(pool, cut_off.owner)
    cut_off.dispatch(alert_id, ALERT, ["hook"])
    for _ in range(8):  # 2 s, every 0.25 s
        await asyncio.sleep(0.25)
        if renewing:
            await cut_off.renew()
    still_trying = bool(cut_off.tasks)
    channel.down = False
    sends = channel.sends
    await asyncio.sleep(0.3)
    status = await delivery(pool, alert_id)
    await cut_off.stop()
    if renewing:
        assert still_trying and channel.sends == sends + 1
        assert status == ("sent", sends + 1, "a", "sent")
    else:
        assert not still_trying and channel.sends == sends
        assert 1 < sends <= 1.0 / 0.05 + 1  # attempts every 0.05 s for about a second
        assert status == ("pending", 0, "a", "pending")


class Hanging:
    """A channel whose server never answers: each attempt is cut off at its time limit. It
    notes, as each attempt starts, how long the database says the lease has left."""

    name = "hook"

    def __init__(self, pool: asyncpg.Pool, alert_id: int) -> None:
        self.pool, self.alert_id = pool, alert_id
        self.lease_left: list[float] = []  # seconds, as each attempt started
        self.took: list[float] = []  # seconds each attempt lasted

    async def send(self, alert: AlertEvent) -> None:
        started = time.monotonic()
        left = await self.pool.fetchval(
            "SELECT extract(epoch FROM lease_until - clock_timestamp())::float8 "
            "FROM alert_deliveries WHERE alert_id = $1", self.alert_id,
        )  # fmt: skip
        self.lease_left.append(left)
        try:
            await asyncio.sleep(60)
        finally:
            self.took.append(time.monotonic() - started)


async def test_no_attempt_outlives_the_lease_of_a_replica_whose_renewals_fail(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Renewals due every 0.5 s, none reaching the database, attempts cut off at 0.6 s (longer
    than the margin), to a server that never answers: every attempt started with the lease left
    to cover it whole, was cut off at its limit, and the replica stopped trying: a replica that
    takes the delivery over once the lease has run out never has a request of this one's beside
    its own."""
    monkeypatch.setattr(dispatcher_module, "RENEW_SECONDS", 0.5)
    monkeypatch.setattr(dispatcher_module, "LEASE_MARGIN", 0.1)
    policy = RetryPolicy(max_attempts=1000, base_delay=0.01, max_delay=0.01, attempt_seconds=0.6)
    alert_id = await stored(pool, "a")
    await pool.execute("UPDATE alert_deliveries SET lease_until = now() + make_interval(secs => $2)"
                       " WHERE alert_id = $1", alert_id, policy.lease_seconds)  # fmt: skip
    channel = Hanging(pool, alert_id)
    cut_off = Dispatcher({"hook": channel}, lambda: pool, RateLimiter(60), policy, "a")
    await asyncio.wait_for(cut_off.deliver(alert_id, "hook", ALERT), timeout=10)
    assert len(channel.lease_left) >= 2  # attempts while the lease surely ran, then none
    assert all(left > policy.attempt_seconds for left in channel.lease_left)
    assert all(took < policy.attempt_seconds + 0.3 for took in channel.took)
    assert await delivery(pool, alert_id) == ("pending", 0, "a", "pending")


async def test_an_outcome_is_recorded_through_a_database_blip(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delivery that was sent, whose record fails once, is recorded when the database
    answers: left pending it would be claimed after its lease and sent again."""
    failures = [asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed")]

    async def blip(*args: Any) -> bool:
        if failures:
            raise failures.pop()
        return await mark_delivery(*args)

    monkeypatch.setattr(dispatcher_module, "mark_delivery", blip)
    channel = Recorded()
    sender = replica(pool, channel, "a")
    alert_id = await stored(pool, sender.owner)
    await sender.deliver(alert_id, "hook", ALERT)
    assert not failures and channel.sends == 1
    assert await delivery(pool, alert_id) == ("sent", 1, "a", "sent")


async def test_at_shutdown_deliveries_in_progress_are_handed_over_at_once(
    pool: asyncpg.Pool,
) -> None:
    stopping = replica(pool, Recorded(down=True), "stopping")
    alert_id = await stored(pool, stopping.owner)
    stopping.dispatch(alert_id, ALERT, ["hook"])
    await asyncio.sleep(0.2)
    await stopping.stop()
    claimed = await claim_pending(pool, held("next"))  # no need to wait for the lease to run out
    assert [(c.alert_id, c.channel) for c in claimed] == [(alert_id, "hook")]
    assert not stopping.tasks
    assert (await delivery(pool, alert_id))[:3] == ("pending", 0, "next")


class Slow(Recorded):
    """A channel whose every request takes `seconds` to answer (and is then delivered)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds, self.answered = seconds, 0

    async def send(self, alert: AlertEvent) -> None:
        self.sends += 1
        await asyncio.sleep(self.seconds)
        self.answered += 1


async def sending(*channels: Recorded) -> None:
    """Until each channel got its first request (10 s at most)."""
    deadline = time.monotonic() + 10
    while any(channel.sends == 0 for channel in channels):
        assert time.monotonic() < deadline, "the deliveries did not start"
        await asyncio.sleep(0.01)


async def on_the_wire(pool: asyncpg.Pool, seconds: float) -> tuple[Dispatcher, Slow, int]:
    """A replica, "stopping", with one alert's request on the wire for `seconds`."""
    channel = Slow(seconds)
    stopping = replica(pool, channel, "stopping")
    alert_id = await stored(pool, stopping.owner)
    stopping.dispatch(alert_id, ALERT, ["hook"])
    await sending(channel)
    return stopping, channel, alert_id


async def test_at_shutdown_a_request_on_the_wire_finishes_and_is_recorded_not_sent_again(
    pool: asyncpg.Pool,
) -> None:
    """Cut off mid-request and handed over, the alert the channel got would be sent again."""
    stopping, channel, alert_id = await on_the_wire(pool, 0.5)
    await stopping.stop()
    assert (channel.sends, channel.answered) == (1, 1)
    assert await delivery(pool, alert_id) == ("sent", 1, "stopping", "sent")
    assert await claim_pending(pool, held("next")) == []  # nothing left to send again


async def test_at_shutdown_a_delivery_waiting_to_retry_is_handed_over_too(
    pool: asyncpg.Pool,
) -> None:
    """While one request is on the wire, another channel's delivery waits to retry; it wakes
    during the wait for the first, starts nothing more, and its lease must be released too."""
    slow, failing = Slow(1.0), Recorded(down=True)
    policy = RetryPolicy(max_attempts=1000, base_delay=0.5, max_delay=0.5)
    stopping = Dispatcher({"slow": slow, "hook": failing}, lambda: pool, RateLimiter(60), policy,
                          "stopping")  # fmt: skip
    alert_id = await store_alert(pool, ALERT, ["slow", "hook"], 300, held(stopping.owner))
    assert alert_id is not None
    stopping.dispatch(alert_id, ALERT, ["slow", "hook"])
    await sending(slow, failing)
    await stopping.stop()
    claimed = await claim_pending(pool, held("next"))  # at once, not when its lease runs out
    assert [(c.alert_id, c.channel) for c in claimed] == [(alert_id, "hook")]
    assert slow.answered == 1


async def test_at_shutdown_a_delivery_claimed_during_the_wait_is_handed_over_too(
    pool: asyncpg.Pool,
) -> None:
    """The resume loop may claim a delivery while stop waits for a request on the wire: it
    starts nothing (stopping), and its lease is released with the rest."""
    stopping, slow, _ = await on_the_wire(pool, 0.5)
    stop = asyncio.create_task(stopping.stop())
    await asyncio.sleep(0.1)  # stop is waiting for the request on the wire
    late = await stored(pool, stopping.owner)
    stopping.dispatch(late, ALERT, ["hook"])
    await stop
    claimed = await claim_pending(pool, held("next"))  # at once, not when its lease runs out
    assert [(c.alert_id, c.channel) for c in claimed] == [(late, "hook")]
    assert (slow.sends, slow.answered) == (1, 1)


def greylisting(port: int, ca: Path, recipients: list[str] | None = None) -> EmailChannel:
    """An e-mail channel to ops@ and busy@ (or `recipients`), on the test SMTP server."""
    to = recipients or ["ops@x.io", "busy@x.io"]
    return EmailChannel(("127.0.0.1", port), ("bot@x.io", "pw"), to, build_tls_context(str(ca)), 5)


async def reached_ops(
    pool: asyncpg.Pool, mailbox: Any, port: int, ca: Path
) -> tuple[Dispatcher, int]:
    """A replica whose e-mail ops@ accepted and busy@ greylisted (450): it waits 30 s to retry
    busy@ alone."""
    policy = RetryPolicy(max_attempts=5, base_delay=30, max_delay=30)
    first = Dispatcher({"email": greylisting(port, ca)}, lambda: pool, RateLimiter(60), policy,
                       "first")  # fmt: skip
    alert_id = await store_alert(pool, ALERT, ["email"], 300, held(first.owner))
    assert alert_id is not None
    first.dispatch(alert_id, ALERT, ["email"])
    deadline = time.monotonic() + 10
    while not await pool.fetchval("SELECT recipients_left FROM alert_deliveries "
                                  "WHERE alert_id = $1", alert_id):  # fmt: skip
        assert time.monotonic() < deadline, "the partial send was not recorded"
        await asyncio.sleep(0.05)
    return first, alert_id


async def take_over(
    pool: asyncpg.Pool, port: int, ca: Path, recipients: tuple[str, ...] = ("ops@x.io", "busy@x.io")
) -> int:
    """Another replica (its channel sending to `recipients`) claims what is pending and
    delivers it; the alert id."""
    policy = RetryPolicy(max_attempts=5, base_delay=0.05, max_delay=0.05)
    [(alert_id, name, alert, reached)] = await claim_pending(pool, held("next"))
    assert reached is not None and reached.left == ["busy@x.io"]
    channel = greylisting(port, ca, list(recipients))
    following = Dispatcher({"email": channel}, lambda: pool, RateLimiter(60), policy, "next")
    await following.deliver(alert_id, name, alert, reached=reached)
    return alert_id


async def test_an_email_that_reached_some_recipients_is_taken_over_for_the_others_alone(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """kill -9 while the replica waits to retry busy@: the replica that takes the delivery over
    sends to busy@ alone, and ops@ gets the alert once."""
    with smtp_server(tmp_path) as (mailbox, port, ca):
        mailbox.refuse("450 4.7.1 <busy@x.io>: greylisted", to="busy@x.io")
        first, alert_id = await reached_ops(pool, mailbox, port, ca)
        for task in list(first.tasks):  # the process is gone: nothing more is written
            task.cancel()
        await asyncio.gather(*first.tasks, return_exceptions=True)
        await expire(pool, alert_id)
        await take_over(pool, port, ca)
    assert [recipients for recipients, _ in mailbox.messages] == [["ops@x.io"], ["busy@x.io"]]
    row = await pool.fetchrow("SELECT d.status, d.attempts, d.last_error, a.status AS alert "
                              "FROM alert_deliveries d JOIN alerts a ON a.id = d.alert_id "
                              "WHERE d.alert_id = $1", alert_id)  # fmt: skip
    assert row is not None and dict(row) == {
        "status": "sent", "attempts": 2, "last_error": None, "alert": "sent"
    }  # fmt: skip


async def test_a_recipient_removed_before_the_take_over_is_not_written_to(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """busy@ was left to retry when the replica died, and was removed from ALERT_EMAIL_TO
    before the next replica started: it is not written to (nor shown the new list), and the
    delivery is `sent`, saying so."""
    with smtp_server(tmp_path) as (mailbox, port, ca):
        mailbox.refuse("450 4.7.1 <busy@x.io>: greylisted", to="busy@x.io")
        first, alert_id = await reached_ops(pool, mailbox, port, ca)
        for task in list(first.tasks):
            task.cancel()
        await asyncio.gather(*first.tasks, return_exceptions=True)
        await expire(pool, alert_id)
        await take_over(pool, port, ca, recipients=("ops@x.io", "new@x.io"))
    assert [recipients for recipients, _ in mailbox.messages] == [["ops@x.io"]]
    row = await pool.fetchrow("SELECT status, last_error FROM alert_deliveries "
                              "WHERE alert_id = $1", alert_id)  # fmt: skip
    assert row is not None and dict(row) == {
        "status": "sent", "last_error": "email: not sent to busy@x.io, no longer recipients"
    }  # fmt: skip


async def test_at_shutdown_a_delivery_that_reached_some_recipients_is_handed_over_for_the_rest(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """The replica stops while it waits 30 s to retry busy@: it hands the delivery over at once,
    and the replica that takes it sends to busy@ alone (refused again, for good this time: the
    delivery is `sent`, naming busy@)."""
    with smtp_server(tmp_path) as (mailbox, port, ca):
        mailbox.refuse("450 4.7.1 <busy@x.io>: greylisted", to="busy@x.io")
        first, alert_id = await reached_ops(pool, mailbox, port, ca)
        started = time.monotonic()
        await first.stop()
        took = time.monotonic() - started
        assert took < 2  # woken from its wait, not cut off after it
        mailbox.refuse("550 5.1.1 <busy@x.io>: no such user", to="busy@x.io")
        await take_over(pool, port, ca)
    assert [recipients for recipients, _ in mailbox.messages] == [["ops@x.io"]]
    row = await pool.fetchrow("SELECT status, attempts, last_error FROM alert_deliveries "
                              "WHERE alert_id = $1", alert_id)  # fmt: skip
    assert row is not None and (row["status"], row["attempts"]) == ("sent", 2)
    assert row["last_error"] == (
        "email: sent to some recipients, not to the others: "
        "email: every recipient refused (busy@x.io: 550 5.1.1 <busy@x.io>: no such user)"
    )


async def test_repeats_that_keep_coming_stay_suppressed_until_a_gap_longer_than_the_window(
    pool: asyncpg.Pool,
) -> None:
    """Prometheus re-posts a firing alert every minute: one delivery, not one every window."""
    firing = AlertEvent(kind="prometheus", title="[FIRING] MarketDataStale",
                        dedup_key="am:abc:firing:2026-12-06T02:00:00Z")  # fmt: skip

    async def age(seconds: int) -> None:
        await pool.execute("UPDATE alerts SET created_at = created_at - make_interval(secs => $1)"
                           " WHERE dedup_key = $2", seconds, firing.dedup_key)  # fmt: skip

    first = await stored(pool, "a", firing)
    assert await mark_delivery(pool, first, "hook", ("sent", 1, None), "a")
    repeats = []
    for _ in range(10):  # ten minutes of repeats, twice the 300 s window
        await age(60)
        repeats.append(await store_alert(pool, firing, ["hook"], 300, held("a")))
    await age(301)  # then quiet for longer than the window
    after_a_gap = await store_alert(pool, firing, ["hook"], 300, held("a"))
    assert repeats == [None] * 10
    assert after_a_gap is not None


async def test_a_repeat_that_came_while_its_alert_was_sent_does_not_silence_the_next_one(
    pool: asyncpg.Pool,
) -> None:
    """Prometheus re-posts a firing alert while its first copy is still being retried: that
    repeat is suppressed; the first then fails everywhere, and the next repeat must be sent."""
    firing = AlertEvent(kind="prometheus", title="[FIRING] PositionDrift",
                        dedup_key="am:def:firing:2026-12-06T02:00:00Z")  # fmt: skip
    first = await stored(pool, "a", firing)
    while_pending = await store_alert(pool, firing, ["hook"], 300, held("a"))
    assert await mark_delivery(pool, first, "hook", ("failed", 5, "hook: HTTP 503"), "a")
    next_repeat = await store_alert(pool, firing, ["hook"], 300, held("a"))
    assert while_pending is None  # the first was still being delivered
    assert next_repeat is not None  # the chance to be heard that the failure left
    again = await store_alert(pool, firing, ["hook"], 300, held("a"))
    assert again is None  # the next repeat is heard: repeats of it are suppressed again
