"""Urgent alerts first on a channel: who defers to whom, and for how long (the order on a
throttled Discord webhook: tests/services/test_alerts_throttle.py)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import asyncpg
import pytest

from mastertrade.alerts.adapters import dispatcher as dispatching
from mastertrade.alerts.adapters.dispatcher import Dispatcher, Precedence, RetryPolicy
from mastertrade.alerts.domain.delivery import RateLimiter


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
