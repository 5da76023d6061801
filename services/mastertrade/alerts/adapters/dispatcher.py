"""Delivering an alert on every channel, each on its own: retries with backoff, rate limits.

Each (alert, channel) delivery runs as its own task, so a slow or failing channel never holds
up another, nor the consumer (which returns once the alert is stored). A retryable failure
(timeout, 5xx, 429) is retried after the server's retry_after or an exponential delay, up to
ALERT_MAX_ATTEMPTS; a delivery over the channel's rate limit is recorded `rate_limited`, unless
its alert is critical (never held back). Any other exception (a malformed answer, a bug) ends
the delivery as `failed` with the error: retrying would fail the same way, and a row left
`pending` would be sent again, and fail again, at every restart.

The deliveries are leased to the dispatcher's `owner` (adapters/store.py): only it records their
outcome, and one whose lease another replica took over is stopped (`stop_lost`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import asyncpg

from mastertrade.alerts.adapters.channels.base import Channel, ChannelError
from mastertrade.alerts.adapters.store import mark_delivery
from mastertrade.alerts.domain.delivery import RateLimiter, retry_delay
from mastertrade.core.background import stop_task
from mastertrade.core.messages import AlertEvent

logger = logging.getLogger("mastertrade.alerts")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 60.0


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
        # (alert id, channel) being delivered, whose lease to renew, with its task
        self.active: dict[tuple[int, str], asyncio.Task[None]] = {}

    def dispatch(self, alert_id: int, alert: AlertEvent, channels: list[str]) -> None:
        """Start one delivery task per channel and return at once."""
        for name in channels:
            task = asyncio.create_task(self.deliver(alert_id, name, alert))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def deliver(self, alert_id: int, name: str, alert: AlertEvent) -> None:
        key = (alert_id, name)
        if (task := asyncio.current_task()) is not None:
            self.active[key] = task
        try:
            await self._deliver(alert_id, name, alert)
        finally:
            self.active.pop(key, None)

    def stop_lost(self, lost: set[tuple[int, str]]) -> None:
        """Stop the deliveries another replica took over: it delivers them now."""
        for key in lost:
            if (task := self.active.pop(key, None)) is not None:
                logger.warning("alert %d on %s was taken over by another replica after this one "
                               "could not renew its lease; stopping it here", *key)  # fmt: skip
                task.cancel()

    async def _deliver(self, alert_id: int, name: str, alert: AlertEvent) -> None:
        channel = self.channels.get(name)
        if channel is None:
            await self._mark(alert_id, name, ("failed", 0, f"{name} is not configured"))
            return
        urgent = alert.severity == "critical"
        if not self.limiter.allow(name, time.monotonic(), urgent):
            reason = f"over {self.limiter.per_minute} per minute"
            await self._mark(alert_id, name, ("rate_limited", 0, reason))
            return
        await self._mark(alert_id, name, await self._attempts(alert_id, channel, alert))

    async def _attempts(
        self, alert_id: int, channel: Channel, alert: AlertEvent
    ) -> tuple[str, int, str | None]:
        policy = self.policy
        for attempt in range(1, policy.max_attempts + 1):
            try:
                await channel.send(alert)
                return "sent", attempt, None
            except ChannelError as error:
                logger.warning(
                    "%s attempt %d of alert %d failed: %s", channel.name, attempt, alert_id, error
                )
                if not error.retryable or attempt == policy.max_attempts:
                    return "failed", attempt, str(error)[:500]
                delay = retry_delay(attempt, policy.base_delay, policy.max_delay, error.retry_after)
                await asyncio.sleep(delay)
            except Exception as error:
                logger.exception("%s delivery of alert %d failed", channel.name, alert_id)
                return "failed", attempt, f"{channel.name}: {error!r}"[:500]
        return "failed", policy.max_attempts, "no attempt left"

    async def _mark(self, alert_id: int, name: str, outcome: tuple[str, int, str | None]) -> None:
        try:
            marked = await mark_delivery(self.pool(), alert_id, name, outcome, self.owner)
        except Exception as error:  # history is best effort; the delivery itself happened
            logger.error("recording the %s delivery of alert %d failed: %s", name, alert_id, error)
            return
        if not marked:
            logger.warning("the %s delivery of alert %d ended %s here, but another replica "
                           "holds it now; its outcome is the one recorded", name, alert_id,
                           outcome[0])  # fmt: skip

    async def stop(self) -> None:
        await asyncio.gather(*(stop_task(task) for task in list(self.tasks)))
