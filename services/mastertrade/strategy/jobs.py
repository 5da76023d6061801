"""`mastertrade strategy-shard`: compute one shard of the day's generation run, then exit.

For the pods of a Kubernetes Indexed Job (`JOB_COMPLETION_INDEX` picks the shard) when one
strategy-service pod is not enough: each pod starts the day's run if no one has (the run key
keeps it one), claims its shard through the same lease as the service's pods and stores it. A
shard already claimed or done is left alone (exit 0): the service's pods and the Job's share
the work, each shard computed once. Without an index the command works every free shard.
"""

from __future__ import annotations

import logging
import os

import asyncpg

from mastertrade.core.metrics import ServiceMetrics
from mastertrade.strategy.generation import GenerationMetrics, Scheduler
from mastertrade.strategy.settings import StrategySettings
from mastertrade.strategy.store import running_run

logger = logging.getLogger("mastertrade.strategy.jobs")
JOB_INDEX_VARIABLE = "JOB_COMPLETION_INDEX"


def job_shard(environ: dict[str, str] | None = None) -> int | None:
    """The shard an Indexed Job gave this pod; ValueError when the variable is not an index."""
    raw = (os.environ if environ is None else environ).get(JOB_INDEX_VARIABLE)
    if raw is None:
        return None
    if not raw.isdigit():
        raise ValueError(f"{JOB_INDEX_VARIABLE}={raw!r}: expected a shard index such as 0")
    return int(raw)


async def run_shard(settings: StrategySettings, shard: int | None) -> int:
    """Work the shard (or every free one) of the run in progress or due; shards stored."""
    assert settings.database_url is not None
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        metrics = GenerationMetrics(ServiceMetrics("strategy_service", "job"))
        scheduler = Scheduler(settings, lambda: pool, metrics)
        run = await running_run(pool) or await scheduler.due_run()
        if run is None:
            logger.info("no generation run in progress or due: nothing to do")
            return 0
        stored = await scheduler.work(run, only_shard=shard)
        logger.info("generation run %d: this pod stored %d shard(s)", run.id, stored)
        return stored
    finally:
        await pool.close()
