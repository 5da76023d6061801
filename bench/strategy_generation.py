"""Benchmark: strategy_service's daily generation end to end, beside the engine alone.

A database of its own gets --days of simulated 1m candles for --symbols (the market data
service's generator). Then, in one process and one run:

1. reference: the same candidates backtested and walk-forward ranked by the pure domain code
   (`compute_shard` over every shard) on bars already in memory, no database at all; timed
   before and after the service, since other load on a shared machine changes between runs;
2. service: `Scheduler.step()` as a pod runs it: the run row and its shards created, the candles
   loaded from PostgreSQL, every shard computed, its strategies and backtests (Decimal metrics,
   downsampled equity curves) stored in one transaction per shard, ranked and activated.

Reported: wall time of each, the service's overhead over the engine, peak RSS of the process
(VmHWM), candidates and bar-strategies per second. The engine is compiled (a small untimed run)
before either timing. Needs PostgreSQL on 127.0.0.1:5432 (user postgres).

    .venv/bin/python bench/strategy_generation.py [--days 90] [--candidates 500]
                                                  [--symbols BTCUSDT,ETHUSDT,BNBUSDT,SOLUSDT,ETHBTC]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.infra import create_database, drop_database

from mastertrade.core.metrics import ServiceMetrics
from mastertrade.core.settings import load_settings
from mastertrade.market_data.history import simulated_history
from mastertrade.migrations.runner import migrate_database
from mastertrade.strategy.domain.batch import compute_shard, shard_candidates
from mastertrade.strategy.domain.engine import run_backtests
from mastertrade.strategy.domain.generator import generate_candidates
from mastertrade.strategy.domain.plan import run_seed, shard_ranges
from mastertrade.strategy.generation import GenerationMetrics, Scheduler
from mastertrade.strategy.settings import StrategySettings
from mastertrade.strategy.store import history_window, load_bars


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def run(url: str, days: int, candidates: int, symbols: list[str]) -> int:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    await migrate_database(url, 30.0, lambda line: None)
    pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
    try:
        started = time.perf_counter()
        _, written = await simulated_history(pool, symbols=symbols, seed=5, days=days, now=now)
        print(f"history: {written} candles ({days} days x {len(symbols)} symbols) written in "
              f"{time.perf_counter() - started:.1f} s")  # fmt: skip
        env = {"DAILY_GENERATION_COUNT": str(candidates), "STRATEGY_HISTORY_DAYS": str(days)}
        settings = load_settings(StrategySettings, "strategy_service", (), env)
        since, until = history_window(now, days)
        bars = {s: await load_bars(pool, s, since, until) for s in symbols}
        n_bars = sum(len(b) for b in bars.values())

        # compile the kernels outside the timings
        warm = generate_candidates(30, 1)
        run_backtests(bars[symbols[0]], warm, settings.backtest_config())

        def engine_only() -> tuple[float, int]:
            seed = run_seed("bench")
            started = time.perf_counter()
            ranked = 0
            drawn = generate_candidates(candidates, seed)
            for shard in shard_ranges(candidates, settings.strategy_shard_size):
                members = shard_candidates(seed, candidates, shard, symbols, drawn)
                results = compute_shard(
                    members, bars, settings.backtest_config(), settings.walk_forward()
                )
                ranked += sum(1 for r in results if r.score is not None)
            return time.perf_counter() - started, ranked

        # reference before and after the service, so a change of the machine's load shows
        before, ranked = engine_only()
        metrics = GenerationMetrics(ServiceMetrics("strategy_service", "bench"))
        scheduler = Scheduler(settings, lambda: pool, metrics, clock=lambda: now, worker="bench")
        started = time.perf_counter()
        await scheduler.step()
        service = time.perf_counter() - started
        after, _ = engine_only()
        reference = min(before, after)
        stored = await pool.fetchval("SELECT count(*) FROM backtests")
        active = await pool.fetchval("SELECT count(*) FROM strategies WHERE status = 'active'")
        status = await pool.fetchval("SELECT status FROM generation_runs")
    finally:
        await pool.close()
    per_symbol = n_bars / len(symbols)
    work = candidates * per_symbol
    print(
        f"{candidates} mixed candidates over {len(symbols)} symbols, ~{per_symbol:,.0f} bars each"
    )
    print(f"{'case':<34}{'wall s':>9}{'cand/s':>9}{'bar-strategies/s':>19}")
    for name, seconds in (("engine only, before (reference)", before),
                          ("service: load, run, rank, store", service),
                          ("engine only, after (reference)", after)):  # fmt: skip
        print(f"{name:<34}{seconds:>9.2f}{candidates / seconds:>9.1f}{work / seconds:>19,.0f}")
    print(f"service overhead: {service / reference:.2f}x the faster engine-only run; run {status}, "
          f"{stored} backtests stored, {ranked} ranked, {active} active")  # fmt: skip
    print(f"peak RSS of the process: {peak_rss_mb():.0f} MB")
    return 0 if status == "done" and stored == candidates else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--candidates", type=int, default=500)
    parser.add_argument("--symbols", default="BTCUSDT,ETHUSDT,BNBUSDT,SOLUSDT,ETHBTC")
    args = parser.parse_args(argv)
    url = create_database("mastertrade_bench_strategy")
    try:
        return asyncio.run(run(url, args.days, args.candidates, args.symbols.split(",")))
    finally:
        drop_database(url)


if __name__ == "__main__":
    sys.exit(main())
