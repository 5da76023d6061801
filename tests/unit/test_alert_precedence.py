"""Urgent alerts first on a channel: who defers to whom, and for how long (the order on a
throttled Discord webhook: tests/services/test_alerts_throttle.py)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import asyncpg
import pytest

from mastertrade.alerts.adapters import dispatcher as dispatching
from mastertrade.alerts.adapters.channels.base import ChannelError
from mastertrade.alerts.adapters.dispatcher import Dispatcher, Precedence, RetryPolicy
from mastertrade.alerts.domain.delivery import RateLimiter
from mastertrade.core.messages import AlertEvent


def test_others_defer_while_an_urgent_delivery_is_counted_on_their_channel() -> None:
    counts: Counter[str] = Counter()
    breaker = Precedence(counts, "discord", urgent=True)
    fill, mail = Precedence(counts, "discord", urgent=False), Precedence(counts, "email", False)
    breaker.join()
    breaker.join()  # waiting again after a 429: still one
    assert counts["discord"] == 1
    assert fill.defers() and not mail.defers() and not breaker.defers()
    fill.join()  # a delivery that is not urgent is never counted
    breaker.leave()
    breaker.leave()  # its attempt ended, then the delivery: left once
    assert counts["discord"] == 0 and not fill.defers()


def no_database() -> asyncpg.Pool:
    raise AssertionError("waiting for a channel needs no database")


async def test_a_delivery_defers_to_urgent_ones_for_a_bounded_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A critical alert that never ends (a stream of them, a server that hangs) holds a warning
    on the same channel back for URGENT_FIRST_LIMIT_SECONDS, not for ever."""
    monkeypatch.setattr(dispatching, "URGENT_FIRST_LIMIT_SECONDS", 0.3)
    dispatcher = Dispatcher({}, no_database, RateLimiter(60), RetryPolicy())
    counts = dispatcher.urgent_waiting
    Precedence(counts, "discord", urgent=True).join()
    started = time.monotonic()
    await asyncio.wait_for(dispatcher._open(Precedence(counts, "discord", urgent=False)), 10)
    assert time.monotonic() - started >= 0.3  # it did defer first


async def test_urgent_ones_go_first_when_a_channel_throttled_for_longer_than_the_limit_opens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The time others defer runs from when the channel opens: a throttle longer than
    URGENT_FIRST_LIMIT_SECONDS (Telegram's flood waits run minutes) must not use it up, or every
    delivery held by the throttle races the critical alert the moment the channel opens."""
    monkeypatch.setattr(dispatching, "URGENT_FIRST_LIMIT_SECONDS", 0.3)
    dispatcher = Dispatcher({}, no_database, RateLimiter(60), RetryPolicy())
    dispatcher._close("telegram", 0.5)
    Precedence(dispatcher.urgent_waiting, "telegram", urgent=True).join()
    started = time.monotonic()
    fill = Precedence(dispatcher.urgent_waiting, "telegram", urgent=False)
    await asyncio.wait_for(dispatcher._open(fill), 10)
    assert time.monotonic() - started >= 0.5 + 0.3  # closed, then the limit from the opening


class Refusing:
    """A channel answering each send with the next of `answers` (an error raised, or sent)."""

    name = "discord"

    def __init__(self, *answers: ChannelError | None) -> None:
        self.answers = list(answers)

    async def send(self, alert: AlertEvent) -> str | None:
        answer = self.answers.pop(0)
        if answer is not None:
            raise answer
        return None


def throttled(retry_after: float | None) -> ChannelError:
    return ChannelError("429", retryable=True, retry_after=retry_after, throttled=True)


async def attempts(channel: Refusing) -> tuple[tuple[str, int, str | None] | None, list[float]]:
    """Deliver on `channel`: the outcome, and each wait of the delivery's own (its backoff, or
    its server's wait), as asked, with how long the channel was closed to others at the time."""
    dispatcher = Dispatcher({}, no_database, RateLimiter(60), RetryPolicy())
    key, waits = (1, channel.name), []
    dispatcher.leased_at[key] = time.monotonic()

    async def pause(seconds: float) -> None:  # no wait: the channel opens again at once
        closed = dispatcher.closed_until.pop(channel.name, None)
        if seconds >= 0.01:  # not a closed channel's own (those are below; see _open)
            waits.append(round(seconds, 2))
        if closed is not None:
            waits.append(-round(closed - time.monotonic(), 1))  # closed for, negated

    dispatcher._pause = pause  # type: ignore[method-assign]
    alert = AlertEvent(kind="order_filled", severity="info", source="t", title="t", message="m")
    place = Precedence(dispatcher.urgent_waiting, channel.name, urgent=False)
    return await dispatcher._attempts(key, channel, alert, None, place), waits


async def test_a_short_retry_after_closes_the_channel_for_that_long_only() -> None:
    """Discord asks for waits under a second: the channel is closed to the other deliveries for
    that long, while the one refused backs off on its own (base_delay, 1 s)."""
    outcome, waits = await attempts(Refusing(throttled(0.2), None))
    assert outcome == ("sent", 2, None)
    assert waits == [1.0, -0.2]  # its own backoff; the channel closed 0.2 s (not 1 s)


async def test_the_backoff_after_a_failure_is_counted_in_failures_not_in_throttled_tries() -> None:
    """429s spend no attempt, and so they do not lengthen the backoff of a later failure."""
    unavailable = ChannelError("503", retryable=True)
    outcome, waits = await attempts(
        Refusing(throttled(None), throttled(None), throttled(None), unavailable, None)
    )
    assert outcome == ("sent", 5, None)
    own = [wait for wait in waits if wait > 0]
    assert own == [1.0, 2.0, 4.0, 1.0]  # the 503's wait is the first failure's: 1 s, not 8
    # told no wait, the channel is closed to the others for the refused one's backoff
    assert [-wait for wait in waits if wait < 0] == [1.0, 2.0, 4.0]
