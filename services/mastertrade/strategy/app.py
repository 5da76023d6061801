"""create_app for strategy_service: the generation scheduler in the background, the candle
consumer that trades the active strategies live (on one pod at a time: the one that holds the
live decisions' lock, `locks.py`), the outbox loop that publishes the
`strategy_change` alerts the changes of the active set committed (see `active_set.py`), the
sweep that sells what retired strategies still hold and tries again the exits that were refused
(`closing.py`), and the API."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from mastertrade.catalog import find_service
from mastertrade.core.app import build_service_app
from mastertrade.core.background import add_background
from mastertrade.core.leadership import Leadership
from mastertrade.core.outbox import publish_outbox, run_outbox_loop
from mastertrade.core.runtime import DRAIN_SECONDS, Runtime
from mastertrade.strategy.api import router
from mastertrade.strategy.closing import CLOSING_SWEEP_SECONDS, run_closing_loop
from mastertrade.strategy.generation import GenerationMetrics, Scheduler
from mastertrade.strategy.live import LiveTrader
from mastertrade.strategy.locks import LIVE_DECISIONS_LOCK
from mastertrade.strategy.settings import StrategySettings

Settings = StrategySettings
CANDLES_QUEUE = "strategy_service.candles"
OUTBOX_INTERVAL = 1.0


def create_app(settings: StrategySettings) -> FastAPI:
    """The app, its connections opened, its consumer and scheduler started in the lifespan."""
    spec = find_service("strategy_service")
    trader = LiveTrader(
        settings.strategy_signal_notional,
        settings.trading_environment,
        settings.strategy_history_days,
        settings.quote_asset,
    )
    app = build_service_app(spec, settings, [router], {CANDLES_QUEUE: trader.handle})
    runtime: Runtime = app.state.runtime
    trader.bind(runtime)
    scheduler = Scheduler(
        settings, lambda: runtime.pool, GenerationMetrics(runtime.metrics), trader.refresh
    )
    app.state.scheduler = scheduler
    app.state.trader = trader
    stop = asyncio.Event()
    candles = runtime.consumer(CANDLES_QUEUE)
    candles.paused = True  # until this pod leads the live decisions

    async def decide_live() -> None:
        await trader.take_over()
        try:
            await candles.resume()
            await asyncio.Event().wait()  # until the lock is lost or the pod stops
        finally:
            trader.step_down()
            await candles.pause(DRAIN_SECONDS)

    leadership = Leadership(lambda: runtime.pool, decide_live, LIVE_DECISIONS_LOCK,
                            "live strategy decisions")  # fmt: skip
    runtime.health_details["live"] = lambda: {"role": leadership.role}

    async def flush() -> None:  # at shutdown: what the last changes committed goes out now
        await publish_outbox(runtime.pool, runtime.channel)

    runtime.on_drained.append(flush)

    async def start() -> list[asyncio.Task[None]]:
        stop.clear()
        # also sends what a crash left unsent, and what the generation Job's pods (which have
        # no broker connection) committed when they finished a run
        outbox = run_outbox_loop(
            lambda: runtime.pool, lambda: runtime.channel, OUTBOX_INTERVAL, stop
        )
        closing = run_closing_loop(
            lambda: runtime.pool, settings.trading_environment, CLOSING_SWEEP_SECONDS, stop
        )
        return [
            asyncio.create_task(scheduler.run_forever(), name="strategy-generation"),
            asyncio.create_task(outbox, name="strategy-outbox"),
            asyncio.create_task(closing, name="strategy-closing"),
            asyncio.create_task(leadership.run(), name="strategy-live-leadership"),
        ]

    add_background(app, start)
    return app
