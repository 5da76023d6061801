"""The daily generation: start a run (on schedule, at start-up on an empty installation, or on
demand), work its shards one after another, then rank and activate the best.

Any number of replicas run `Scheduler.run_forever`; the database decides who does what (see
`store.py`): one run per day key, each shard computed by whichever pod claims it. A pod that
restarts finds the day's run still 'running' and goes on with the shards left. The CPU work runs
in a worker thread (numba releases the GIL), so the API and the live loop keep answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from prometheus_client import Counter, Gauge

from mastertrade.core.background import stop_task
from mastertrade.core.messages import quoted_in
from mastertrade.core.metrics import ServiceMetrics
from mastertrade.strategy.domain.batch import compute_shard, shard_candidates
from mastertrade.strategy.domain.engine import Bars
from mastertrade.strategy.domain.families import Strategy
from mastertrade.strategy.domain.generator import generate_candidates
from mastertrade.strategy.domain.plan import Goal, daily_key, evaluate_goals, run_seed
from mastertrade.strategy.settings import StrategySettings
from mastertrade.strategy.store import (
    Run,
    achieved_by_active,
    claim_shard,
    create_run,
    fail_run,
    finish_run,
    history_window,
    load_bars,
    renew_shard,
    run_exists,
    running_run,
    store_shard,
    strategy_count,
    symbols_with_history,
)

logger = logging.getLogger("mastertrade.strategy.generation")


@contextlib.asynccontextmanager
async def holding(
    pool: asyncpg.Pool, run_id: int, shard: int, worker: str, lease: float
) -> AsyncIterator[None]:
    """Renew `worker`'s lease of the shard every third of the lease while the body runs."""

    async def renew() -> None:
        while True:
            await asyncio.sleep(lease / 3)
            try:
                if not await renew_shard(pool, run_id, shard, worker, lease):
                    logger.warning("generation run %d shard %d is no longer this pod's: its "
                                   "result will not be stored", run_id, shard)  # fmt: skip
                    return
            except Exception as error:  # the database is away: the next renewal tries again
                logger.warning("renewing the lease of run %d shard %d failed: %r", run_id,
                               shard, error)  # fmt: skip

    task = asyncio.create_task(renew(), name=f"lease-{run_id}-{shard}")
    try:
        yield
    finally:
        await stop_task(task)


def tradable(symbols: list[str], configured: list[str], quote_asset: str) -> list[str]:
    """The `symbols` quoted in the account's asset; the others (ETHBTC in a USDT account: its
    fills could not be booked) are left out, said once for each run."""
    if left_out := sorted({s for s in [*symbols, *configured] if not quoted_in(s, quote_asset)}):
        logger.info(
            "left out of generation, not quoted in %s (QUOTE_ASSET), the asset the account is "
            "kept in: %s", quote_asset, ",".join(left_out),
        )  # fmt: skip
    return [s for s in symbols if quoted_in(s, quote_asset)]


