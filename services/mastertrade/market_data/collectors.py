"""The market data service's background work, started in its lifespan.

Waits for PostgreSQL and the schema, backfills history (simulated, or Binance over REST), then
runs the live source (the simulated feed, or Binance's WebSocket streams with a REST gap
backfill after every reconnect). Binance's stream opens at once, its history backfilled beside
it as the first connection's gap, tried again until done: a failing backfill (a ban, a symbol
Binance refuses) never keeps the live data of every symbol away. Beside them, each sentiment or
on-chain collector whose key is set (`providers`) polls on its own schedule. Only the replica
holding the collector lock does all this (`core/leadership.py`); the others stand by. Any failure
is logged and retried after a pause: the service never dies of bad data or a dependency outage.
`status()` is what /health shows of it, and the `mastertrade_market_data_collector_enabled`
gauge says which collectors are on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from mastertrade.core.background import stop_task
from mastertrade.core.leadership import Leadership
from mastertrade.core.runtime import Runtime
from mastertrade.market_data.domain.binance import stream_names
from mastertrade.market_data.metrics import MarketMetrics
from mastertrade.market_data.providers.build import PROVIDERS, build_collectors
from mastertrade.market_data.providers.sink import ObservationWriter
from mastertrade.market_data.settings import STREAM_KINDS, MarketDataSettings
from mastertrade.market_data.sink import MarketSink
from mastertrade.market_data.writer import Connections, EventWriter

if TYPE_CHECKING:
    from mastertrade.market_data.binance_rest import BinanceRest

logger = logging.getLogger("mastertrade.market_data")
RETRY_SECONDS = 5.0
COLLECTOR_LOCK = 0x6D74_6D64_636F_6C6C  # "mtmdcoll": the market data collector's lock


def retry_pause(error: Exception) -> float:
    """How long to wait before collecting again after `error`: RETRY_SECONDS, or the whole of
    a Binance ban (a request during it would lengthen it)."""
    from mastertrade.market_data.binance_rest import BinanceBannedError  # noqa: PLC0415

    banned = error.seconds if isinstance(error, BinanceBannedError) else 0.0
    return max(RETRY_SECONDS, banned)


class MarketDataCollectors:
    """History first, then the live source; restarted after any failure."""

    def __init__(self, settings: MarketDataSettings, runtime: Runtime) -> None:
        self.settings = settings
        self.runtime = runtime
        self.source = settings.source()
        self.metrics = MarketMetrics(runtime.metrics.registry, runtime.spec.name)
        connections = Connections(
            pool=lambda: runtime.pool, redis=lambda: runtime.redis, channel=lambda: runtime.channel
        )
        self.sink = MarketSink(
            EventWriter(connections, self.metrics, self.source),
            self.metrics,
            settings.market_data_batch_size,
            settings.market_data_flush_interval,
        )
        self.external = build_collectors(settings, ObservationWriter(connections), self.metrics)
        self.leadership = Leadership(
            lambda: runtime.pool, self._collect, COLLECTOR_LOCK, "market data collection"
        )
        self.phase = "starting"
        self.history_rows = 0
        self.last_error = ""
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        for name in ("simulated", "binance"):
            self.metrics.set_collector(name, self.source == name)
        for name in PROVIDERS:
            self.metrics.set_collector(name, name in self.external.pollers)
        self.sink.start()
        self._task = asyncio.create_task(self.leadership.run(), name="market-data-leadership")

    async def stop(self) -> None:
        if self._task is not None:
            await stop_task(self._task)
        await self.external.close()
        await self.sink.stop()

    async def _collect(self) -> None:
        """Everything this replica collects while it holds the collector lock."""
        pollers = [
            asyncio.create_task(poller.run(), name=f"collector-{name}")
            for name, poller in self.external.pollers.items()
        ]
        try:
            await self._run()
        finally:
            await asyncio.gather(*(stop_task(task) for task in pollers))
            self.phase = "starting"

    def status(self) -> dict[str, Any]:
        """The `market_data` section of /health."""
        collectors = {
            name: ("on" if self.source == name else "off") for name in ("simulated", "binance")
        }
        pollers = self.external.pollers
        for name in PROVIDERS:
            collectors[name] = "on" if name in pollers else "off (no key)"
        return {
            "source": self.source,
            "role": self.leadership.role,
            "phase": self.phase if self.leadership.role == "leader" else "standby",
            "symbols": list(self.settings.market_data_symbols),
            "collectors": collectors,
            "history_rows_written": self.history_rows,
            "events_written": self.sink.written,
            "external": {name: poller.status() for name, poller in pollers.items()},
            "last_error": self.last_error,
        }

    async def _run(self) -> None:
        while True:
            try:
                await self._work()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.phase = "retrying"
                self.last_error = f"{type(error).__name__}: {str(error)[:200]}"
                pause = retry_pause(error)
                logger.warning("market data collection failed, retrying in %.0fs: %s",
                               pause, self.last_error)  # fmt: skip
                await asyncio.sleep(pause)

    async def _work(self) -> None:
        # numpy (the simulated market) and aiohttp (Binance) load here, after the server
        # answers, so that the service starts as fast as the others on a busy machine
        from mastertrade.market_data.history import simulated_history  # noqa: PLC0415
        from mastertrade.market_data.simulated_feed import run_simulated_feed  # noqa: PLC0415

        self.phase = "backfilling"
        symbols = self.settings.market_data_symbols
        if self.source == "simulated":
            market, written = await simulated_history(
                self.runtime.pool,
                symbols=symbols,
                seed=self.settings.market_data_seed,
                days=self.settings.market_data_backfill_days,
                now=datetime.now(UTC),
            )
            self._history_done(written)
            await run_simulated_feed(market, self.sink, symbols, self.settings.market_data_speed)
            return
        await self._binance(symbols)

    def _history_done(self, written: int) -> None:
        self.history_rows += written
        self.metrics.backfill(self.source, written)
        self.phase = "live"
        self.last_error = ""
        logger.info("market data history written (%d rows); going live", written)

    async def _binance_backfill(self, rest: BinanceRest, plan: BackfillPlan) -> int:
        from mastertrade.market_data.history import binance_history  # noqa: PLC0415

        return await binance_history(
            rest,
            self.runtime.pool,
            symbols=plan.symbols,
            days=self.settings.market_data_backfill_days,
            now=datetime.now(UTC),
            guard=self.sink.guard,
            since=plan.since,
            floors=plan.floors,
        )

    async def _binance(self, symbols: tuple[str, ...]) -> None:
        """The live stream, opened at once; the history is backfilled beside it, as the first
        connection's gap (a backfill that fails, a ban or PostgreSQL away, is tried again by the
        stream, while the live data flows)."""
        from mastertrade.market_data.binance_rest import BinanceRest  # noqa: PLC0415
        from mastertrade.market_data.binance_ws import BinanceStream  # noqa: PLC0415
        from mastertrade.market_data.history import backfill_floors  # noqa: PLC0415

        settings = self.settings
        rest = BinanceRest(
            settings.binance_rest_url, settings.binance_max_weight_per_minute, metrics=self.metrics
        )
        # read before the stream stores anything: a symbol's newest candle stored by the stream
        # would hide where a gap longer than the backfill days began
        floors = await backfill_floors(
            self.runtime.pool, symbols, settings.market_data_backfill_days, datetime.now(UTC)
        )

        async def gap(since: Mapping[str, datetime]) -> None:
            live = self.phase == "live"
            try:
                plan = backfill_plan(symbols, floors, since, live=live)
                written = await self._binance_backfill(rest, plan)
            except Exception as error:
                self.last_error = f"{type(error).__name__}: {str(error)[:200]}"
                raise
            self.last_error = ""
            if live:
                self.metrics.backfill(self.source, written)
            else:
                self._history_done(written)

        try:
            stream = BinanceStream(
                settings.binance_ws_url,
                stream_names(symbols, STREAM_KINDS),
                sink=self.sink,
                metrics=self.metrics,
                rotate_seconds=settings.binance_ws_rotate_seconds,
                max_backoff=settings.binance_ws_max_backoff,
                on_gap=gap,
                retry_pause=retry_pause,
            )
            await stream.run()
        finally:
            await rest.close()


@dataclass(frozen=True)
class BackfillPlan:
    """What one gap backfill fetches (`binance_history`'s arguments): these symbols, from the
    minute after `since[symbol]`, or their missing minutes from `floors[symbol]` on."""

    symbols: tuple[str, ...]
    since: Mapping[str, datetime] | None = None
    floors: Mapping[str, datetime] | None = None


def backfill_plan(
    symbols: tuple[str, ...],
    floors: Mapping[str, datetime],
    since: Mapping[str, datetime],
    *,
    live: bool,
) -> BackfillPlan:
    """A gap backfill's plan. Live, only the symbols with a gap, from where it began: the
    others are streaming. Before the history is in, every symbol's missing minutes from its
    start-up floor, or from earlier where a gap the stream found goes further back
    (`earliest_floors`); each attempt reads what is missing again, so a retry goes on where the
    one before stopped."""
    if live:
        return BackfillPlan(tuple(symbol for symbol in symbols if symbol in since), since=since)
    return BackfillPlan(symbols, floors=earliest_floors(floors, since))


def earliest_floors(
    floors: Mapping[str, datetime], since: Mapping[str, datetime]
) -> dict[str, datetime]:
    """`floors`, each moved back to the minute after the newest candle the stream had seen
    before a gap (`since`) where that is earlier: a gap found while the history is not in must
    not move a symbol's search for missing minutes past where it began."""
    merged = dict(floors)
    for symbol, seen in since.items():
        after = seen + timedelta(minutes=1)
        merged[symbol] = min(merged.get(symbol, after), after)
    return merged
