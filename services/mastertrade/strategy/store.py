"""PostgreSQL access of strategy_service: runs and their shards, candles in, results out.

One generation per day across replicas: a run's `run_key` is UNIQUE ('daily:<date>'), and a
partial unique index allows one 'running' run at a time, so two pods racing to start one get
one row. Shards are claimed with FOR UPDATE SKIP LOCKED and a lease; a pod that dies mid-shard
leaves its lease to expire and another pod computes the shard again. A shard's strategies, its
backtests and its 'done' mark are written in one transaction, so a restart never duplicates.
The run's last transaction changes the active set and announces it (`active_set.py`), and its
outcome is logged: how many candidates beat the luckiest of the run's (`plan.required_z`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import numpy as np

from mastertrade.strategy.active_set import apply_run_choice
from mastertrade.strategy.domain.batch import CandidateResult
from mastertrade.strategy.domain.engine import Bars, build_bars
from mastertrade.strategy.domain.plan import (
    Achieved,
    Scored,
    ShardRange,
    choose_active,
    qualified,
    required_z,
    shard_ranges,
)
from mastertrade.strategy.locks import lock_active_set

INTERVAL = "1m"
FRESH = timedelta(hours=1)
logger = logging.getLogger("mastertrade.strategy.generation")


class RunInProgressError(Exception):
    """Another generation run is still running."""


@dataclass(frozen=True)
class Run:
    """What every shard of a run needs to rebuild its work."""

    id: int
    run_key: str
    seed: int
    candidates: int
    symbols: tuple[str, ...]
    as_of: datetime
    status: str


def _run(row: asyncpg.Record) -> Run:
    return Run(
        row["id"], row["run_key"], row["seed"], row["candidates"], tuple(row["symbols"]),
        row["as_of"], row["status"],
    )  # fmt: skip


async def symbols_with_history(
    pool: asyncpg.Pool, since: datetime, until: datetime, min_bars: int
) -> list[str]:
    """Symbols with at least `min_bars` 1m candles in [since, until), the last of them less
    than FRESH old (a backfill still writing the window's older days does not count yet)."""
    rows = await pool.fetch(
        "SELECT symbol FROM candles WHERE interval = $1 AND open_time >= $2 AND open_time < $3 "
        "GROUP BY symbol HAVING count(*) >= $4 AND max(open_time) >= $3 - $5::interval "
        "ORDER BY symbol",
        INTERVAL, since, until, min_bars, FRESH,
    )  # fmt: skip
    return [row["symbol"] for row in rows]


async def load_bars(pool: asyncpg.Pool, symbol: str, since: datetime, until: datetime) -> Bars:
    """Opens and closes of a symbol's 1m candles in [since, until), oldest first (float64 for
    the engine; the stored NUMERIC stays exact)."""
    rows = await pool.fetch(
        "SELECT open::float8, close::float8 FROM candles WHERE symbol = $1 AND interval = $2 "
        "AND open_time >= $3 AND open_time < $4 ORDER BY open_time",
        symbol, INTERVAL, since, until,
    )  # fmt: skip
    prices = np.array([(row[0], row[1]) for row in rows], dtype=np.float64).reshape(-1, 2)
    return build_bars(prices[:, 0], prices[:, 1])


async def strategy_count(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM strategies"))


async def create_run(
    pool: asyncpg.Pool,
    *,
    run_key: str,
    trigger: str,
    seed: int,
    candidates: int,
    shard_size: int,
    symbols: Sequence[str],
    as_of: datetime,
    requested_by: str | None = None,
) -> Run | None:
    """The new run with its shards; None when `run_key` exists already (another pod made it);
    RunInProgressError when another run is still running."""
    shards = shard_ranges(candidates, shard_size)
    try:
        async with pool.acquire() as connection, connection.transaction():
            row = await connection.fetchrow(
                "INSERT INTO generation_runs (run_key, trigger, requested_by, seed, candidates, "
                "shard_count, symbols, as_of) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
                "ON CONFLICT (run_key) DO NOTHING RETURNING *",
                run_key, trigger, requested_by, seed, candidates, len(shards), list(symbols),
                as_of,
            )  # fmt: skip
            if row is None:
                return None
            await connection.executemany(
                "INSERT INTO generation_shards (run_id, shard, first_index, last_index) "
                "VALUES ($1, $2, $3, $4)",
                [(row["id"], s.shard, s.first, s.last) for s in shards],
            )
    except asyncpg.UniqueViolationError as error:
        # Two pods inserting the same key at the same instant can meet on the one-running index
        # before ON CONFLICT (run_key) sees the other's row; the violation is raised only once
        # that row is committed, so it can be looked up: then the key simply existed already.
        if await run_exists(pool, run_key):
            return None
        raise RunInProgressError("another generation run is still running") from error
    return _run(row)


async def run_exists(pool: asyncpg.Pool, run_key: str) -> bool:
    return bool(
        await pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM generation_runs WHERE run_key = $1)", run_key
        )
    )


