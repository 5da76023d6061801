"""Delivering an alert on every channel, each on its own: retries with backoff, rate limits.

Each (alert, channel) delivery runs as its own task, so a slow or failing channel never holds up
another, nor the consumer (which returns once the alert is stored); nor does it share their HTTP
connections (adapters/channels/build.py). A retryable failure (timeout, 5xx, 429) is retried
after an exponential delay (up to `RetryPolicy.max_delay`) or the server's retry_after, honoured
up to `RetryPolicy.max_server_delay` (15 minutes: a retry sent inside a server's ban is refused
again), up to ALERT_MAX_ATTEMPTS attempts and for at most ALERT_RETRY_FOR_SECONDS from the first
(30 minutes: a channel down for a deploy still gets the alert once it is back; a delivery taken
over by another replica starts a budget of its own there). A refusal for sending too often (a
429: `throttled`) spends no attempt, and closes the channel to every delivery until its
retry_after is over (`closed_until`; when it gives none, for the refused delivery's own
backoff), so a burst on a throttled channel goes out at the pace the service allows instead of
failing; the delivery refused, when asked for no wait or less than `base_delay`, backs off on
its own all the same. The
urgent deliveries waiting for a channel (critical alerts, the daily report: `Precedence`) go
first each time it opens again, and while one is on the wire the others wait for its answer
(for a minute at most from when the channel opened, URGENT_FIRST_LIMIT_SECONDS; per replica): a
tripped breaker is not queued behind a burst of fills. A
delivery taken over sends to those of its recipients left that are still the channel's. A
delivery over the channel's rate limit is recorded `rate_limited`, unless its alert is urgent
(critical, the daily report: never held back) or a digest (domain/delivery.py, `admit`), and
told in the channel's next digest (adapters/digests.py). One sent to only some of the channel's
recipients (an e-mail address refused) is `sent`, its last error naming those left out; those
refused for now (PartlySentError) are retried, they alone, and once some recipients got it the
delivery ends `sent` whatever the retries do. Before it waits to retry them it records whom it
has left (`note_reached`), so a crash, a stop or a lost lease hands it over for those alone: the
replica that takes it over (`dispatch` with `reached`) never sends it twice to those who got it.
Only when that record could not be written (the database down) does a stop record the delivery
`sent`, naming those left, rather than hand it over. Any other exception (a malformed answer, a
bug) ends the delivery as `failed` with the error: retrying would fail the same way, and a row
left `pending` would be sent again, and fail again, at every restart. An outcome the database
refuses as it is (not an outage) is recorded without its error text, never left `pending`.

The deliveries are leased to the dispatcher's `owner` (adapters/store.py): only it records their
outcome (retried through a database outage, so a sent alert is not left `pending` to be sent
again). A lease runs `RetryPolicy.lease_seconds` from its last renewal (every RENEW_SECONDS),
and an attempt is cut off at ALERT_SEND_TIMEOUT_SECONDS (`attempt_seconds`), however slowly the
channel answers: none starts unless, cut off, it would still end LEASE_MARGIN before the lease
can run out, so a replica cut off from the database stops trying before another may take over,
and has no request on the wire by the time another may. One whose lease another replica took
over is stopped (`stop_lost`). At shutdown `stop` lets an attempt on the wire and the recording
of its outcome finish (up to FINISH_SENDING_SECONDS: cancelled, a request the channel got would
be sent again by the replica that resumes it), wakes the deliveries waiting to retry (one that
reached some recipients records its outcome only if whom it has left could not be recorded; the
others stop), and releases the leases of those left, so another replica resumes them at once. A
delivery waiting out a long retry_after keeps its lease: it is renewed every RENEW_SECONDS while
it waits, as while it sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import asyncpg

from mastertrade.alerts.adapters.channels.base import (
    Channel,
    ChannelError,
    PartlySentError,
    narrowed,
)
from mastertrade.alerts.adapters.store import (
    LeaseHolder,
    Reached,
    mark_delivery,
    note_reached,
    release_leases,
    renew_leases,
)
from mastertrade.alerts.domain.delivery import (
    RateLimiter,
    admit,
    is_urgent,
    join_notes,
    retry_delay,
)
from mastertrade.core.background import stop_task
from mastertrade.core.messages import AlertEvent
from mastertrade.core.retry import retry_transient

logger = logging.getLogger("mastertrade.alerts")
RENEW_SECONDS = 10.0
"""How often a replica renews the leases of the deliveries it works on (`keep_deliveries`)."""
LEASE_MARGIN = 5.0
"""Seconds before its lease may run out by which a replica's last attempt under it has ended."""
URGENT_FIRST_SECONDS = 0.05
"""How often a delivery that is not urgent looks again at an open channel while urgent ones
wait for it or are on it."""
URGENT_FIRST_LIMIT_SECONDS = 60.0
"""How long a delivery that is not urgent lets urgent ones go first, at most, each time it waits
for its channel: critical alerts are never rate limited, and a steady stream of them would
otherwise hold every other alert back for as long as it lasts."""
FINISH_SENDING_SECONDS = 3.0
"""How long `stop` waits for attempts on the wire (inside the runtime's FINISH_SECONDS, with
time left to release the leases)."""
Key = tuple[int, str]
"""A delivery: (alert id, channel)."""
Outcome = tuple[str, int, str | None]
"""A delivery's (status, attempts, last error)."""
ERROR_LENGTH = 500
"""The longest last error recorded."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 30
    """Failed attempts before a delivery ends `failed` (a throttled one does not count)."""
    base_delay: float = 1.0
    max_delay: float = 60.0
    attempt_seconds: float = 10.0
    """One attempt's time limit (ALERT_SEND_TIMEOUT_SECONDS), whatever the channel's protocol."""
    max_server_delay: float = 900.0
    """The longest wait a server's retry_after is honoured for (Telegram's flood waits run
    minutes), rather than `max_delay`: a retry sent before the server's wait is over is refused
    again and spends an attempt."""
    retry_for: float = 1800.0
    """Seconds from a delivery's first attempt within which a retry may still start
    (ALERT_RETRY_FOR_SECONDS)."""

    @property
    def lease_seconds(self) -> float:
        """How long a lease runs from its last renewal: two renewals may fail, and an attempt
        started just before the third is due still ends LEASE_MARGIN before it runs out."""
        return 2 * RENEW_SECONDS + self.attempt_seconds + LEASE_MARGIN


class Precedence:
    """Whether a delivery is counted among the urgent ones a channel serves first: from the time
    it waits for the channel (or is sent on it) until its attempt is answered, and on through
    the wait for a channel that throttled it, until it ends; every other delivery on the
    channel waits while any is counted."""

    def __init__(self, counts: Counter[str], channel: str, urgent: bool) -> None:
        self.counts, self.channel, self.urgent = counts, channel, urgent
        self.counted = False

    def join(self) -> None:
        if self.urgent and not self.counted:
            self.counts[self.channel] += 1
            self.counted = True

    def leave(self) -> None:
        if self.counted:
            self.counts[self.channel] -= 1
            self.counted = False

    def defers(self) -> bool:
        """Does this delivery wait for urgent ones on its channel?"""
        return not self.urgent and self.counts[self.channel] > 0


def _plain(name: str, outcome: Outcome, refused: Exception) -> Outcome:
    """`outcome` with, instead of its error, a note that it could not be recorded (the
    database `refused` it); with none when it had none."""
    status, attempts, error = outcome
    if error is None:
        return outcome
    return status, attempts, f"{name}: the error could not be recorded ({type(refused).__name__})"


def _unconfigured(name: str, reached: Reached | None) -> Outcome:
    """The outcome of a delivery whose channel is not configured (any more)."""
    if reached is None:
        return "failed", 0, f"{name} is not configured"
    missed = f"{name} is not configured any more: not sent to {', '.join(reached.left)}"
    return "sent", reached.attempts, join_notes(reached.note, missed)


def _no_longer_addressed(name: str, reached: Reached) -> Outcome:
    """The outcome of a delivery taken over whose recipients left are no longer the channel's
    (its settings changed): sent, to those who got it."""
    dropped = f"{name}: not sent to {', '.join(reached.left)}, no longer recipients"
    return "sent", reached.attempts, join_notes(reached.note, dropped)


def new_owner() -> str:
    """A name for this process's leases that a person can trace: host (the Pod), pid, and a
    random part, so a restarted process with the same pid never holds its predecessor's."""
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