class GenerationMetrics:
    """Progress of generation in /metrics."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        registry = metrics.registry
        self.runs = Counter(
            "mastertrade_strategy_generation_runs_total",
            "Generation runs this pod started or finished, by event (started, done, failed)",
            ["event"],
            registry=registry,
        )
        self.shards = Counter(
            "mastertrade_strategy_shards_total",
            "Shards this pod computed, by outcome (stored, lost: another pod stored it first)",
            ["outcome"],
            registry=registry,
        )
        self.candidates = Counter(
            "mastertrade_strategy_candidates_backtested_total",
            "Candidates this pod backtested and stored",
            registry=registry,
        )
        self.shard_seconds = Gauge(
            "mastertrade_strategy_last_shard_seconds",
            "Wall time of the last shard this pod computed (load, backtest, rank, store)",
            registry=registry,
        )
        self.active = Gauge(
            "mastertrade_strategy_active",
            "Strategies trading now",
            registry=registry,
        )
        self.goal_target = Gauge(
            "mastertrade_strategy_goal_target",
            "Goal of the active strategies, by goal (monthly_return, max_drawdown, win_rate)",
            ["goal"],
            registry=registry,
        )
        self.goal_achieved = Gauge(
            "mastertrade_strategy_goal_achieved",
            "What the active strategies achieve in their backtests, by goal (absent: unknown)",
            ["goal"],
            registry=registry,
        )
        self.goal_met = Gauge(
            "mastertrade_strategy_goal_met",
            "1 when the active strategies meet the goal, 0 when not (absent: unknown)",
            ["goal"],
            registry=registry,
        )
        self.run_progress = Gauge(
            "mastertrade_strategy_run_progress_ratio",
            "Share of the current run's shards done (1 when no run is in progress)",
            registry=registry,
        )


@dataclass
class Scheduler:
    """Starts runs and works their shards; one per pod."""

    settings: StrategySettings
    pool: Callable[[], asyncpg.Pool]
    metrics: GenerationMetrics
    on_activated: Callable[[], None] = lambda: None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    worker: str = ""

    def __post_init__(self) -> None:
        if not self.worker:
            self.worker = f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        self.wake = asyncio.Event()

    async def start_run(
        self, run_key: str, trigger: str, candidates: int, requested_by: str | None = None
    ) -> Run | None:
        """Create a run over the candles stored now; None when the key exists already or no
        symbol has enough history yet (logged)."""
        settings = self.settings
        as_of = self.clock().replace(second=0, microsecond=0)
        since, until = history_window(as_of, settings.strategy_history_days)
        walk = settings.walk_forward()
        needed = walk.fit_bars + walk.test_bars
        configured = settings.symbols()
        ready = tradable(await symbols_with_history(self.pool(), since, until, needed),
                         configured, settings.quote_asset)  # fmt: skip
        # Configured symbols too only once their history is there: a run started while the
        # backfill is still writing would fail, and the day's run key would then be spent
        symbols = [s for s in configured if s in ready] if configured else ready
        if waiting := [
            s for s in configured if s not in ready and quoted_in(s, settings.quote_asset)
        ]:
            logger.info(
                "STRATEGY_SYMBOLS without %d 1m candles yet, left out of this run: %s", needed,
                ",".join(waiting),
            )  # fmt: skip
        if not symbols:
            logger.info(
                "no generation yet: no symbol has %d 1m candles (fit %d + test %d days) in the "
                "last %d days", needed, settings.strategy_fit_days, settings.strategy_test_days,
                settings.strategy_history_days,
            )  # fmt: skip
            return None
        run = await create_run(
            self.pool(), run_key=run_key, trigger=trigger, seed=run_seed(run_key),
            candidates=candidates, shard_size=settings.strategy_shard_size, symbols=symbols,
            as_of=as_of, requested_by=requested_by,
        )  # fmt: skip
        if run is not None:
            self.metrics.runs.labels("started").inc()
            logger.info(
                "generation run %d (%s, %s) started: %d candidates on %s, candles before %s",
                run.id, run_key, trigger, candidates, ",".join(symbols), as_of.isoformat(),
            )  # fmt: skip
            self.wake.set()
        return run

    async def due_run(self) -> Run | None:
        """Start today's run when it is due: at start-up on an empty installation, or once
        GENERATION_TIME has passed today and today has no run yet."""
        now = self.clock()
        key = daily_key(now.date())
        if await run_exists(self.pool(), key):
            return None
        if await strategy_count(self.pool()) == 0:
            return await self.start_run(key, "startup", self.settings.first_batch_count())
        if now.time() >= self.settings.generation_at():
            return await self.start_run(key, "schedule", self.settings.daily_generation_count)
        return None

    async def work(self, run: Run, only_shard: int | None = None) -> int:
        """Compute and store the run's free shards one by one (or only `only_shard`), then
        finish the run if nothing is left; the number of shards this pod stored."""
        settings = self.settings
        since, until = history_window(run.as_of, settings.strategy_history_days)
        bars: dict[str, Bars] = {}
        drawn: list[Strategy] | None = None  # the run's candidates, drawn once per pod
        stored = 0
        while True:
            shard = await claim_shard(
                self.pool(), run.id, self.worker, settings.strategy_lease_seconds, only_shard
            )
            if shard is None:
                break
            started = time.perf_counter()
            lease = settings.strategy_lease_seconds
            try:
                # the lease renewed while it computes: a shard longer than the lease is not
                # taken over by another pod (which would throw this one's result away)
                async with holding(self.pool(), run.id, shard.shard, self.worker, lease):
                    for symbol in run.symbols:
                        if symbol not in bars:
                            bars[symbol] = await load_bars(self.pool(), symbol, since, until)
                    if drawn is None:  # CPU work too: thousands of candidates take a while
                        drawn = await asyncio.to_thread(
                            generate_candidates, run.candidates, run.seed
                        )
                    members = shard_candidates(run.seed, run.candidates, shard, run.symbols,
                                               drawn)  # fmt: skip
                    results = await asyncio.to_thread(
                        compute_shard,
                        members,
                        bars,
                        settings.backtest_config(),
                        settings.walk_forward(),
                    )
            except ValueError as error:
                logger.error("generation run %d shard %d failed: %s", run.id, shard.shard, error)
                await fail_run(self.pool(), run.id, shard.shard, str(error))
                self.metrics.runs.labels("failed").inc()
                return stored
            kept = await store_shard(
                self.pool(),
                run,
                shard=shard.shard,
                worker=self.worker,
                results=results,
                since=since,
            )
            self.metrics.shards.labels("stored" if kept else "lost").inc()
            self.metrics.shard_seconds.set(time.perf_counter() - started)
            if kept:
                stored += 1
                self.metrics.candidates.inc(len(results))
                ranked = sum(1 for r in results if r.score is not None)
                logger.info(
                    "generation run %d: shard %d stored (candidates %d-%d, %d ranked) in %.1f s",
                    run.id, shard.shard, shard.first, shard.last - 1, ranked,
                    time.perf_counter() - started,
                )  # fmt: skip
            await self._report_progress(run)
            if only_shard is not None:
                break
        await self._finish(run)
        return stored

    async def _report_progress(self, run: Run) -> None:
        done = await self.pool().fetchval(
            "SELECT count(*) FILTER (WHERE status = 'done')::float8 / greatest(count(*), 1) "
            "FROM generation_shards WHERE run_id = $1",
            run.id,
        )
        self.metrics.run_progress.set(done)

    async def _finish(self, run: Run) -> None:
        settings = self.settings
        chosen = await finish_run(
            self.pool(), run.id, settings.max_active_strategies, settings.trading_environment,
            settings.strategy_min_confidence,
        )  # fmt: skip
        if chosen is not None:
            self.metrics.runs.labels("done").inc()
            self.metrics.run_progress.set(1.0)
            self.on_activated()
            if chosen:
                logger.info("generation run %d done: %d strategies made active (ids %s)",
                            run.id, len(chosen), ",".join(map(str, chosen)))  # fmt: skip
            else:
                logger.info(
                    "generation run %d done: no candidate qualified (money made out of "
                    "sample, beyond luck at STRATEGY_MIN_CONFIDENCE), so the active set stays as "
                    "it was; a backtested strategy can be activated by hand "
                    "(POST /api/v1/admin/strategies/{id}/activate)", run.id,
                )  # fmt: skip

    async def step(self) -> None:
        """One round: go on with the run in progress, else start the day's run if due."""
        run = await running_run(self.pool())
        if run is None:
            run = await self.due_run()
        if run is not None:
            await self.work(run)
        await self.refresh_goals()

    async def goals(self) -> tuple[int, list[Goal]]:
        """How many strategies are active, and the goals against what they achieve."""
        settings = self.settings
        achieved = await achieved_by_active(self.pool())
        found = evaluate_goals(
            achieved,
            settings.strategy_goal_monthly_return,
            settings.strategy_goal_max_drawdown,
            settings.strategy_goal_win_rate,
        )
        return len(achieved), found

    async def refresh_goals(self) -> None:
        """The goals and the active count into /metrics."""
        active, goals = await self.goals()
        self.metrics.active.set(active)
        self.metrics.goal_achieved.clear()  # a goal nothing measures has no sample
        self.metrics.goal_met.clear()
        for goal in goals:
            self.metrics.goal_target.labels(goal.name).set(float(goal.target))
            if goal.achieved is not None:
                self.metrics.goal_achieved.labels(goal.name).set(float(goal.achieved))
            if goal.met is not None:
                self.metrics.goal_met.labels(goal.name).set(1.0 if goal.met else 0.0)

    async def run_forever(self) -> None:
        """Rounds until cancelled; a failing round (database down) is logged and retried."""
        while True:
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                logger.warning("generation round failed, retrying: %s", error)
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.settings.strategy_poll_seconds)
