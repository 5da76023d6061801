"""The alert service's core: store an alert (deduplicated), then deliver it in the background.

`AlertService.raise_alert` is what the queue consumer, the test-alert route and the
Alertmanager route all call; it returns once the alert and its pending deliveries are
committed, never waiting for a channel.
"""

from __future__ import annotations

import httpx

from mastertrade.alerts.adapters.channels.base import Channel
from mastertrade.alerts.adapters.channels.build import build_channels
from mastertrade.alerts.adapters.dispatcher import Dispatcher, RetryPolicy
from mastertrade.alerts.adapters.store import fetch_pending, store_alert
from mastertrade.alerts.domain.delivery import RateLimiter
from mastertrade.alerts.settings import AlertSettings
from mastertrade.core.messages import AlertEvent
from mastertrade.core.runtime import Runtime


class AlertService:
    def __init__(self, settings: AlertSettings) -> None:
        self.settings = settings
        self.runtime: Runtime | None = None
        self.http = httpx.AsyncClient(timeout=settings.alert_send_timeout_seconds)
        self.channels: dict[str, Channel] = build_channels(settings, self.http)
        policy = RetryPolicy(settings.alert_max_attempts, settings.alert_retry_base_seconds)
        limiter = RateLimiter(settings.alert_rate_limit_per_minute)
        self.dispatcher = Dispatcher(self.channels, lambda: self.live.pool, limiter, policy)

    @property
    def live(self) -> Runtime:
        assert self.runtime is not None
        return self.runtime

    async def raise_alert(self, alert: AlertEvent, only: str | None = None) -> int | None:
        """Store and start delivering; the alert's id, None when deduplicated away."""
        names = [only] if only else sorted(self.channels)
        dedup = self.settings.alert_dedup_seconds
        alert_id = await store_alert(self.live.pool, alert, names, dedup)
        if alert_id is not None:
            self.dispatcher.dispatch(alert_id, alert, names)
        return alert_id

    async def resume(self) -> int:
        """Deliver what a previous run left pending; returns how many deliveries."""
        pending = await fetch_pending(self.live.pool)
        for alert_id, channel, alert in pending:
            self.dispatcher.dispatch(alert_id, alert, [channel])
        return len(pending)

    async def close(self) -> None:
        await self.dispatcher.stop()
        await self.http.aclose()
