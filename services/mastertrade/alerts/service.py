"""The alert service's core: store an alert (deduplicated), then deliver it in the background.

`AlertService.raise_alert` is what the queue consumer, the test-alert route and the
Alertmanager route all call; it returns once the alert and its pending deliveries are
committed, never waiting for a channel. `keep_deliveries` runs for the service's life: it
renews the leases of this replica's deliveries (stopping any another replica took over) and
finishes the ones whose lease ran out (a crash, a restart) every RENEW_SECONDS, the first time
at start-up (adapters/dispatcher.py says how long a lease runs); and it raises each channel's
digest of what its rate limit held back, when one is due (adapters/digests.py): a
rate-limited alert is recorded and told of, never dropped in silence.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from mastertrade.alerts.adapters.channels.base import Channel
from mastertrade.alerts.adapters.channels.build import build_channels
from mastertrade.alerts.adapters.digests import store_digest, untold_channels
from mastertrade.alerts.adapters.dispatcher import RENEW_SECONDS, Dispatcher, RetryPolicy
from mastertrade.alerts.adapters.store import claim_pending, store_alert
from mastertrade.alerts.domain.delivery import RateLimiter
from mastertrade.alerts.settings import AlertSettings
from mastertrade.core.messages import AlertEvent
from mastertrade.core.runtime import Runtime

logger = logging.getLogger("mastertrade.alerts")


class AlertService:
    def __init__(self, settings: AlertSettings) -> None:
        self.settings = settings
        self.runtime: Runtime | None = None
        self.built = build_channels(settings)  # each HTTP channel with a client of its own
        self.channels: dict[str, Channel] = self.built.on
        self.channel_errors: dict[str, str] = self.built.errors
        policy = RetryPolicy(
            settings.alert_max_attempts, settings.alert_retry_base_seconds,
            attempt_seconds=settings.alert_send_timeout_seconds,
            retry_for=settings.alert_retry_for_seconds,
        )  # fmt: skip
        limiter = RateLimiter(settings.alert_rate_limit_per_minute)
        self.dispatcher = Dispatcher(self.channels, lambda: self.live.pool, limiter, policy)

    @property
    def live(self) -> Runtime:
        assert self.runtime is not None
        return self.runtime

    async def raise_alert(
        self, alert: AlertEvent, only: str | None = None, message_digest: str | None = None
    ) -> int | None:
        """Store and start delivering; the alert's id, None when deduplicated away (a repeat,
        or the queued message `message_digest` names delivered again)."""
        names = [only] if only else sorted(self.channels)
        dedup = self.settings.alert_dedup_seconds
        leased_at = time.monotonic()
        holder = self.dispatcher.holder
        alert_id = await store_alert(
            self.live.pool, alert, names, dedup, holder, message_digest=message_digest
        )
        if alert_id is not None:
            self.dispatcher.dispatch(alert_id, alert, names, leased_at)
        return alert_id

    async def resume(self) -> int:
        """Deliver what no replica is delivering any more; returns how many deliveries."""
        dispatcher, leased_at = self.dispatcher, time.monotonic()
        pending = await claim_pending(self.live.pool, dispatcher.holder)
        # a lease of this replica's own that ran out (renewals failed) is claimed back: its
        # delivery is still running here, and a second task would send it twice
        claimed_back = {(p.alert_id, p.channel) for p in pending} & set(dispatcher.active)
        dispatcher.extended(claimed_back, leased_at)
        resumed = [p for p in pending if (p.alert_id, p.channel) not in claimed_back]
        for p in resumed:
            dispatcher.dispatch(
                p.alert_id, p.alert, [p.channel], leased_at, p.reached, taken_over=True
            )
        return len(resumed)

    async def keep_deliveries(self) -> None:
        """Renew this replica's leases and resume orphaned deliveries, until cancelled."""
        while True:
            try:
                await self.dispatcher.renew()
                resumed = await self.resume()
                if resumed:
                    logger.info("resumed %d pending deliveries", resumed)
                await self.tell_held_back()
            except Exception as error:  # the database is down: the next round tries again
                logger.warning("renewing and resuming deliveries failed: %r", error)
            await asyncio.sleep(RENEW_SECONDS)

    async def tell_held_back(self) -> None:
        """Raise the digest of each channel whose rate limit held alerts back, when one is due
        (adapters/digests.py). A digest that cannot be stored leaves what it would tell for the
        next round; the other channels' go on."""
        pool, per_minute = self.live.pool, self.settings.alert_rate_limit_per_minute
        for channel in sorted(await untold_channels(pool) & self.channels.keys()):
            leased_at = time.monotonic()
            try:
                stored = await store_digest(pool, channel, per_minute, self.dispatcher.holder)
            except Exception as error:
                logger.warning("telling %s's readers what its rate limit held back failed "
                               "(%r): told in the next round", channel, error)  # fmt: skip
                continue
            if stored is not None:
                alert_id, digest = stored
                self.dispatcher.dispatch(alert_id, digest, [channel], leased_at)
                logger.warning("%s: told its readers in a digest (%d a minute at most)",
                               digest.title, per_minute)  # fmt: skip

    def channel_status(self) -> dict[str, dict[str, Any]]:
        """Each configured channel: on, or off and why (an unusable EMAIL_TLS_CA_FILE or
        EMAIL_FROM, a malformed URL)."""
        names = [name for name, configured in self.settings.channels().items() if configured]
        return {
            name: {"on": name in self.channels, "error": self.channel_errors.get(name)}
            for name in names
        }

    async def close(self) -> None:
        await self.dispatcher.stop()  # nothing left by now when `stop` ran at the drain
        await self.built.close()