async def running_run(pool: asyncpg.Pool) -> Run | None:
    """The run in progress, if any (at most one)."""
    row = await pool.fetchrow("SELECT * FROM generation_runs WHERE status = 'running'")
    return None if row is None else _run(row)


async def get_run(pool: asyncpg.Pool, run_id: int) -> Run | None:
    row = await pool.fetchrow("SELECT * FROM generation_runs WHERE id = $1", run_id)
    return None if row is None else _run(row)


CLAIM = """
UPDATE generation_shards AS s
SET status = 'running', claimed_by = $2, lease_until = now() + make_interval(secs => $3),
    attempts = s.attempts + 1
FROM (
    SELECT run_id, shard FROM generation_shards
    WHERE run_id = $1 AND ($4::int IS NULL OR shard = $4)
      AND (status = 'pending' OR (status = 'running' AND lease_until < now()))
    ORDER BY shard LIMIT 1 FOR UPDATE SKIP LOCKED
) AS free
WHERE s.run_id = free.run_id AND s.shard = free.shard
RETURNING s.shard, s.first_index, s.last_index
"""


async def claim_shard(
    pool: asyncpg.Pool, run_id: int, worker: str, lease: float, shard: int | None = None
) -> ShardRange | None:
    """A shard of the run no live pod holds (a given one for an Indexed Job pod), now ours."""
    row = await pool.fetchrow(CLAIM, run_id, worker, lease, shard)
    if row is None:
        return None
    return ShardRange(row["shard"], row["first_index"], row["last_index"])


RENEW_SHARD = """
UPDATE generation_shards SET lease_until = now() + make_interval(secs => $4)
WHERE run_id = $1 AND shard = $2 AND claimed_by = $3 AND status = 'running'
"""


async def renew_shard(
    pool: asyncpg.Pool, run_id: int, shard: int, worker: str, lease: float
) -> bool:
    """Extend `worker`'s lease of the shard it is computing; False when it is no longer its."""
    status = await pool.execute(RENEW_SHARD, run_id, shard, worker, lease)
    return bool(status.endswith(" 1"))


def _strategy_row(run_id: int, item: CandidateResult) -> tuple[Any, ...]:
    label = item.strategy.label()
    parameters = {"symbol": item.symbol, "strategy": item.strategy.model_dump(mode="json")}
    name = f"r{run_id}-{item.index:05d} {item.symbol} {label}"
    family = item.strategy.model_dump()["family"]
    return (name, json.dumps(parameters), item.index, item.symbol, family, item.score)


