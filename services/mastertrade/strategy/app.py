"""create_app for strategy_service: the generation scheduler in the background, the candle
consumer that trades the active strategies live, and the API."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from mastertrade.catalog import find_service
from mastertrade.core.app import build_service_app
from mastertrade.core.background import add_background
from mastertrade.core.runtime import Runtime
from mastertrade.strategy.api import router
from mastertrade.strategy.generation import GenerationMetrics, Scheduler
from mastertrade.strategy.live import LiveTrader
from mastertrade.strategy.settings import StrategySettings

Settings = StrategySettings
CANDLES_QUEUE = "strategy_service.candles"


def create_app(settings: StrategySettings) -> FastAPI:
    """The app, its connections opened, its consumer and scheduler started in the lifespan."""
    spec = find_service("strategy_service")
    trader = LiveTrader(settings.strategy_signal_notional)
    app = build_service_app(spec, settings, [router], {CANDLES_QUEUE: trader.handle})
    runtime: Runtime = app.state.runtime
    trader.bind(runtime)
    scheduler = Scheduler(
        settings, lambda: runtime.pool, GenerationMetrics(runtime.metrics), trader.refresh
    )
    app.state.scheduler = scheduler
    app.state.trader = trader

    async def start() -> list[asyncio.Task[None]]:
        return [asyncio.create_task(scheduler.run_forever(), name="strategy-generation")]

    add_background(app, start)
    return app
