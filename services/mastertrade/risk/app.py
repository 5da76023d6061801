"""create_app for risk_manager: signals in, decisions stored, approved orders out."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI

from mastertrade.catalog import find_service
from mastertrade.core.app import build_service_app
from mastertrade.core.background import add_background
from mastertrade.core.batching import MAX_BATCH
from mastertrade.core.db import GENERIC_PLANS
from mastertrade.core.messages import Signal
from mastertrade.core.outbox import run_outbox_loop
from mastertrade.core.runtime import Runtime
from mastertrade.risk.adapters.batcher import DecisionBatcher, watch_breaker_until
from mastertrade.risk.api import admin_router, router
from mastertrade.risk.portfolio_metrics import PortfolioMetrics
from mastertrade.risk.settings import RiskSettings

Settings = RiskSettings
QUEUE = "risk_manager.order_requests"
OUTBOX_INTERVAL = 1.0
BREAKER_WATCH_SECONDS = 1.0


class SignalHandler:
    """Decides each signal (in batches, see batcher.py); invalid ones raise, so the consumer
    dead-letters them. The broker hands over up to a full batch at a time (`prefetch`): with
    the default 10 in flight, batches could never grow past 10 under load."""

    prefetch = MAX_BATCH

    def __init__(self, settings: RiskSettings) -> None:
        self.settings = settings
        self.runtime: Runtime | None = None
        self.batcher = DecisionBatcher(
            lambda: self.live.pool, lambda: self.live.channel, settings.limits(),
            settings.trading_environment,
        )  # fmt: skip

    @property
    def live(self) -> Runtime:
        assert self.runtime is not None
        return self.runtime

    async def __call__(self, payload: dict[str, Any]) -> None:
        await self.batcher.decide(Signal.model_validate(payload))


def create_app(settings: RiskSettings) -> FastAPI:
    """The app, its connections opened in the lifespan."""
    handler = SignalHandler(settings)
    app = build_service_app(
        find_service("risk_manager"), settings, [router, admin_router], {QUEUE: handler},
        database_settings=GENERIC_PLANS,
    )  # fmt: skip
    runtime: Runtime = app.state.runtime
    handler.runtime = runtime
    runtime.on_drained.append(lambda: handler.batcher.sender.finish(runtime.pool))
    stop = asyncio.Event()
    portfolio = PortfolioMetrics(
        runtime.metrics.registry,
        settings.trading_environment,
        settings.limits().max_portfolio_drawdown_pct,
    )

    async def start() -> list[asyncio.Task[None]]:
        stop.clear()
        loop = run_outbox_loop(lambda: runtime.pool, lambda: runtime.channel, OUTBOX_INTERVAL,
                               stop, handler.batcher.sender)  # fmt: skip
        gauges = portfolio.run(lambda: runtime.pool, stop)
        watch = watch_breaker_until(handler.batcher, stop, BREAKER_WATCH_SECONDS)
        return [asyncio.create_task(task) for task in (loop, gauges, watch)]

    add_background(app, start)
    return app