def _backtest_row(strategy_id: int, item: CandidateResult) -> tuple[Any, ...]:
    result = item.result
    metrics = {
        "initial_cash": str(result.initial_cash),
        "final_equity": str(result.final_equity),
        "total_return": str(result.total_return),
        "cagr": None if result.cagr is None else str(result.cagr),
        "sharpe": str(result.sharpe),
        "sortino": str(result.sortino),
        "max_drawdown": str(result.max_drawdown),
        "win_rate": None if result.win_rate is None else str(result.win_rate),
        "exposure": str(result.exposure),
        "trades": result.trades,
        "closed_trades": result.closed_trades,
        "oos_score": None if item.score is None else str(item.score),
        "oos_return": None if item.oos_return is None else str(item.oos_return),
        "oos_z": None if item.oos_z is None else repr(item.oos_z),
    }
    curve = [[bar, str(value)] for bar, value in result.equity_curve]
    return (
        strategy_id, item.symbol, item.bars, json.dumps(metrics), result.initial_cash,
        result.final_equity, result.total_return, result.sharpe, result.max_drawdown,
        result.win_rate, result.trades, item.score, item.oos_return, json.dumps(curve), item.oos_z,
    )  # fmt: skip


INSERT_BACKTEST = """
INSERT INTO backtests (strategy_id, run_id, status, period_from, period_to, finished_at, symbol,
    bars, metrics, initial_cash, final_equity, total_return, sharpe, max_drawdown, win_rate,
    trades, oos_score, oos_return, equity_curve, oos_z)
VALUES ($1, $16, 'done', $17, $18, now(), $2, $3, $4::jsonb, $5, $6, $7, $8, $9, $10, $11, $12,
    $13, $14::jsonb, $15)
"""


async def store_shard(
    pool: asyncpg.Pool,
    run: Run,
    *,
    shard: int,
    worker: str,
    results: Sequence[CandidateResult],
    since: datetime,
) -> bool:
    """Store a computed shard and mark it done, in one transaction; False (nothing written)
    when the shard is no longer ours (our lease expired and another pod finished it)."""
    async with pool.acquire() as connection, connection.transaction():
        held = await connection.fetchval(
            "SELECT status = 'running' AND claimed_by = $3 FROM generation_shards "
            "WHERE run_id = $1 AND shard = $2 FOR UPDATE",
            run.id, shard, worker,
        )  # fmt: skip
        if not held:
            return False
        for item in results:
            strategy_id = await connection.fetchval(
                "INSERT INTO strategies (name, status, parameters, run_id, candidate_index, "
                "symbol, family, score) VALUES ($1, 'backtested', $2::jsonb, $7, $3, $4, $5, $6) "
                "RETURNING id",
                *_strategy_row(run.id, item), run.id,
            )  # fmt: skip
            await connection.execute(
                INSERT_BACKTEST, *_backtest_row(strategy_id, item), run.id, since, run.as_of
            )
        await connection.execute(
            "UPDATE generation_shards SET status = 'done', finished_at = now(), lease_until = NULL "
            "WHERE run_id = $1 AND shard = $2",
            run.id, shard,
        )  # fmt: skip
    return True


async def fail_run(pool: asyncpg.Pool, run_id: int, shard: int | None, error: str) -> None:
    """Mark the run (and the shard that broke it) failed, with the reason."""
    async with pool.acquire() as connection, connection.transaction():
        if shard is not None:
            await connection.execute(
                "UPDATE generation_shards SET status = 'failed', error = $3 "
                "WHERE run_id = $1 AND shard = $2",
                run_id, shard, error[:2000],
            )  # fmt: skip
        await connection.execute(
            "UPDATE generation_runs SET status = 'failed', error = $2, finished_at = now() "
            "WHERE id = $1 AND status = 'running'",
            run_id, error[:2000],
        )  # fmt: skip