class Dispatcher:
    def __init__(
        self,
        channels: Mapping[str, Channel],
        pool: Callable[[], asyncpg.Pool],
        limiter: RateLimiter,
        policy: RetryPolicy,
        owner: str | None = None,
    ) -> None:
        self.channels, self.pool, self.limiter, self.policy = channels, pool, limiter, policy
        self.owner = owner or new_owner()
        self.tasks: set[asyncio.Task[None]] = set()
        self.active: dict[Key, asyncio.Task[None]] = {}  # being delivered, with its task
        # when each active delivery's lease was last extended, at the latest (monotonic)
        self.leased_at: dict[Key, float] = {}
        # an attempt on the wire, or its outcome being recorded, or a delivery that reached some
        # recipients waiting to retry the others: each records its outcome at shutdown
        self.sending: set[Key] = set()
        self.stopping = False
        self.stopped = asyncio.Event()  # set with `stopping`: wakes the deliveries waiting
        self.left: set[Key] = set()  # deliveries that ended unfinished once stopping began
        # channel -> when (monotonic) a channel that refused for sending too often opens again
        self.closed_until: dict[str, float] = {}
        self.urgent_waiting: Counter[str] = Counter()  # by channel (`Precedence`)

    def dispatch(
        self,
        alert_id: int,
        alert: AlertEvent,
        channels: list[str],
        leased_at: float | None = None,
        reached: Reached | None = None,
        *,
        taken_over: bool = False,
    ) -> None:
        """Start one delivery task per channel and return at once; `leased_at`: when the caller
        took the leases (before it stored or claimed them; now if not given); `taken_over`: the
        deliveries were claimed from another replica (admitted there), `reached`: where one
        stood, when it had reached some recipients."""
        for name in channels:
            delivery = self.deliver(
                alert_id, name, alert, leased_at, reached, taken_over=taken_over
            )
            task = asyncio.create_task(delivery)
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def deliver(
        self,
        alert_id: int,
        name: str,
        alert: AlertEvent,
        leased_at: float | None = None,
        reached: Reached | None = None,
        *,
        taken_over: bool = False,
    ) -> None:
        key = (alert_id, name)
        if (task := asyncio.current_task()) is not None:
            self.active[key] = task
        self.leased_at[key] = time.monotonic() if leased_at is None else leased_at
        try:
            await self._deliver(key, alert, reached, taken_over)
        finally:
            self.active.pop(key, None)
            self.leased_at.pop(key, None)
            self.sending.discard(key)

    @property
    def holder(self) -> LeaseHolder:
        """This replica's name on its leases, and how long they run."""
        return LeaseHolder(self.owner, self.policy.lease_seconds)

    def holds(self, key: Key) -> bool:
        """Will this replica's lease on the delivery surely run until an attempt started now
        has ended, at its time limit, and LEASE_MARGIN beyond?"""
        at = self.leased_at.get(key)
        if at is None:
            return False
        ends = time.monotonic() + self.policy.attempt_seconds + LEASE_MARGIN
        return ends < at + self.policy.lease_seconds

    async def renew(self) -> None:
        """Extend the leases of the deliveries in progress; stop those another replica took
        over. Raises when the database cannot be reached (the leases then age)."""
        keys, asked = set(self.active), time.monotonic()
        renewed, lost = await renew_leases(self.pool(), keys, self.holder)
        self.extended(renewed, asked)
        self.stop_lost(lost)

    def extended(self, keys: set[Key], asked: float) -> None:
        """The leases of `keys` were extended by a statement sent at `asked` (monotonic)."""
        for key in keys & self.leased_at.keys():
            self.leased_at[key] = max(self.leased_at[key], asked)

    def stop_lost(self, lost: set[Key]) -> None:
        """Stop the deliveries another replica took over: it delivers them now."""
        for key in lost:
            if (task := self.active.pop(key, None)) is not None:
                logger.warning("alert %d on %s was taken over by another replica after this one "
                               "could not renew its lease; stopping it here", *key)  # fmt: skip
                task.cancel()

    async def _deliver(
        self, key: Key, alert: AlertEvent, reached: Reached | None, taken_over: bool
    ) -> None:
        alert_id, name = key
        channel = self.channels.get(name)
        if channel is None:
            await self._mark(key, _unconfigured(name, reached))
            return
        if reached is not None:  # admitted when it was first sent; the others alone now
            rest = narrowed(channel, reached.left)
            if rest is None:
                await self._mark(key, _no_longer_addressed(name, reached))
                return
            channel = rest
        elif not admit(self.limiter, name, time.monotonic(), alert, taken_over):
            limited = ("rate_limited", 0, f"over {self.limiter.per_minute} per minute")
            await self._mark(key, limited)  # told in the channel's digest (adapters/digests.py)
            return
        place = Precedence(self.urgent_waiting, name, is_urgent(alert))
        try:
            outcome = await self._attempts(key, channel, alert, reached, place)
        finally:
            place.leave()
        if outcome is None and self.stopping:
            self.left.add(key)  # its lease is released for another replica to go on
            return
        if outcome is None:
            logger.warning("the lease on alert %d's %s delivery ran out (its renewals did not "
                           "reach the database); left to the replica that claims it", alert_id,
                           name)  # fmt: skip
            return
        await self._mark(key, outcome)

    async def _attempts(
        self,
        key: Key,
        channel: Channel,
        alert: AlertEvent,
        reached: Reached | None,
        place: Precedence,
    ) -> Outcome | None:
        """Send, retrying what may pass later; None when the lease lapsed (or the service is
        stopping) before an attempt. Once an attempt reached some recipients (PartlySentError),
        the retries go to the others only, and the delivery ends `sent` whatever they do; whom
        it has left is recorded before it waits, so that it can be handed over: when that
        record failed, its outcome is returned instead of None."""
        policy, alert_id = self.policy, key[0]
        attempt = 0 if reached is None else reached.attempts
        kept = None if reached is None else reached.note  # of recipients no retry will reach
        some = recorded = reached is not None  # some recipients got it; the database knows
        partial: Outcome | None = None  # when some got it: what to record if no more
        started, counted = time.monotonic(), 0  # counted: the failed attempts not throttled
        unpaced = 0  # throttled refusals that asked for no wait, or less than base_delay
        while True:
            place.join()
            await self._open(place)
            if self.stopping or not self.holds(key):
                return None if recorded else partial
            attempt += 1
            try:
                self.sending.add(key)
                # sent; to only some of the channel's recipients when it says what went wrong
                note = await self._attempt(channel, alert)
                return "sent", attempt, join_notes(kept, note)
            except ChannelError as error:
                logger.warning(
                    "%s attempt %d of alert %d failed: %s", channel.name, attempt, alert_id, error
                )
                ended = self._ended(channel, attempt, error, kept, some)
                counted += not error.throttled
                delay = self._delay(counted, error)  # a 429's own wait, if it gave one
                if error.throttled:
                    # asked for no wait, or less than base_delay (Retry-After: 0, a date past),
                    # or not told how long, this delivery backs off on its own all the same, or
                    # it would be refused again at once for ALERT_RETRY_FOR_SECONDS; the
                    # channel is closed to every delivery for as long as the server asked, or,
                    # when it did not say, for that backoff
                    asked = delay
                    if error.retry_after is None or delay < policy.base_delay:
                        unpaced += 1
                        delay = retry_delay(unpaced, policy.base_delay, policy.max_delay, None,
                                            0.0)  # fmt: skip
                    self._close(channel.name, delay if error.retry_after is None else asked)
                late = time.monotonic() + delay - started > policy.retry_for
                if not error.retryable or counted >= policy.max_attempts or late:
                    return ended
                if not error.throttled:
                    place.leave()  # it waits out its own backoff, not the channel
                if isinstance(error, PartlySentError):  # retry those refused for now, they alone
                    channel, kept, some = error.rest, join_notes(kept, error.refused), True
                    recorded = await self._note_reached(key, Reached(error.left, attempt, kept))
                partial = ended if some else None
                if partial is None or recorded:  # nothing to record at shutdown
                    self.sending.discard(key)
                await self._pause(delay)
            except Exception as error:
                logger.exception("%s delivery of alert %d failed", channel.name, alert_id)
                return self._ended(channel, attempt, error, kept, some)

    def _close(self, name: str, seconds: float) -> None:
        """`name` refused for sending too often: no delivery sends on it for `seconds`."""
        until = time.monotonic() + seconds
        self.closed_until[name] = max(self.closed_until.get(name, until), until)

    async def _open(self, place: Precedence) -> None:
        """Wait while the delivery's channel is closed (throttled) or it defers to urgent ones
        (`place`, for URGENT_FIRST_LIMIT_SECONDS at most), or until the service stops."""
        deferring_until: float | None = None  # counted from when the channel is open
        while not self.stopping:
            now = time.monotonic()
            wait = self.closed_until.get(place.channel, 0.0) - now
            if wait > 0:  # a throttle's wait takes nothing from the time urgent ones get
                deferring_until = None
                await self._pause(wait)
                continue
            if not place.defers():
                return
            if deferring_until is None:
                deferring_until = now + URGENT_FIRST_LIMIT_SECONDS
            elif now >= deferring_until:
                return
            await self._pause(URGENT_FIRST_SECONDS)

    async def _note_reached(self, key: Key, reached: Reached) -> bool:
        """Record whom the delivery has left to reach; False when it could not be (the
        database down, or the lease lost): at shutdown it is then recorded, not handed over."""
        alert_id, name = key
        try:
            if await note_reached(self.pool(), alert_id, name, reached, self.owner):
                return True
        except Exception as error:
            logger.warning("recording whom the %s delivery of alert %d has left failed: %r; "
                           "it will not be handed over", name, alert_id, error)  # fmt: skip
        return False

    @staticmethod
    def _ended(
        channel: Channel, attempt: int, error: Exception, kept: str | None, reached: bool
    ) -> Outcome:
        """The outcome of a delivery whose last attempt, `attempt`, failed with `error`:
        `sent` when this attempt (PartlySentError) or an earlier one (`reached`) got it to some
        recipients, naming those it did not; else `failed`."""
        said = str(error) if isinstance(error, ChannelError) else f"{channel.name}: {error!r}"
        if isinstance(error, PartlySentError):
            return "sent", attempt, join_notes(kept, said)
        if reached:
            rest = f"{channel.name}: sent to some recipients, not to the others: {said}"
            return "sent", attempt, join_notes(kept, rest)
        return "failed", attempt, said

    def _delay(self, failed: int, error: ChannelError) -> float:
        """The wait after `failed` attempts that were not throttled (the backoff's exponent:
        a 429 spends no attempt), or the server's own."""
        policy = self.policy
        return retry_delay(failed, policy.base_delay, policy.max_delay, error.retry_after,
                           policy.max_server_delay)  # fmt: skip

    async def _pause(self, seconds: float) -> None:
        """Wait `seconds`, or until the service stops."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.stopped.wait()

    async def _attempt(self, channel: Channel, alert: AlertEvent) -> str | None:
        """One send, cut off at the policy's time limit (a channel's own timeouts are per
        read or write, so a server answering slowly could hold it for longer); what the
        channel said of the recipients it did not reach."""
        limit = self.policy.attempt_seconds
        try:
            async with asyncio.timeout(limit):
                return await channel.send(alert)
        except TimeoutError:
            raise ChannelError(
                f"{channel.name}: no answer within {limit:g} s (ALERT_SEND_TIMEOUT_SECONDS)",
                retryable=True,
            ) from None

    async def _mark(self, key: Key, outcome: Outcome) -> None:
        """Record the outcome, waiting out a database outage: the delivery stays active, so
        its lease is renewed once the database is back (left pending, it would be sent again).
        An outcome the database refuses as it is (its error text, most likely: retrying would
        fail the same way) is recorded without that text, with a note saying so."""
        alert_id, name = key
        what = f"recording the {name} delivery of alert {alert_id}"
        self.sending.add(key)
        try:
            try:
                marked = await self._record(key, outcome, what)
            except Exception as error:  # not an outage: retrying would fail the same way
                logger.error("%s failed: %r; recording it without its error", what, error)
                marked = await self._record(key, _plain(name, outcome, error), what)
        except Exception as error:
            logger.error("%s failed again: %r; left to the replica that claims it", what, error)
            return
        finally:
            self.sending.discard(key)
        if not marked:
            logger.warning("the %s delivery of alert %d ended %s here, but another replica "
                           "holds it now; its outcome is the one recorded", name, alert_id,
                           outcome[0])  # fmt: skip

    async def _record(self, key: Key, outcome: Outcome, what: str) -> bool:
        """`mark_delivery`, through a database outage."""
        (alert_id, name), (status, attempts, error) = key, outcome
        recorded = status, attempts, error[:ERROR_LENGTH] if error else None
        return await retry_transient(
            lambda: mark_delivery(self.pool(), alert_id, name, recorded, self.owner), what
        )

    async def stop(self) -> None:
        """Let the attempts on the wire finish and record their outcome (and the deliveries that
        reached some recipients without whom they have left recorded, woken from their wait to
        retry, record theirs), cancel the rest,
        and release the leases of what is left (at shutdown, while the database is still open),
        so another replica resumes it at once, not when its lease runs out."""
        self.stopping = True
        self.stopped.set()  # a delivery waiting to retry wakes, and starts no attempt
        # every delivery under way now: one waiting to retry may end during the wait below
        # without recording anything (it starts no attempt once stopping), its lease still held
        keys = set(self.active)
        on_the_wire = [self.active[key] for key in self.sending if key in self.active]
        if on_the_wire:
            await asyncio.wait(on_the_wire, timeout=FINISH_SENDING_SECONDS)
        await asyncio.gather(*(stop_task(task) for task in list(self.tasks)))
        keys |= self.left  # and any claimed (by the resume loop) while this waited
        if not keys:
            return
        try:
            await release_leases(self.pool(), keys, self.owner)
        except Exception as error:  # the database is gone: the leases run out instead
            logger.warning("releasing %d alert deliveries in progress failed: %r", len(keys), error)
            return
        logger.info("released %d alert deliveries in progress to the other replicas", len(keys))