async def finish_run(
    pool: asyncpg.Pool, run_id: int, max_active: int, environment: str, confidence: Decimal
) -> list[int] | None:
    """When every shard is done: rank the run's candidates, make the best `max_active` of those
    that qualify at `confidence` (STRATEGY_MIN_CONFIDENCE, see `plan.qualified`) the active set
    (retiring the previous one, selling what it holds in `environment` and announcing the
    change through the outbox in the same transaction, see `active_set.py`) and close the run;
    the ids chosen, or None when shards are still left (or another pod finished the run
    first)."""
    async with pool.acquire() as connection, connection.transaction():
        run = await connection.fetchrow(
            "SELECT status, run_key, trigger, candidates FROM generation_runs WHERE id = $1 "
            "FOR UPDATE",
            run_id,
        )
        left = await connection.fetchval(
            "SELECT count(*) FROM generation_shards WHERE run_id = $1 AND status <> 'done'", run_id
        )
        if run is None or run["status"] != "running" or left:
            return None
        # the active set's lock before any strategy row is locked (the rank update below), as
        # an admin's activation takes it: in the other order the two would deadlock
        await lock_active_set(connection)
        scored = [
            Scored(row["id"], row["score"], row["oos_return"], row["oos_z"])
            for row in await connection.fetch(
                "SELECT s.id, s.score, b.oos_return, b.oos_z FROM strategies s JOIN backtests b "
                "ON b.strategy_id = s.id AND b.run_id = s.run_id "
                "WHERE s.run_id = $1 AND s.score IS NOT NULL AND b.oos_return IS NOT NULL",
                run_id,
            )
        ]
        await connection.execute(
            "UPDATE strategies SET rank = ranked.position FROM ("
            "  SELECT id, row_number() OVER (ORDER BY score DESC, id) AS position"
            "  FROM strategies WHERE run_id = $1 AND score IS NOT NULL) AS ranked "
            "WHERE strategies.id = ranked.id",
            run_id,
        )
        trials = run["candidates"]
        chosen = choose_active(scored, max_active, trials, confidence)
        # nothing chosen keeps the previous set trading when the new run found nothing worth it
        active = await apply_run_choice(
            connection, run_id, run["run_key"], run["trigger"], chosen, environment=environment
        )
        await connection.execute(
            "UPDATE generation_runs SET status = 'done', finished_at = now(), active_after = $2 "
            "WHERE id = $1",
            run_id, active,
        )  # fmt: skip
    _log_choice(run_id, len(qualified(scored, trials, confidence)), trials, confidence, chosen)
    return chosen


def _log_choice(
    run_id: int, passing: int, trials: int, confidence: Decimal, chosen: Sequence[int]
) -> None:
    if confidence == 0:
        logger.info(
            "generation run %d: %d of %d candidates made money out of sample "
            "(STRATEGY_MIN_CONFIDENCE=0: not weighed against the luck of %d tries); activating %d",
            run_id, passing, trials, trials, len(chosen),
        )  # fmt: skip
        return
    logger.info(
        "generation run %d: %d of %d candidates beat the best of %d random candidates at %s %% "
        "confidence (t >= %.2f); activating %d",
        run_id, passing, trials, trials, f"{float(confidence) * 100:g}",
        required_z(trials, confidence), len(chosen),
    )  # fmt: skip


@dataclass(frozen=True)
class ActiveStrategy:
    """An active strategy as the live loop needs it."""

    id: int
    symbol: str
    parameters: dict[str, Any]


async def active_strategies(pool: asyncpg.Pool) -> list[ActiveStrategy]:
    rows = await pool.fetch(
        "SELECT id, symbol, parameters FROM strategies WHERE status = 'active' AND symbol IS NOT "
        "NULL ORDER BY id"
    )
    return [ActiveStrategy(r["id"], r["symbol"], json.loads(r["parameters"])) for r in rows]


async def is_active(pool: asyncpg.Pool, strategy_id: int) -> bool:
    """Whether the strategy is active now (a run may have retired it since it was read)."""
    return bool(
        await pool.fetchval("SELECT status = 'active' FROM strategies WHERE id = $1", strategy_id)
    )


async def recent_bars(
    pool: asyncpg.Pool, symbol: str, limit: int
) -> list[tuple[datetime, float, float]]:
    """The last `limit` closed 1m candles of a symbol (open time, open, close), oldest first."""
    rows = await pool.fetch(
        "SELECT open_time, open::float8, close::float8 FROM candles WHERE symbol = $1 "
        "AND interval = $2 ORDER BY open_time DESC LIMIT $3",
        symbol, INTERVAL, limit,
    )  # fmt: skip
    return [(row[0], row[1], row[2]) for row in reversed(rows)]


async def bars_stored(pool: asyncpg.Pool, symbol: str, first: datetime, last: datetime) -> int:
    """How many closed 1m candles of a symbol PostgreSQL holds from `first` to `last`."""
    count: int = await pool.fetchval(
        "SELECT count(*) FROM candles WHERE symbol = $1 AND interval = $2 "
        "AND open_time BETWEEN $3 AND $4",
        symbol, INTERVAL, first, last,
    )  # fmt: skip
    return count


async def achieved_by_active(pool: asyncpg.Pool) -> list[Achieved]:
    """Each active strategy's latest backtest figures, for the goals."""
    rows = await pool.fetch(
        "SELECT DISTINCT ON (s.id) b.total_return, b.max_drawdown, b.win_rate, b.bars "
        "FROM strategies s JOIN backtests b ON b.strategy_id = s.id "
        "WHERE s.status = 'active' AND b.total_return IS NOT NULL ORDER BY s.id, b.id DESC"
    )
    return [Achieved(r["total_return"], r["max_drawdown"], r["win_rate"], r["bars"]) for r in rows]


async def run_progress(pool: asyncpg.Pool, run_id: int | None = None) -> list[dict[str, Any]]:
    """Runs (the latest 20, or one) with their shards counted by status."""
    rows = await pool.fetch(
        "SELECT r.id, r.run_key, r.trigger, r.requested_by, r.candidates, r.shard_count, "
        "r.status, r.error, r.active_after, r.symbols, r.as_of, r.created_at, r.finished_at, "
        "count(*) FILTER (WHERE s.status = 'done') AS shards_done, "
        "count(*) FILTER (WHERE s.status = 'running') AS shards_running, "
        "count(*) FILTER (WHERE s.status = 'failed') AS shards_failed, "
        "coalesce(sum(s.last_index - s.first_index) FILTER (WHERE s.status = 'done'), 0) "
        "  AS candidates_done "
        "FROM generation_runs r LEFT JOIN generation_shards s ON s.run_id = r.id "
        "WHERE $1::bigint IS NULL OR r.id = $1 GROUP BY r.id ORDER BY r.id DESC LIMIT 20",
        run_id,
    )
    return [dict(row) for row in rows]


async def list_strategies(
    pool: asyncpg.Pool, status: str | None, limit: int
) -> list[dict[str, Any]]:
    """Strategies, best ranked first, with their latest backtest's headline figures."""
    rows = await pool.fetch(
        "SELECT s.id, s.name, s.status, s.symbol, s.family, s.parameters, s.run_id, s.score, "
        "s.rank, s.created_at, s.activated_at, b.total_return, b.sharpe, b.max_drawdown, "
        "b.win_rate, b.trades FROM strategies s LEFT JOIN LATERAL ("
        "  SELECT * FROM backtests WHERE strategy_id = s.id ORDER BY id DESC LIMIT 1) b ON true "
        "WHERE $1::text IS NULL OR s.status = $1 "
        "ORDER BY s.run_id DESC NULLS LAST, s.rank NULLS LAST, s.id LIMIT $2",
        status, limit,
    )  # fmt: skip
    return [_jsonable(row) for row in rows]


async def list_backtests(
    pool: asyncpg.Pool, strategy_id: int | None, limit: int
) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT id, strategy_id, run_id, status, symbol, bars, period_from, period_to, metrics, "
        "equity_curve, created_at, finished_at FROM backtests "
        "WHERE $1::bigint IS NULL OR strategy_id = $1 ORDER BY id DESC LIMIT $2",
        strategy_id, limit,
    )  # fmt: skip
    return [_jsonable(row) for row in rows]


def _jsonable(row: asyncpg.Record) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key in {"parameters", "metrics", "equity_curve"} and isinstance(value, str):
            out[key] = json.loads(value)
        elif isinstance(value, Decimal):
            out[key] = str(value)
        else:
            out[key] = value
    return out


def history_window(as_of: datetime, days: int) -> tuple[datetime, datetime]:
    """The candles a run reads: the `days` before its as_of minute."""
    until = as_of.replace(second=0, microsecond=0)
    return until - timedelta(days=days), until
