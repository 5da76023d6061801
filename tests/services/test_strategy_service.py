"""strategy_service on real PostgreSQL and RabbitMQ: generation stores ranked strategies from
simulated candles and activates those that beat the luckiest of the run's candidates (or, at
STRATEGY_MIN_CONFIDENCE=0, any that made money out of sample), one run per day across
generators, a restart mid-run duplicates nothing, on-demand starts and activations by hand need
the admin token (activations up to the maximum), every change of the active set (a finished run,
an activation) is announced once as a `strategy_change` alert written in the change's own
transaction (a refused activation or a run that keeps the set announces nothing; one committed
while the broker is down goes out after the restart), and an active strategy turns candles into
signals the risk manager's parser accepts."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aio_pika.abc import AbstractChannel
from aio_pika.exceptions import AMQPConnectionError
from pydantic import TypeAdapter

from mastertrade.catalog import find_service
from mastertrade.core import leadership
from mastertrade.core.bus import publish_json
from mastertrade.core.messages import AlertEvent, Signal
from mastertrade.core.metrics import ServiceMetrics
from mastertrade.core.outbox import publish_outbox
from mastertrade.core.settings import load_settings
from mastertrade.market_data.domain.events import Kline, to_message
from mastertrade.market_data.history import simulated_history
from mastertrade.migrations.runner import migrate_database
from mastertrade.strategy import app as app_module
from mastertrade.strategy import live as live_module
from mastertrade.strategy.domain.batch import compute_shard, shard_candidates
from mastertrade.strategy.domain.engine import run_backtests
from mastertrade.strategy.domain.families import StrategyParams
from mastertrade.strategy.domain.live import Side
from mastertrade.strategy.domain.metrics import build_result
from mastertrade.strategy.domain.plan import ShardRange, required_z
from mastertrade.strategy.generation import GenerationMetrics, Scheduler, holding
from mastertrade.strategy.holdings import after, signal_id
from mastertrade.strategy.jobs import job_shard, run_shard
from mastertrade.strategy.locks import ACTIVATION_LOCK
from mastertrade.strategy.settings import StrategySettings
from mastertrade.strategy.store import (
    claim_shard,
    create_run,
    finish_run,
    history_window,
    load_bars,
    recent_bars,
    store_shard,
)
from mastertrade_model.topology import ALERTS, MARKET_DATA, SIGNALS
from tests.infra import create_database, drop_database, free_port
from tests.services.helpers import execute_sql, running, value_of, wait_for_status
from tests.services.trading import Recorder, build_app, recording

pytestmark = pytest.mark.infra

SYMBOLS = ("BTCUSDT", "ETHUSDT")
NOW = datetime.now(UTC).replace(second=0, microsecond=0)
# A fixed clock where a test asserts what a run ranks: the simulated candles and the run's seed
# (from its date) both follow the clock, and at some minutes no candidate trades out of sample
PINNED = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
TOKEN = "strategy-admin-token"
CONFIDENCE = Decimal("0.95")  # STRATEGY_MIN_CONFIDENCE's default
CHANGE = "alert.strategy_change"
TITLE = "Active strategies changed"
SMALL_RUN = {
    "STRATEGY_HISTORY_DAYS": "4",
    "STRATEGY_FIT_DAYS": "2",
    "STRATEGY_TEST_DAYS": "1",
    "STRATEGY_MIN_TRADES": "1",
    "STRATEGY_SHARD_SIZE": "10",
    "DAILY_GENERATION_COUNT": "40",
    "MAX_ACTIVE_STRATEGIES": "3",
}


async def _fill(url: str, now: datetime) -> None:
    await migrate_database(url, 10.0, lambda line: None)
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    try:
        await simulated_history(pool, symbols=SYMBOLS, seed=11, days=4, now=now)
    finally:
        await pool.close()


@pytest.fixture
def candles_url() -> Iterator[str]:
    """A migrated database of this test alone with 4 days of simulated 1m candles until now."""
    url = create_database("mastertrade_strategy")
    asyncio.run(_fill(url, NOW))
    yield url
    drop_database(url)


@pytest.fixture
def pinned_url() -> Iterator[str]:
    """The same until PINNED."""
    url = create_database("mastertrade_strategy")
    asyncio.run(_fill(url, PINNED))
    yield url
    drop_database(url)


def settings_for(url: str, **extra: str) -> StrategySettings:
    spec = find_service("strategy_service")
    env = {"DATABASE_URL": url, **SMALL_RUN, **extra}
    return load_settings(StrategySettings, spec.name, (), env)


@pytest.fixture
async def pool(candles_url: str) -> AsyncIterator[asyncpg.Pool]:
    created = await asyncpg.create_pool(candles_url, min_size=1, max_size=4)
    yield created
    await created.close()


def scheduler(
    settings: StrategySettings, pool: asyncpg.Pool, worker: str, now: datetime = NOW
) -> Scheduler:
    metrics = GenerationMetrics(ServiceMetrics("strategy_service", "test"))
    return Scheduler(settings, lambda: pool, metrics, clock=lambda: now, worker=worker)


async def counts(pool: asyncpg.Pool) -> dict[str, int]:
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM generation_runs) AS runs, "
        "(SELECT count(*) FROM strategies) AS strategies, "
        "(SELECT count(DISTINCT (run_id, candidate_index)) FROM strategies) "
        "  AS distinct_candidates, "
        "(SELECT count(*) FROM backtests) AS backtests, "
        "(SELECT count(*) FROM strategies WHERE status = 'active') AS active"
    )
    assert row is not None
    return dict(row)


@pytest.mark.parametrize("confidence", ["0.95", "0"])
async def test_generation_stores_ranked_strategies(
    pinned_url: str, confidence: str, caplog: pytest.LogCaptureFixture
) -> None:
    """At the default confidence (the simulated market is a random walk: nothing should beat
    luck) and at 0 (the old rule: any candidate that made money out of sample)."""
    settings = settings_for(pinned_url, STRATEGY_MIN_CONFIDENCE=confidence)
    async with asyncpg.create_pool(pinned_url, min_size=1, max_size=4) as pool:
        with caplog.at_level(logging.INFO, logger="mastertrade.strategy.generation"):
            await _generation_stores_ranked_strategies(settings, pool)
    run_id, passing, chosen = await _ranked_outcome(pinned_url, settings)
    trials, bar = 40, required_z(40, settings.strategy_min_confidence)
    said = (
        f"generation run {run_id}: {passing} of {trials} candidates beat the best of {trials} "
        f"random candidates at 95 % confidence (t >= {bar:.2f}); activating {chosen}"
        if confidence != "0"
        else f"generation run {run_id}: {passing} of {trials} candidates made money out of "
        f"sample (STRATEGY_MIN_CONFIDENCE=0: not weighed against the luck of {trials} tries); "
        f"activating {chosen}"
    )
    assert said in caplog.messages


async def _ranked_outcome(url: str, settings: StrategySettings) -> tuple[int, int, int]:
    """(run id, candidates that qualified, candidates activated) of the database's one run."""
    connection = await asyncpg.connect(url)
    try:
        run_id = await connection.fetchval("SELECT id FROM generation_runs")
        rows = await connection.fetch(
            "SELECT s.status, s.score, b.oos_return, b.oos_z FROM strategies s "
            "JOIN backtests b ON b.strategy_id = s.id WHERE s.score IS NOT NULL"
        )
    finally:
        await connection.close()
    bar = required_z(40, settings.strategy_min_confidence)
    passing = [r for r in rows if r["score"] > 0 and r["oos_return"] > 0 and r["oos_z"] >= bar]
    return run_id, len(passing), sum(r["status"] == "active" for r in rows)


async def _generation_stores_ranked_strategies(
    settings: StrategySettings, pool: asyncpg.Pool
) -> None:
    await scheduler(settings, pool, "pod-a", PINNED).step()

    run = await pool.fetchrow("SELECT * FROM generation_runs")
    assert run is not None
    assert run["status"] == "done" and run["trigger"] == "startup"
    assert run["run_key"] == f"daily:{PINNED.date().isoformat()}"
    assert list(run["symbols"]) == list(SYMBOLS)
    assert await counts(pool) == {
        "runs": 1, "strategies": 40, "distinct_candidates": 40, "backtests": 40,
        "active": run["active_after"],
    }  # fmt: skip
    ranked = await pool.fetch(
        "SELECT s.id, s.score, s.rank, s.status, b.oos_return, b.oos_z FROM strategies s "
        "JOIN backtests b ON b.strategy_id = s.id WHERE s.score IS NOT NULL ORDER BY s.rank"
    )
    assert ranked, "no candidate was ranked out of sample"
    assert [r["rank"] for r in ranked] == list(range(1, len(ranked) + 1))
    scores = [r["score"] for r in ranked]
    assert scores == sorted(scores, reverse=True)
    active = [r for r in ranked if r["status"] == "active"]
    # the best ranks among those that made money out of sample with a t-statistic beyond what
    # the luckiest of the run's 40 candidates would show by chance, and only those, trade
    bar = required_z(run["candidates"], settings.strategy_min_confidence)
    passing = [r for r in ranked if r["score"] > 0 and r["oos_return"] > 0 and r["oos_z"] >= bar]
    assert active == passing[:3]
    # the stored t-statistic is the walk-forward's own, the same in the metrics
    members = shard_candidates(
        run["seed"], run["candidates"], ShardRange(0, 0, run["candidates"]), SYMBOLS
    )
    since, until = history_window(PINNED, settings.strategy_history_days)
    bars = {symbol: await load_bars(pool, symbol, since, until) for symbol in SYMBOLS}
    computed = compute_shard(members, bars, settings.backtest_config(), settings.walk_forward())
    stored = await pool.fetch(
        "SELECT s.candidate_index, b.oos_z, b.metrics FROM strategies s "
        "JOIN backtests b ON b.strategy_id = s.id ORDER BY s.candidate_index"
    )
    assert [r["oos_z"] for r in stored] == [c.oos_z for c in computed]
    assert sum(r["oos_z"] is not None for r in stored) == len(ranked)
    assert [json.loads(r["metrics"])["oos_z"] for r in stored] == [
        None if c.oos_z is None else repr(c.oos_z) for c in computed
    ]

    # Every stored record is the engine's own result for that candidate on the run's candles
    rows = await pool.fetch(
        "SELECT s.symbol, s.parameters, b.* FROM strategies s JOIN backtests b "
        "ON b.strategy_id = s.id ORDER BY s.candidate_index"
    )
    parse: TypeAdapter[Any] = TypeAdapter(StrategyParams)
    for row in rows[:6]:
        strategy = parse.validate_python(json.loads(row["parameters"])["strategy"])
        engine = run_backtests(bars[row["symbol"]], [strategy], settings.backtest_config())
        expected = build_result(engine, 0)
        assert row["final_equity"] == expected.final_equity
        assert row["total_return"] == expected.total_return
        assert row["max_drawdown"] == expected.max_drawdown
        assert row["trades"] == expected.trades
        assert row["bars"] == len(bars[row["symbol"]])
        curve = json.loads(row["equity_curve"])
        assert Decimal(curve[-1][1]) == row["final_equity"]
        assert 2 <= len(curve) <= settings.backtest_config().curve_points


async def test_configured_symbols_join_a_run_only_with_their_history(
    candles_url: str, pool: asyncpg.Pool
) -> None:
    """A symbol of STRATEGY_SYMBOLS without its candles yet (a backfill still writing) is left
    out of the run; with none ready no run starts, so the day's run is not spent on a failure."""
    waiting = scheduler(settings_for(candles_url, STRATEGY_SYMBOLS="NEWUSDT"), pool, "a")
    assert await waiting.start_run("daily:test", "startup", 20) is None
    assert (await counts(pool))["runs"] == 0
    some = scheduler(settings_for(candles_url, STRATEGY_SYMBOLS="NEWUSDT,ethusdt"), pool, "b")
    run = await some.start_run("daily:test", "startup", 20)
    assert run is not None and run.symbols == ("ETHUSDT",)
    await some.work(run)
    assert (await pool.fetchval("SELECT status FROM generation_runs")) == "done"


async def test_two_concurrent_generators_make_one_run(candles_url: str, pool: asyncpg.Pool) -> None:
    settings = settings_for(candles_url)
    other = await asyncpg.create_pool(candles_url, min_size=1, max_size=4)
    try:
        await asyncio.gather(
            scheduler(settings, pool, "pod-a").step(), scheduler(settings, other, "pod-b").step()
        )
    finally:
        await other.close()
    found = await counts(pool)
    assert found["runs"] == 1
    assert found["strategies"] == found["distinct_candidates"] == found["backtests"] == 40
    shards = await pool.fetch("SELECT status, attempts FROM generation_shards")
    assert len(shards) == 4
    assert all(s["status"] == "done" and s["attempts"] == 1 for s in shards)
    # a later round the same day starts nothing more
    await scheduler(settings, pool, "pod-c").step()
    assert (await counts(pool))["runs"] == 1


async def test_restart_mid_run_duplicates_nothing(candles_url: str, pool: asyncpg.Pool) -> None:
    settings = settings_for(candles_url)
    first = scheduler(settings, pool, "pod-dies")
    run = await first.due_run()
    assert run is not None
    # the pod stores one shard, claims the next one, and is killed before storing it
    assert await claim_shard(pool, run.id, "pod-dies", 600) is not None
    await store_shard(pool, run, shard=0, worker="pod-dies", results=[], since=NOW)
    lost = await claim_shard(pool, run.id, "pod-dies", 0.2)
    assert lost is not None and lost.shard == 1
    await asyncio.sleep(0.3)  # its lease runs out

    restarted = scheduler(settings, pool, "pod-new")
    await restarted.step()
    found = await counts(pool)
    assert found["runs"] == 1
    # shard 0 was stored empty by the dead pod; the 3 others by the restarted one, once each
    assert found["strategies"] == found["distinct_candidates"] == found["backtests"] == 30
    shards = {r["shard"]: r for r in await pool.fetch("SELECT * FROM generation_shards")}
    assert shards[1]["attempts"] == 2 and shards[1]["claimed_by"] == "pod-new"
    assert all(s["status"] == "done" for s in shards.values())
    # the dead pod's late write of shard 1 is refused: it no longer holds the shard
    assert not await store_shard(pool, run, shard=1, worker="pod-dies", results=[], since=NOW)
    assert (await pool.fetchval("SELECT status FROM generation_runs")) == "done"


async def test_a_shard_computed_longer_than_its_lease_stays_its_pods(
    candles_url: str, pool: asyncpg.Pool
) -> None:
    """A 0.6 s lease, a shard computed for 1.5 s: renewed while it computes, the shard is
    never free for another pod to take over (which would throw this pod's result away), and
    its result is stored; without the renewal another pod claims it after 0.6 s."""
    run = await scheduler(settings_for(candles_url), pool, "pod-slow").due_run()
    assert run is not None
    taken = await claim_shard(pool, run.id, "pod-slow", 0.6)
    assert taken is not None
    takeovers = []
    async with holding(pool, run.id, taken.shard, "pod-slow", 0.6):
        for _ in range(6):
            await asyncio.sleep(0.25)
            takeovers.append(await claim_shard(pool, run.id, "pod-other", 0.6, taken.shard))
    kept = await store_shard(pool, run, shard=taken.shard, worker="pod-slow", results=[],
                             since=NOW)  # fmt: skip
    other = await claim_shard(pool, run.id, "pod-slow", 0.6)
    assert other is not None and other.shard != taken.shard
    await asyncio.sleep(0.9)  # no renewal now: the lease runs out
    lapsed = await claim_shard(pool, run.id, "pod-other", 0.6, other.shard)
    assert takeovers == [None] * 6 and kept
    assert lapsed is not None and lapsed.shard == other.shard


async def test_first_batch_at_start_up_and_on_demand_needs_the_token(
    candles_url: str, service_env: dict[str, str]
) -> None:
    env = {
        **service_env, **SMALL_RUN, "DATABASE_URL": candles_url, "STRATEGY_POLL_SECONDS": "0.2",
        "STRATEGY_ADMIN_API_KEY_SHA256": hashlib.sha256(TOKEN.encode()).hexdigest(),
    }  # fmt: skip
    async with running(build_app("strategy_service", env)) as client:
        await wait_for_status(client, "/health", 200)
        first = await _wait_run_done(client)
        assert first["trigger"] == "startup" and first["candidates_done"] == 40
        listed = (await client.get("/api/v1/strategies?status=active")).json()
        assert len(listed) == first["active_after"] <= 3

        assert (await client.post("/api/v1/admin/generations")).status_code == 401
        wrong = {"Authorization": "Bearer not-the-token"}
        assert (await client.post("/api/v1/admin/generations", headers=wrong)).status_code == 403
        good = {"Authorization": f"Bearer {TOKEN}"}
        started = await client.post(
            "/api/v1/admin/generations", headers=good, json={"candidates": 20}
        )
        assert started.status_code == 202, started.text
        again = await client.post("/api/v1/admin/generations", headers=good)
        assert again.status_code in {202, 409}  # 409 while the first one still runs
        run_id = started.json()["run_id"]
        done = await _wait_run_done(client, run_id)
        assert done["trigger"] == "api" and done["requested_by"].startswith("admin:")

        goals = (await client.get("/api/v1/goals")).json()
        assert {g["name"] for g in goals["goals"]} == {"monthly_return", "max_drawdown", "win_rate"}
        active = (await client.get("/api/v1/strategies?status=active")).json()
        assert goals["active_strategies"] == len(active) == done["active_after"]
        worst = max((Decimal(s["max_drawdown"]) for s in active), default=None)
        drawdown = next(g for g in goals["goals"] if g["name"] == "max_drawdown")
        assert drawdown["target"] == "0.15"
        assert (None if worst is None else str(worst)) == drawdown["achieved"]
        metrics = (await client.get("/metrics")).text
        assert 'mastertrade_strategy_generation_runs_total{event="done"}' in metrics
        assert 'mastertrade_strategy_goal_target{goal="max_drawdown"} 0.15' in metrics
        assert (await client.get("/api/v1/generations/999999")).status_code == 404
        assert (await client.get("/api/v1/generations/0")).status_code == 422
        backtests = (await client.get("/api/v1/backtests?limit=5")).json()
        assert len(backtests) == 5 and backtests[0]["equity_curve"]


async def test_on_demand_disabled_without_a_configured_token(
    candles_url: str, service_env: dict[str, str]
) -> None:
    env = {**service_env, **SMALL_RUN, "DATABASE_URL": candles_url}
    async with running(build_app("strategy_service", env)) as client:
        answer = await client.post(
            "/api/v1/admin/generations", headers={"Authorization": "Bearer x"}
        )
        assert answer.status_code == 503
        assert "STRATEGY_ADMIN_API_KEY_SHA256" in answer.json()["detail"]


async def test_an_admin_activates_backtested_strategies_up_to_the_maximum(
    candles_url: str, service_env: dict[str, str]
) -> None:
    """Each activation is announced once (by strategy and activation time); a refusal (the
    maximum reached, a strategy active already, no such strategy, one on a pair the account
    cannot book) announces nothing."""
    env = {
        **service_env, **SMALL_RUN, "DATABASE_URL": candles_url, "STRATEGY_POLL_SECONDS": "0.2",
        "STRATEGY_ADMIN_API_KEY_SHA256": hashlib.sha256(TOKEN.encode()).hexdigest(),
    }  # fmt: skip
    good = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        recording(service_env["RABBITMQ_URL"]) as (recorder, _),
        running(build_app("strategy_service", env)) as client,
    ):
        await wait_for_status(client, "/health", 200)
        run = await _wait_run_done(client)
        active = {s["id"] for s in (await client.get("/api/v1/strategies?status=active")).json()}
        backtested = [
            s["id"] for s in (await client.get("/api/v1/strategies?status=backtested")).json()
        ]
        free = 3 - len(active)  # MAX_ACTIVE_STRATEGIES
        assert len(backtested) > free
        by_run = 1 if active else 0  # a run that made some active announced it

        path = f"/api/v1/admin/strategies/{backtested[0]}/activate"
        assert (await client.post(path)).status_code == 401
        wrong = {"Authorization": "Bearer not-the-token"}
        assert (await client.post(path, headers=wrong)).status_code == 403
        for strategy_id in backtested[:free]:
            answer = await client.post(
                f"/api/v1/admin/strategies/{strategy_id}/activate", headers=good
            )
            assert answer.status_code == 200 and answer.json()["outcome"] == "activated"
            active.add(strategy_id)
        announced = await recorder.wait_for(CHANGE, by_run + free)
        full = await client.post(
            f"/api/v1/admin/strategies/{backtested[free]}/activate", headers=good
        )
        assert full.status_code == 409 and "MAX_ACTIVE_STRATEGIES" in full.json()["detail"]

        listed = {s["id"] for s in (await client.get("/api/v1/strategies?status=active")).json()}
        assert listed == active and len(listed) == 3
        again = await client.post(f"/api/v1/admin/strategies/{min(active)}/activate",
                                  headers=good)  # fmt: skip
        assert again.status_code == 200 and again.json()["outcome"] == "already"
        missing = await client.post("/api/v1/admin/strategies/999999/activate", headers=good)
        assert missing.status_code == 404
        connection = await asyncpg.connect(candles_url)
        try:  # backtested on a cross pair (before generation left them out)
            cross = await connection.fetchval(
                "INSERT INTO strategies (name, status, parameters, symbol, family) VALUES "
                "('on ETHBTC', 'backtested', '{}'::jsonb, 'ETHBTC', 'momentum') RETURNING id"
            )
        finally:
            await connection.close()
        unquoted = await client.post(f"/api/v1/admin/strategies/{cross}/activate", headers=good)
        assert unquoted.status_code == 409
        assert "not quoted in USDT (QUOTE_ASSET)" in unquoted.json()["detail"]
        assert "mastertrade_strategy_active 3.0" in (await client.get("/metrics")).text
        await asyncio.sleep(2.5)  # two rounds of the outbox loop: a refusal's alert would be out
        written = await _changes_in_outbox(candles_url)

    assert len(written) == len(recorder.of(CHANGE)) == by_run + free
    alerts = [AlertEvent.model_validate(body) for body in announced]
    assert [a.dedup_key for a in alerts[:by_run]] == [f"strategy-change:run:{run['id']}"] * by_run
    for number, (alert, strategy_id) in enumerate(
        zip(alerts[by_run:], backtested[:free], strict=True), start=len(active) - free + 1
    ):
        assert alert.kind == "strategy_change" and alert.severity == "info"
        assert alert.dedup_key is not None
        assert alert.dedup_key.startswith(f"strategy-change:activated:{strategy_id}:")
        assert alert.title == f"{TITLE}: 1 activated, 0 retired, {number} active now"
        assert f"Activated: #{strategy_id} " in alert.message and "by admin:" in alert.message
    assert len({a.dedup_key for a in alerts}) == len(alerts)  # no two changes merged


async def _changes_in_outbox(url: str) -> list[asyncpg.Record]:
    """The strategy_change rows of the outbox: exchange, published_at and writing transaction."""
    connection = await asyncpg.connect(url)
    try:
        return await connection.fetch(
            "SELECT exchange, published_at, xmin::text AS xmin, payload::text AS payload "
            "FROM outbox WHERE routing_key = $1 ORDER BY id",
            CHANGE,
        )
    finally:
        await connection.close()


async def test_a_finished_run_announces_its_change_of_the_active_set_once(
    pinned_url: str, rabbitmq_url: str
) -> None:
    """The run's last transaction retires the previous set, activates its best and writes the
    one alert saying so (same transaction id); the outbox sends it once, with the right ids."""
    # the old rule, as a demo would run it: on the simulated random walk nothing beats luck at
    # the default confidence, and this test needs a run that changes the set
    settings = settings_for(pinned_url, STRATEGY_MIN_CONFIDENCE="0")
    async with asyncpg.create_pool(pinned_url, min_size=1, max_size=4) as pool:
        previous = await pool.fetchval(
            "INSERT INTO strategies (name, status, parameters, symbol, family) "
            "VALUES ('previous set', 'active', '{}'::jsonb, 'ETHUSDT', 'momentum') RETURNING id"
        )
        await scheduler(settings, pool, "pod-a", PINNED).step()
        run = await pool.fetchrow("SELECT id, run_key, xmin::text AS xmin FROM generation_runs")
        active = await pool.fetch(
            "SELECT id, symbol, family, xmin::text AS xmin FROM strategies "
            "WHERE status = 'active' ORDER BY id"
        )
        retired = await pool.fetchrow(
            "SELECT status, xmin::text AS xmin FROM strategies WHERE id = $1", previous
        )
        written = await _changes_in_outbox(pinned_url)
        async with recording(rabbitmq_url) as (recorder, channel):
            sent = await publish_outbox(pool, channel)
            await recorder.wait_for(CHANGE)
            again = await publish_outbox(pool, channel)
            await asyncio.sleep(0.5)
    assert run is not None and retired is not None
    assert active, "the pinned run made nothing active"
    assert len(written) == 1 and written[0]["exchange"] == ALERTS.name
    assert written[0]["published_at"] is None  # not sent before the commit
    # the alert, the run's end and the set's change were written by one transaction
    assert {written[0]["xmin"], retired["xmin"]} | {row["xmin"] for row in active} == {run["xmin"]}
    assert retired["status"] == "retired"
    assert (sent, again) == (1, 0)
    [body] = recorder.of(CHANGE)
    alert = AlertEvent.model_validate(body)
    assert (alert.kind, alert.severity, alert.source) == ("strategy_change", "info",
                                                          "strategy_service")  # fmt: skip
    assert alert.dedup_key == f"strategy-change:run:{run['id']}"
    count = len(active)
    assert alert.title == f"{TITLE}: {count} activated, 1 retired, {count} active now"
    names = ", ".join(f"#{row['id']} {row['symbol']} {row['family']}" for row in active)
    assert f"Activated: {names}." in alert.message
    assert f"Retired: #{previous} ETHUSDT momentum." in alert.message
    assert f"generation run {run['id']} ({run['run_key']}" in alert.message


async def test_a_run_that_keeps_the_active_set_announces_nothing(pool: asyncpg.Pool) -> None:
    kept = await pool.fetchval(
        "INSERT INTO strategies (name, status, parameters, symbol, family) "
        "VALUES ('kept', 'active', '{}'::jsonb, 'BTCUSDT', 'momentum') RETURNING id"
    )
    run = await create_run(
        pool, run_key="api:nothing", trigger="api", seed=1, candidates=10, shard_size=10,
        symbols=["BTCUSDT"], as_of=NOW,
    )  # fmt: skip
    assert run is not None and await claim_shard(pool, run.id, "pod", 600) is not None
    assert await store_shard(pool, run, shard=0, worker="pod", results=[], since=NOW)
    assert (
        await finish_run(pool, run.id, 3, "paper", CONFIDENCE) == []
    )  # no candidate ranked: the set stays
    assert await pool.fetchval("SELECT status FROM strategies WHERE id = $1", kept) == "active"
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0


async def test_an_activation_racing_the_end_of_a_run_waits_instead_of_deadlocking(
    pool: asyncpg.Pool,
) -> None:
    """An admin's activation takes the active set's lock, then the row of the strategy it
    activates. The end of a run must take that lock before it locks any strategy (its rank
    update): in the other order each waits for the other, and PostgreSQL aborts one of them."""
    run = await create_run(
        pool, run_key="api:race", trigger="api", seed=1, candidates=10, shard_size=10,
        symbols=["BTCUSDT"], as_of=NOW,
    )  # fmt: skip
    assert run is not None and await claim_shard(pool, run.id, "pod", 600) is not None
    assert await store_shard(pool, run, shard=0, worker="pod", results=[], since=NOW)
    candidate = await pool.fetchval(
        "INSERT INTO strategies (name, status, parameters, symbol, family, run_id, score) "
        "VALUES ('racing', 'backtested', '{}'::jsonb, 'BTCUSDT', 'momentum', $1, 1) "
        "RETURNING id", run.id,
    )  # fmt: skip
    await pool.execute(
        "INSERT INTO backtests (strategy_id, run_id, oos_return) VALUES ($1, $2, 0.1)",
        candidate, run.id,
    )  # fmt: skip
    async with pool.acquire() as admin, admin.transaction():
        await admin.execute("SELECT pg_advisory_xact_lock($1)", ACTIVATION_LOCK)
        finishing = asyncio.create_task(finish_run(pool, run.id, 3, "paper", CONFIDENCE))
        await asyncio.sleep(0.5)  # the run's end is under way, waiting where it must wait
        await admin.execute("SELECT FROM strategies WHERE id = $1 FOR UPDATE", candidate)
    await asyncio.wait_for(finishing, 10)  # raises DeadlockDetectedError in the other order
    assert await pool.fetchval("SELECT status FROM generation_runs WHERE id = $1", run.id) == (
        "done"
    )


async def test_an_activation_committed_while_the_broker_is_down_is_published_after_a_restart(
    trading_env: dict[str, str], rabbitmq_url: str
) -> None:
    """The activation commits with its alert in the outbox; the publish fails (no broker), and
    the restarted service sends it, once."""
    url = trading_env["DATABASE_URL"]
    connection = await asyncpg.connect(url)
    try:
        strategy_id = await connection.fetchval(
            "INSERT INTO strategies (name, status, parameters, symbol, family) "
            "VALUES ('by hand', 'backtested', '{}'::jsonb, 'BTCUSDT', 'breakout') RETURNING id"
        )
    finally:
        await connection.close()
    env = {**trading_env,
           "STRATEGY_ADMIN_API_KEY_SHA256": hashlib.sha256(TOKEN.encode()).hexdigest()}  # fmt: skip
    broker_down = {**env, "RABBITMQ_URL": f"amqp://guest:guest@127.0.0.1:{free_port()}/"}
    async with running(build_app("strategy_service", broker_down)) as client:
        answer = await client.post(
            f"/api/v1/admin/strategies/{strategy_id}/activate",
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert answer.status_code == 200 and answer.json()["outcome"] == "activated"
        await asyncio.sleep(1.5)  # the outbox loop tries, and fails
    left = await _changes_in_outbox(url)
    connection = await asyncpg.connect(url)
    try:
        activated = await connection.fetchval(
            "SELECT xmin::text FROM strategies WHERE id = $1", strategy_id
        )
    finally:
        await connection.close()

    async with (
        recording(rabbitmq_url) as (recorder, _),
        running(build_app("strategy_service", env)) as client,
    ):
        await wait_for_status(client, "/health", 200)
        [body] = await recorder.wait_for(CHANGE)
        await asyncio.sleep(1.5)  # another round of the loop sends nothing more
    assert len(left) == 1 and left[0]["published_at"] is None
    assert left[0]["xmin"] == activated  # written by the activation's own transaction
    assert len(recorder.of(CHANGE)) == 1
    alert = AlertEvent.model_validate(body)
    assert alert.dedup_key is not None
    assert alert.dedup_key.startswith(f"strategy-change:activated:{strategy_id}:")
    assert f"Activated: #{strategy_id} BTCUSDT breakout." in alert.message
    assert [row["published_at"] is not None for row in await _changes_in_outbox(url)] == [True]


async def _wait_run_done(client: httpx.AsyncClient, run_id: int | None = None) -> dict[str, Any]:
    """The run (default: the oldest) once finished; it must have finished well."""
    deadline = asyncio.get_running_loop().time() + 120
    while True:
        path = "/api/v1/generations" + (f"/{run_id}" if run_id else "")
        answer = (await client.get(path)).json()
        run: dict[str, Any] | None = answer if run_id else (answer[-1] if answer else None)
        if run is not None and run["status"] != "running":
            assert run["status"] == "done", run
            return run
        assert asyncio.get_running_loop().time() < deadline, f"run not done: {answer}"
        await asyncio.sleep(0.3)


def candle(symbol: str, minute: datetime, open_: str, close: str) -> dict[str, Any]:
    low, high = sorted((Decimal(open_), Decimal(close)))
    return to_message(
        Kline(symbol, "1m", minute, minute + timedelta(seconds=59, microseconds=999000),
              Decimal(open_), high, low, Decimal(close), Decimal(1), Decimal(close), 1,
              Decimal(0), Decimal(0))
    )  # fmt: skip


async def store_candles(
    url: str, symbol: str, start: datetime, bars: list[tuple[int, str]]
) -> None:
    """Store flat (minute, close) candles of `symbol` (open, high and low at the close),
    minutes counted from `start`."""
    connection = await asyncpg.connect(url)
    try:
        await connection.executemany(
            "INSERT INTO candles (symbol, interval, open_time, open, high, low, close, volume) "
            "VALUES ($1, '1m', $2, $3, $3, $3, $3, 1)",
            [(symbol, start + timedelta(minutes=m), Decimal(close)) for m, close in bars],
        )  # fmt: skip
    finally:
        await connection.close()


async def activate_momentum(url: str, symbol: str, lookback: int, name: str | None = None) -> int:
    """An active momentum strategy (threshold 0) on `symbol`; its id."""
    rule = {"family": "momentum", "lookback": lookback, "threshold": 0.0}
    connection = await asyncpg.connect(url)
    try:
        strategy_id: int = await connection.fetchval(
            "INSERT INTO strategies (name, status, parameters, symbol, family) "
            "VALUES ($1, 'active', $2::jsonb, $3, 'momentum') RETURNING id",
            name or f"joins {symbol}", json.dumps({"symbol": symbol, "strategy": rule}), symbol,
        )  # fmt: skip
    finally:
        await connection.close()
    return strategy_id


async def momentum_after_a_fall(url: str, symbol: str, start: datetime, lookback: int = 1) -> int:
    """100 falling minutes of `symbol` from `start` (momentum(1 bar, 0) is flat at the end of
    them) and an active momentum strategy on it; the strategy's id."""
    connection = await asyncpg.connect(url)
    try:
        await connection.executemany(
            "INSERT INTO candles (symbol, interval, open_time, open, high, low, close, volume) "
            "VALUES ($1, '1m', $2, $3, $3, $4, $4, 1)",
            [(symbol, start + timedelta(minutes=i), Decimal(1000 - i), Decimal(999 - i))
             for i in range(100)],
        )  # fmt: skip
    finally:
        await connection.close()
    return await activate_momentum(url, symbol, lookback, name=f"live momentum on {symbol}")


@asynccontextmanager
async def live_strategies(
    env: dict[str, str], rabbitmq_url: str, symbol: str
) -> AsyncIterator[tuple[AbstractChannel, Recorder, httpx.AsyncClient]]:
    """The strategy service running, a channel to publish candles on, a recorder of the
    signals of `symbol`, and a client of the service."""
    async with (
        recording(rabbitmq_url) as (_, channel),
        running(build_app("strategy_service", env)) as client,
    ):
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(SIGNALS.name, f"signal.{symbol}")
        signals = Recorder()
        await queue.consume(signals.on_message)
        await wait_for_status(client, "/health", 200)
        yield channel, signals, client


async def filled(url: str, signal: dict[str, Any], quantity: str, status: str = "filled") -> None:
    """Store what the risk manager and the paper executor make of a signal: its decision
    (approved for `quantity`) and its order (`quantity` filled of it, nothing while open)."""
    done = status == "filled"
    ref, symbol, side = signal["signal_id"], signal["symbol"], signal["side"]
    amount, price = Decimal(quantity), Decimal(signal["price"])
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            "INSERT INTO risk_decisions (signal_id, environment, symbol, side, outcome, "
            "requested_quantity, approved_quantity, price, client_order_id) "
            "VALUES ($1, 'paper', $2, $3, 'approved', $4, $4, $5, $1)",
            ref, symbol, side, amount, price,
        )  # fmt: skip
        await connection.execute(
            "INSERT INTO orders (client_order_id, signal_ref, symbol, side, type, quantity, "
            "price, status, environment, filled_quantity) "
            "VALUES ($1, $1, $2, $3, 'market', $4, $5, $6, 'paper', $7)",
            ref, symbol, side, amount, price, status, amount if done else Decimal(0),
        )  # fmt: skip
    finally:
        await connection.close()


async def test_active_strategy_turns_candles_into_signals(
    trading_env: dict[str, str], rabbitmq_url: str
) -> None:
    """A buy asks for the notional at the close; a sell for what the strategy's own orders
    filled (not the notional at the new price), and nothing when it holds nothing."""
    symbol = "TESTSTRATUSDT"
    url = trading_env["DATABASE_URL"]
    start = NOW - timedelta(minutes=200)
    strategy_id = await momentum_after_a_fall(url, symbol, start)
    async with live_strategies(trading_env, rabbitmq_url, symbol) as (channel, signals, _):
        up = candle(symbol, start + timedelta(minutes=100), "900", "950")
        await publish_json(channel, MARKET_DATA.name, f"candle.1m.{symbol}", up)
        await publish_json(channel, MARKET_DATA.name, f"candle.1m.{symbol}", up)  # redelivered
        [buy] = await signals.wait_for(f"signal.{symbol}", 1, timeout=60)
        await filled(url, buy, "0.1")  # resized by the risk manager: less than asked
        down = candle(symbol, start + timedelta(minutes=101), "950", "940")
        await publish_json(channel, MARKET_DATA.name, f"candle.1m.{symbol}", down)
        sell = (await signals.wait_for(f"signal.{symbol}", 2, timeout=60))[1]
        await filled(url, sell, "0.1", status="submitted")  # not filled yet: still spoken for
        # candles this pod never saw (another replica took them): 102-104 fall then rise, so the
        # rule is long again after 104, and that replica's buy of 0.25 filled; 105 rises further
        # (no change), 106 falls (a sell of the 0.25)
        await store_candles(url, symbol, start, [(100, "950"), (101, "940"), (102, "930"),
                                                 (103, "920"), (104, "960")])  # fmt: skip
        minute_104 = int((start + timedelta(minutes=104)).timestamp()) // 60
        elsewhere = {"signal_id": signal_id(strategy_id, symbol, minute_104, "buy"),
                     "symbol": symbol, "side": "buy", "price": "960"}  # fmt: skip
        await filled(url, elsewhere, "0.25")
        later = candle(symbol, start + timedelta(minutes=105), "960", "970")
        await publish_json(channel, MARKET_DATA.name, f"candle.1m.{symbol}", later)
        fall = candle(symbol, start + timedelta(minutes=106), "970", "965")
        await publish_json(channel, MARKET_DATA.name, f"candle.1m.{symbol}", fall)
        published = await signals.wait_for(f"signal.{symbol}", 3, timeout=60)

    parsed = [Signal.model_validate(body) for body in published]  # risk_manager's parser
    assert [s.side for s in parsed] == ["buy", "sell", "sell"]
    buy_signal, first_sell, second_sell = parsed
    assert buy_signal.strategy_id == str(strategy_id) and buy_signal.symbol == symbol
    assert buy_signal.price == Decimal("950") and buy_signal.strength == Decimal(1)
    assert buy_signal.quantity == (Decimal(100) / Decimal(950)).quantize(
        Decimal("0.00000001"), "ROUND_DOWN"
    )
    assert (first_sell.price, first_sell.quantity) == (Decimal("940"), Decimal("0.1"))
    assert (second_sell.price, second_sell.quantity) == (Decimal("965"), Decimal("0.25"))
    assert second_sell.signal_id.startswith(f"st{strategy_id}-{symbol}-")
    assert len({s.signal_id for s in parsed}) == 3  # the redelivered candle made no second buy


async def test_a_change_on_candles_the_pod_did_not_see_is_signalled_once_it_reads_them(
    trading_env: dict[str, str], rabbitmq_url: str
) -> None:
    """A market data outage: candles 101 and 102 are backfilled (stored) while 103 comes live
    first. The rule turned flat on 101, so no edge is on 103; the strategy's latest signal was
    its buy, so the pod that reads the bars again sells at 103, with the id of 101's sell. The
    backfilled candles then published change nothing, and the next rise buys as usual."""
    symbol = "TESTCATCHUPUSDT"
    url = trading_env["DATABASE_URL"]
    start = NOW - timedelta(minutes=200)
    strategy_id = await momentum_after_a_fall(url, symbol, start)
    falls = [candle(symbol, start + timedelta(minutes=m), o, c)
             for m, o, c in ((101, "950", "940"), (102, "940", "930"))]  # fmt: skip
    async with live_strategies(trading_env, rabbitmq_url, symbol) as (channel, signals, _):
        up = candle(symbol, start + timedelta(minutes=100), "900", "950")
        await publish_json(channel, MARKET_DATA.name, f"candle.1m.{symbol}", up)
        [buy] = await signals.wait_for(f"signal.{symbol}", 1, timeout=60)
        await filled(url, buy, "0.1")
        await store_candles(url, symbol, start, [(100, "950"), (101, "940"), (102, "930")])
        live = candle(symbol, start + timedelta(minutes=103), "930", "920")
        await publish_json(channel, MARKET_DATA.name, f"candle.1m.{symbol}", live)
        for late in falls:
            await publish_json(channel, MARKET_DATA.name, f"candle.1m.{symbol}", late)
        rise = candle(symbol, start + timedelta(minutes=104), "920", "925")
        await publish_json(channel, MARKET_DATA.name, f"candle.1m.{symbol}", rise)
        published = await signals.wait_for(f"signal.{symbol}", 3, timeout=60)
    sides = [(s["side"], Decimal(s["price"]), Decimal(s["quantity"])) for s in published]
    # the id a pod seeing candle 101 live would have sent: the risk manager decides one of them
    minute_101 = int((start + timedelta(minutes=101)).timestamp()) // 60
    assert published[1]["signal_id"] == signal_id(strategy_id, symbol, minute_101, "sell")
    bought = Decimal(buy["quantity"])
    assert sides[:2] == [("buy", Decimal(950), bought), ("sell", Decimal(920), Decimal("0.1"))]
    assert sides[2][:2] == ("buy", Decimal(925))


async def message_count(channel: AbstractChannel, name: str) -> int:
    declared = await channel.declare_queue(name, passive=True)
    return int(declared.declaration_result.message_count or 0)


async def live_role(client: httpx.AsyncClient, role: str) -> None:
    """Wait until the pod's /health says it has `role` in the live decisions."""
    deadline = time.monotonic() + 30
    while (await client.get("/health")).json().get("live", {}).get("role") != role:
        assert time.monotonic() < deadline, f"the pod never became {role}"
        await asyncio.sleep(0.1)


async def test_one_pod_decides_the_candles_and_another_takes_over_when_it_goes(
    trading_env: dict[str, str], rabbitmq_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two pods (the seed scales strategy_service to 5): the one holding the live decisions'
    lock takes every candle, in the order they were published, so no symbol's signals go out
    of candle order; the other stands by. Stopped, the first hands over: the second decides the
    next candles, starting from the bars and signals stored."""
    monkeypatch.setattr(leadership, "STANDBY_SECONDS", 0.3)
    symbol = "TESTLEADUSDT"
    url = trading_env["DATABASE_URL"]
    start = NOW - timedelta(minutes=200)
    await momentum_after_a_fall(url, symbol, start)
    flat = [candle(symbol, start + timedelta(minutes=m), "900", "900") for m in range(100, 108)]
    first, second = AsyncExitStack(), AsyncExitStack()
    async with recording(rabbitmq_url) as (_, channel), first, second:
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(SIGNALS.name, f"signal.{symbol}")
        signals = Recorder()
        await queue.consume(signals.on_message)
        leader = await first.enter_async_context(running(build_app("strategy_service",
                                                                   trading_env)))  # fmt: skip
        await live_role(leader, "leader")
        standby = await second.enter_async_context(running(build_app("strategy_service",
                                                                     trading_env)))  # fmt: skip
        await live_role(standby, "standby")
        for message in flat:  # no edge: nothing is signalled, each candle is used
            await publish_json(channel, MARKET_DATA.name, f"candle.1m.{symbol}", message)
        await wait_counted(leader, len(flat))
        stood_by = await candles_counted(standby)
        await first.aclose()  # the leader's pod goes
        await live_role(standby, "leader")
        await store_candles(url, symbol, start, [(m, "900") for m in range(100, 108)])
        up = candle(symbol, start + timedelta(minutes=108), "900", "950")
        await publish_json(channel, MARKET_DATA.name, f"candle.1m.{symbol}", up)
        [buy] = await signals.wait_for(f"signal.{symbol}", 1, timeout=60)
        took_over = await candles_counted(standby)
    assert stood_by == 0
    assert took_over == 1
    assert (buy["side"], Decimal(buy["price"])) == ("buy", Decimal(950))


async def test_a_pod_that_steps_down_while_deciding_sends_nothing_and_hands_the_candle_back(
    trading_env: dict[str, str], rabbitmq_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The leader loses its lock while a candle with a buy in it is being decided: the buy is not
    sent (the next leader decides that candle, after those before it), and the candle is back in
    the queue once the pod has paused."""
    symbol = "TESTSTEPDOWNUSDT"
    start = NOW - timedelta(minutes=200)
    await momentum_after_a_fall(trading_env["DATABASE_URL"], symbol, start)
    reading, go_on = asyncio.Event(), asyncio.Event()
    bars_for = live_module.LiveTrader._bars_for

    async def slow_bars(self: live_module.LiveTrader, *args: Any) -> Any:
        reading.set()
        await go_on.wait()
        return await bars_for(self, *args)

    monkeypatch.setattr(live_module.LiveTrader, "_bars_for", slow_bars)
    app = build_app("strategy_service", trading_env)
    async with recording(rabbitmq_url) as (_, channel), running(app) as client:
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(SIGNALS.name, f"signal.{symbol}")
        signals = Recorder()
        await queue.consume(signals.on_message)
        await live_role(client, "leader")
        up = candle(symbol, start + timedelta(minutes=100), "900", "950")
        await publish_json(channel, MARKET_DATA.name, f"candle.1m.{symbol}", up)
        await asyncio.wait_for(reading.wait(), 30)
        app.state.trader.step_down()  # as the leadership does when the lock's connection fails
        candles = app.state.runtime.consumer(app_module.CANDLES_QUEUE)
        pausing = asyncio.create_task(candles.pause(10))
        go_on.set()
        await pausing
        await asyncio.sleep(0.5)  # time for a wrongly sent buy to arrive
        waiting = await message_count(channel, app_module.CANDLES_QUEUE)
        await candles.resume()
        await app.state.trader.take_over()  # the pod leads again: the candle is decided now
        [buy] = await signals.wait_for(f"signal.{symbol}", 1, timeout=30)
    assert waiting == 1
    assert (buy["side"], Decimal(buy["price"])) == ("buy", Decimal(950))


async def candles_counted(client: httpx.AsyncClient, outcome: str = "used") -> float:
    """The strategy service's count of candles with `outcome` (used, ignored, duplicate)."""
    metrics = (await client.get("/metrics")).text
    key = f'mastertrade_strategy_candles_total{{outcome="{outcome}"}}'
    found = [line for line in metrics.splitlines() if line.startswith(key)]
    return float(found[0].split()[-1]) if found else 0.0


async def wait_counted(client: httpx.AsyncClient, count: int, outcome: str = "used") -> None:
    deadline = asyncio.get_running_loop().time() + 30
    while await candles_counted(client, outcome) < count:
        assert asyncio.get_running_loop().time() < deadline, f"{count} candles not {outcome}"
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("behind", [False, True], ids=["in-step", "next-stored-first"])
async def test_bars_read_with_a_hole_are_read_again_once_the_backfill_stored_it(
    trading_env: dict[str, str], rabbitmq_url: str, monkeypatch: pytest.MonkeyPatch, behind: bool
) -> None:
    """Momentum over 2 bars. Candle 103 comes live while 101 and 102 are not stored yet; the
    backfill then stores them without publishing them. Deciding 104 on bars without them, the
    rule compares 104 with 100 and sells (wrongly); read again, it compares 104 with 102 and
    stays long, and the sell comes at 105's fall. `behind`: the service reads the bars again
    for 104 once 105 is stored too (a busy machine): 104 is late, and 105, read with the bars,
    must still be decided (it was taken for a redelivery, and the sell never came)."""
    monkeypatch.setattr(live_module, "HOLES_REREAD_SECONDS", 0.0)  # every candle checks
    symbol = "TESTHOLESUSDT"
    url = trading_env["DATABASE_URL"]
    start = NOW - timedelta(minutes=200)
    await momentum_after_a_fall(url, symbol, start, lookback=2)  # closes 999 down to 900
    async with live_strategies(trading_env, rabbitmq_url, symbol) as (channel, signals, client):
        for minute, close in ((100, "950"), (103, "960")):
            if minute == 103:
                [buy] = await signals.wait_for(f"signal.{symbol}", 1, timeout=60)
                await filled(url, buy, "0.1")
            await store_candles(url, symbol, start, [(minute, close)])
            bar = candle(symbol, start + timedelta(minutes=minute), close, close)
            await publish_json(channel, MARKET_DATA.name, f"candle.1m.{symbol}", bar)
        await wait_counted(client, 2)  # 103 decided on the bars with the hole
        await store_candles(url, symbol, start, [(101, "890"), (102, "880")])  # the backfill
        if behind:
            await store_candles(url, symbol, start, [(104, "940"), (105, "800")])
        for minute, close in ((104, "940"), (105, "800")):
            if not behind:
                await store_candles(url, symbol, start, [(minute, close)])
            bar = candle(symbol, start + timedelta(minutes=minute), close, close)
            await publish_json(channel, MARKET_DATA.name, f"candle.1m.{symbol}", bar)
        published = await signals.wait_for(f"signal.{symbol}", 2, timeout=60)
    assert [(s["side"], Decimal(s["price"])) for s in published] == [
        ("buy", Decimal(950)),
        ("sell", Decimal(800)),
    ]


async def test_a_hole_never_filled_is_counted_not_read_again_at_every_check(
    trading_env: dict[str, str], rabbitmq_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Minutes 101-102 never reach the database: each check counts the recent minutes stored
    and reads the bars again only once the count grows (the hole filled at last)."""
    monkeypatch.setattr(live_module, "HOLES_REREAD_SECONDS", 0.0)  # every candle checks
    reads: list[str] = []

    async def counted(pool: asyncpg.Pool, symbol: str, limit: int) -> Any:
        reads.append(symbol)
        return await recent_bars(pool, symbol, limit)

    monkeypatch.setattr(live_module, "recent_bars", counted)
    symbol = "TESTHOLEKEPTUSDT"
    url = trading_env["DATABASE_URL"]
    start = NOW - timedelta(minutes=200)
    await momentum_after_a_fall(url, symbol, start, lookback=2)
    async with live_strategies(trading_env, rabbitmq_url, symbol) as (channel, _, client):
        for count, (minute, close) in enumerate(((100, "950"), (103, "960"), (104, "970"),
                                                 (105, "980"), (106, "990")), start=1):  # fmt: skip
            await store_candles(url, symbol, start, [(minute, close)])
            bar = candle(symbol, start + timedelta(minutes=minute), close, close)
            await publish_json(channel, MARKET_DATA.name, f"candle.1m.{symbol}", bar)
            await wait_counted(client, count)
        assert reads.count(symbol) == 2  # the first candle, then 103 after the gap
        await store_candles(url, symbol, start, [(101, "955"), (102, "958"), (107, "995")])
        bar = candle(symbol, start + timedelta(minutes=107), "995", "995")
        await publish_json(channel, MARKET_DATA.name, f"candle.1m.{symbol}", bar)
        await wait_counted(client, 6)
    assert reads.count(symbol) == 3  # the hole filled: read again


async def test_a_strategy_retired_after_its_pod_read_the_active_set_sends_nothing(
    trading_env: dict[str, str], rabbitmq_url: str
) -> None:
    """The pod reads the active set every 30 s; a run retires the strategy meanwhile (and
    queues the sell of what it holds): the rise that would have bought sends nothing."""
    symbol = "TESTRETIREDUSDT"
    url = trading_env["DATABASE_URL"]
    start = NOW - timedelta(minutes=200)
    strategy_id = await momentum_after_a_fall(url, symbol, start)
    async with live_strategies(trading_env, rabbitmq_url, symbol) as (channel, signals, client):
        for minute, close in ((100, "899"), (101, "950"), (102, "951")):
            if minute == 101:  # the pod has read the active set, with the strategy in it
                await wait_counted(client, 1)
                await execute_sql(
                    url, "UPDATE strategies SET status = 'retired' WHERE id = $1", strategy_id
                )
            await store_candles(url, symbol, start, [(minute, close)])
            bar = candle(symbol, start + timedelta(minutes=minute), close, close)
            await publish_json(channel, MARKET_DATA.name, f"candle.1m.{symbol}", bar)
        await wait_counted(client, 1, "ignored")  # 102: the active set read again, without it
    assert signals.of(f"signal.{symbol}") == []


async def test_a_strategy_activated_while_its_rule_is_long_buys_at_its_first_candle(
    trading_env: dict[str, str], rabbitmq_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Strategy B (momentum over 3 bars) is activated while the pod trades A on the same
    symbol: its rule turned long on candle 100, before it traded, so its first candle (101, no
    change) buys, with the id 100 would have given it; A's decisions go on as before."""
    monkeypatch.setattr(live_module, "ACTIVE_REFRESH", 0.0)  # the active set read every candle
    symbol = "TESTJOINUSDT"
    url = trading_env["DATABASE_URL"]
    start = NOW - timedelta(minutes=200)
    await momentum_after_a_fall(url, symbol, start)
    async with live_strategies(trading_env, rabbitmq_url, symbol) as (channel, signals, client):
        for minute, close in ((100, "950"), (101, "960")):
            if minute == 101:
                await wait_counted(client, 1)
                joined = await activate_momentum(url, symbol, lookback=3)
            await store_candles(url, symbol, start, [(minute, close)])
            bar = candle(symbol, start + timedelta(minutes=minute), close, close)
            await publish_json(channel, MARKET_DATA.name, f"candle.1m.{symbol}", bar)
        published = await signals.wait_for(f"signal.{symbol}", 2, timeout=60)
    minute_100 = int((start + timedelta(minutes=100)).timestamp()) // 60
    assert [(s["strategy_id"], s["side"], Decimal(s["price"])) for s in published][1] == (
        str(joined),
        "buy",
        Decimal(960),
    )
    assert published[1]["signal_id"] == signal_id(joined, symbol, minute_100, "buy")


async def bought_at_100(
    channel: AbstractChannel,
    signals: Recorder,
    url: str,
    symbol: str,
    start: datetime,
    *,
    status: str = "filled",
) -> dict[str, Any]:
    """Candle 100 (stored, then published) turns momentum_after_a_fall's rule long: its buy,
    of 0.1, its order `status`."""
    await store_candles(url, symbol, start, [(100, "950")])
    up = candle(symbol, start + timedelta(minutes=100), "950", "950")
    await publish_json(channel, MARKET_DATA.name, f"candle.1m.{symbol}", up)
    [buy] = await signals.wait_for(f"signal.{symbol}", 1, timeout=60)
    await filled(url, buy, "0.1", status=status)
    return buy


@pytest.fixture
def no_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    """The service without its closing sweep: the test stores the sweep's sells by hand (one
    that ran after the test stored a refused exit would publish a sell of its own)."""

    async def idle(*_: object) -> None:
        return None

    monkeypatch.setattr(app_module, "run_closing_loop", idle)


async def bought_after_a_refused_exit(
    channel: AbstractChannel,
    signals: Recorder,
    url: str,
    strategy_id: int,
    start: datetime,
    *,
    symbol: str,
    status: str = "filled",
) -> dict[str, Any]:
    """The strategy held 0.3 and its exit at minute 50 was refused; the sweep tried that exit
    again, and the sell was decided after the rule's buy at 100 (`bought_at_100`): it sold
    the 0.3. The buy."""  # fmt: skip
    earlier = {"symbol": symbol, "price": "990"}
    await filled(url, {**earlier, "signal_id": signal_id(strategy_id, symbol, 40, "buy"),
                       "side": "buy"}, "0.3")  # fmt: skip
    earlier_exit = signal_id(strategy_id, symbol, 50, "sell")
    await filled(url, {**earlier, "signal_id": earlier_exit, "side": "sell"}, "0.3",
                 status="rejected")  # fmt: skip
    buy = await bought_at_100(channel, signals, url, symbol, start, status=status)
    tried_again = {"signal_id": signal_id(strategy_id, symbol,
                                          after(earlier_exit, "paper", "close"), "sell"),
                   "symbol": symbol, "side": "sell", "price": "950"}  # fmt: skip
    await filled(url, tried_again, "0.3")
    return buy


async def fill_order(url: str, client_order_id: str) -> None:
    await execute_sql(
        url,
        "UPDATE orders SET status = 'filled', filled_quantity = quantity "
        "WHERE client_order_id = $1",
        client_order_id,
    )


async def test_a_strategy_activated_again_while_long_buys_anew(
    trading_env: dict[str, str], rabbitmq_url: str
) -> None:
    """The strategy bought on candle 100, was retired (its holding sold) and activated again
    while its rule is still long: the pod reading its bars again buys, with an id of its own
    (100's buy is decided already, so sending it again would buy nothing)."""
    symbol = "TESTAGAINUSDT"
    url = trading_env["DATABASE_URL"]
    start = NOW - timedelta(minutes=200)
    strategy_id = await momentum_after_a_fall(url, symbol, start)
    async with live_strategies(trading_env, rabbitmq_url, symbol) as (channel, signals, _):
        buy = await bought_at_100(channel, signals, url, symbol, start)
        closing = after(buy["signal_id"], "paper", "close")  # what its retirement queued
        retired_sell = {"signal_id": signal_id(strategy_id, symbol, closing, "sell"),
                        "symbol": symbol, "side": "sell", "price": "950"}  # fmt: skip
        await filled(url, retired_sell, "0.1")  # retired, then activated again
        await store_candles(url, symbol, start, [(101, "960"), (102, "970")])
        later = candle(symbol, start + timedelta(minutes=102), "960", "970")  # 101 not seen
        await publish_json(channel, MARKET_DATA.name, f"candle.1m.{symbol}", later)
        [_, again] = await signals.wait_for(f"signal.{symbol}", 2, timeout=60)
    assert (again["side"], Decimal(again["price"])) == ("buy", Decimal(970))
    assert again["signal_id"] == signal_id(
        strategy_id, symbol, after(retired_sell["signal_id"], "paper"), "buy"
    )


@pytest.mark.usefixtures("no_sweep")
async def test_a_strategy_that_holds_is_in_though_a_closing_sell_came_last(
    trading_env: dict[str, str], rabbitmq_url: str
) -> None:
    """After `bought_after_a_refused_exit` the buy's 0.1 is held. The pod reading the bars
    again with the rule still long buys nothing more; the next exit sells the 0.1."""
    symbol = "TESTINUSDT"
    url = trading_env["DATABASE_URL"]
    start = NOW - timedelta(minutes=200)
    strategy_id = await momentum_after_a_fall(url, symbol, start)
    async with live_strategies(trading_env, rabbitmq_url, symbol) as (channel, signals, _):
        await bought_after_a_refused_exit(channel, signals, url, strategy_id, start, symbol=symbol)
        await store_candles(url, symbol, start, [(101, "960"), (102, "970")])
        later = candle(symbol, start + timedelta(minutes=102), "960", "970")  # 101 not seen
        await publish_json(channel, MARKET_DATA.name, f"candle.1m.{symbol}", later)
        fall = candle(symbol, start + timedelta(minutes=103), "970", "965")
        await publish_json(channel, MARKET_DATA.name, f"candle.1m.{symbol}", fall)
        [_, sell] = await signals.wait_for(f"signal.{symbol}", 2, timeout=60)
    assert (sell["side"], Decimal(sell["quantity"]), Decimal(sell["price"])) == (
        "sell",
        Decimal("0.1"),
        Decimal(965),
    )


@pytest.mark.usefixtures("no_sweep")
async def test_a_strategy_that_holds_sells_when_its_rule_went_out_on_candles_not_seen(
    trading_env: dict[str, str], rabbitmq_url: str
) -> None:
    """After `bought_after_a_refused_exit` the latest decided signal is the sweep's sell, yet
    the rule's buy of 0.1 is held: the rule going out on 102, a candle the pod did not see,
    sells it, with 102's id (a sell coming last is not the rule's exit)."""
    symbol = "TESTOUTUSDT"
    url = trading_env["DATABASE_URL"]
    start = NOW - timedelta(minutes=200)
    strategy_id = await momentum_after_a_fall(url, symbol, start)
    async with live_strategies(trading_env, rabbitmq_url, symbol) as (channel, signals, _):
        await bought_after_a_refused_exit(channel, signals, url, strategy_id, start, symbol=symbol)
        await store_candles(url, symbol, start,
                            [(101, "960"), (102, "955"), (103, "950")])  # fmt: skip
        later = candle(symbol, start + timedelta(minutes=103), "955", "950")  # 102 not seen
        await publish_json(channel, MARKET_DATA.name, f"candle.1m.{symbol}", later)
        [_, sell] = await signals.wait_for(f"signal.{symbol}", 2, timeout=60)
    minute_102 = int((start + timedelta(minutes=102)).timestamp()) // 60
    assert (sell["side"], Decimal(sell["quantity"]), Decimal(sell["price"])) == (
        "sell",
        Decimal("0.1"),
        Decimal(950),
    )
    assert sell["signal_id"] == signal_id(strategy_id, symbol, minute_102, "sell")


@pytest.mark.usefixtures("no_sweep")
async def test_a_strategy_whose_buy_may_still_fill_buys_no_more_though_a_closing_sell_came_last(
    trading_env: dict[str, str], rabbitmq_url: str
) -> None:
    """As `bought_after_a_refused_exit`, with the rule's buy at 100 not filled yet: the
    strategy holds nothing, yet is in. Reading the bars again with the rule long buys nothing
    more; once the buy filled, the exit sells it."""
    symbol = "TESTOPENUSDT"
    url = trading_env["DATABASE_URL"]
    start = NOW - timedelta(minutes=200)
    strategy_id = await momentum_after_a_fall(url, symbol, start)
    async with live_strategies(trading_env, rabbitmq_url, symbol) as (channel, signals, client):
        buy = await bought_after_a_refused_exit(
            channel, signals, url, strategy_id, start, symbol=symbol, status="submitted"
        )
        await store_candles(url, symbol, start, [(101, "960"), (102, "970")])
        later = candle(symbol, start + timedelta(minutes=102), "960", "970")  # 101 not seen
        for _ in range(2):  # the second one counted a duplicate once 102 was decided
            await publish_json(channel, MARKET_DATA.name, f"candle.1m.{symbol}", later)
        await wait_counted(client, 1, "duplicate")  # 102 decided with the buy still open
        await fill_order(url, buy["signal_id"])
        fall = candle(symbol, start + timedelta(minutes=103), "970", "965")
        await publish_json(channel, MARKET_DATA.name, f"candle.1m.{symbol}", fall)
        [_, sell] = await signals.wait_for(f"signal.{symbol}", 2, timeout=60)
    assert (sell["side"], Decimal(sell["quantity"])) == ("sell", Decimal("0.1"))


async def test_a_strategy_whose_exit_was_refused_buys_when_its_rule_is_long_again(
    trading_env: dict[str, str], rabbitmq_url: str
) -> None:
    """The exit at 101 was refused, so the strategy still holds the 0.1 of 100; the rule went
    long again on 102, a candle the pod did not see: reading the bars again, it buys (the
    rule's latest signal is that sell, so the sweep would otherwise sell the 0.1 while the
    rule is long, and the rule would hold nothing)."""
    symbol = "TESTREFUSEDUSDT"
    url = trading_env["DATABASE_URL"]
    start = NOW - timedelta(minutes=200)
    await momentum_after_a_fall(url, symbol, start)
    async with live_strategies(trading_env, rabbitmq_url, symbol) as (channel, signals, _):
        await bought_at_100(channel, signals, url, symbol, start)
        down = candle(symbol, start + timedelta(minutes=101), "950", "940")
        await publish_json(channel, MARKET_DATA.name, f"candle.1m.{symbol}", down)
        [_, exit_sell] = await signals.wait_for(f"signal.{symbol}", 2, timeout=60)
        await filled(url, exit_sell, "0.1", status="rejected")  # the executor refused it
        await store_candles(url, symbol, start,
                            [(101, "940"), (102, "960"), (103, "970")])  # fmt: skip
        later = candle(symbol, start + timedelta(minutes=103), "960", "970")  # 102 not seen
        await publish_json(channel, MARKET_DATA.name, f"candle.1m.{symbol}", later)
        [*_, again] = await signals.wait_for(f"signal.{symbol}", 3, timeout=60)
    assert (again["side"], Decimal(again["price"])) == ("buy", Decimal(970))


async def test_an_active_strategy_whose_parameters_make_no_rule_stops_no_other(
    trading_env: dict[str, str], rabbitmq_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """One active strategy's stored rule has a field this release does not know (stored by
    another release, or edited by hand): it signals nothing, said once, and the other active
    strategies trade on (its error must not fail every candle of every symbol)."""
    symbol, url = "TESTREADABLEUSDT", trading_env["DATABASE_URL"]
    start = NOW - timedelta(minutes=200)
    await momentum_after_a_fall(url, symbol, start)
    unknown = {"family": "momentum", "lookback": 1, "threshold": 0.0, "smoothing": 3}
    broken = await value_of(
        url, "INSERT INTO strategies (name, status, parameters, symbol, family) "
        "VALUES ('edited by hand', 'active', $1::jsonb, $2, 'momentum') RETURNING id",
        json.dumps({"symbol": symbol, "strategy": unknown}), symbol,
    )  # fmt: skip
    async with live_strategies(trading_env, rabbitmq_url, symbol) as (channel, signals, _):
        await store_candles(url, symbol, start, [(100, "950")])
        up = candle(symbol, start + timedelta(minutes=100), "900", "950")
        await publish_json(channel, MARKET_DATA.name, f"candle.1m.{symbol}", up)
        [buy] = await signals.wait_for(f"signal.{symbol}", 1, timeout=60)
    assert buy["side"] == "buy" and not buy["signal_id"].startswith(f"st{broken}-")
    told = [r.getMessage() for r in caplog.records if f"strategy {broken} is active" in
            r.getMessage()]  # fmt: skip
    assert len(told) == 1 and "retire it" in told[0], told


async def test_a_sell_of_nothing_held_is_not_signalled(
    trading_env: dict[str, str], rabbitmq_url: str
) -> None:
    """The buy was refused by the risk manager (no order): the exit sends nothing; the next
    entry buys again."""
    symbol = "TESTNOHOLDUSDT"
    start = NOW - timedelta(minutes=200)
    await momentum_after_a_fall(trading_env["DATABASE_URL"], symbol, start)
    async with live_strategies(trading_env, rabbitmq_url, symbol) as (channel, signals, _):
        for minute, open_, close in ((100, "900", "950"), (101, "950", "940"),
                                     (102, "940", "945")):  # fmt: skip
            bar = candle(symbol, start + timedelta(minutes=minute), open_, close)
            await publish_json(channel, MARKET_DATA.name, f"candle.1m.{symbol}", bar)
        published = await signals.wait_for(f"signal.{symbol}", 2, timeout=60)
    assert [(s["side"], s["price"]) for s in published] == [("buy", "950"), ("buy", "945")]


async def decided(url: str, signal: dict[str, Any], quantity: str, outcome: str) -> None:
    """Store the risk manager's decision of a signal and no order: refused, or approved while
    the executor is away."""
    rejected = outcome == "rejected"
    await execute_sql(
        url,
        "INSERT INTO risk_decisions (signal_id, environment, symbol, side, outcome, "
        "requested_quantity, approved_quantity, price, client_order_id) "
        "VALUES ($1, 'paper', $2, $3, $4, $5, $6, $7, $8)",
        signal["signal_id"], signal["symbol"], signal["side"], outcome, Decimal(quantity),
        Decimal(0 if rejected else quantity), Decimal(signal["price"]),
        None if rejected else signal["signal_id"],
    )  # fmt: skip


@pytest.mark.usefixtures("no_sweep")
async def test_an_exit_sells_nothing_an_approved_sell_is_already_selling(
    trading_env: dict[str, str], rabbitmq_url: str
) -> None:
    """Bought 0.1 at 100; its exit at 101 approved while the executor is away (not an order
    yet); its buy at 102 refused (the breaker open: only sells pass). Out again at 103: the 0.1
    is being sold already, and a second sell would sell another strategy's coins of the symbol:
    nothing is sent. The exit waits for that sell: the executor, back, refuses it (too old),
    and at the next candle the 0.1 is sold."""
    symbol, url = "TESTSELLINGUSDT", trading_env["DATABASE_URL"]
    start = NOW - timedelta(minutes=200)
    strategy = await momentum_after_a_fall(url, symbol, start)
    await store_candles(url, symbol, start, [(100, "950"), (101, "940"), (102, "960")])

    def rule_signal(minute: int, side: Side, price: str) -> dict[str, Any]:
        moment = int((start + timedelta(minutes=minute)).timestamp()) // 60
        return {"signal_id": signal_id(strategy, symbol, moment, side), "symbol": symbol,
                "side": side, "price": price}  # fmt: skip

    await filled(url, rule_signal(100, "buy", "950"), "0.1")
    first_exit = rule_signal(101, "sell", "940")
    await decided(url, first_exit, "0.1", "approved")
    await decided(url, rule_signal(102, "buy", "960"), "0.1", "rejected")
    async with live_strategies(trading_env, rabbitmq_url, symbol) as (channel, signals, client):
        await store_candles(url, symbol, start, [(103, "950")])
        out = candle(symbol, start + timedelta(minutes=103), "960", "950")
        await publish_json(channel, MARKET_DATA.name, f"candle.1m.{symbol}", out)
        await wait_counted(client, 1)
        await asyncio.sleep(1.0)  # what the candle made is published by now
        published = signals.of(f"signal.{symbol}")
        await execute_sql(
            url, "INSERT INTO orders (client_order_id, signal_ref, symbol, side, type, quantity, "
            "price, status, environment, filled_quantity, reason) VALUES ($1, $1, $2, 'sell', "
            "'market', 0.1, 940, 'rejected', 'paper', 0, 'approval too old')",
            first_exit["signal_id"], symbol,
        )  # fmt: skip
        await store_candles(url, symbol, start, [(104, "945")])
        still_out = candle(symbol, start + timedelta(minutes=104), "950", "945")
        await publish_json(channel, MARKET_DATA.name, f"candle.1m.{symbol}", still_out)
        [sold] = await signals.wait_for(f"signal.{symbol}", 1, timeout=60)
        await asyncio.sleep(1.0)  # a sell candle 103 sent late would be here too by now
        every = signals.of(f"signal.{symbol}")
    assert published == [] and every == [sold]
    assert (sold["side"], Decimal(sold["quantity"])) == ("sell", Decimal("0.1"))


async def test_a_strategy_on_a_pair_not_quoted_in_the_account_s_asset_sells_and_never_buys(
    trading_env: dict[str, str], rabbitmq_url: str
) -> None:
    """Active on a BTC pair (activated before generation left such pairs out), in a USDT
    account: its buy is not sent (the executor would reject it, and alert, at every entry); a
    sell of what an older version bought for it still is. A USDT pair's strategy goes on."""
    cross, quoted = "TESTCROSSBTC", "TESTQUOTEDUSDT"
    url = trading_env["DATABASE_URL"]
    start = NOW - timedelta(minutes=200)
    cross_id = await momentum_after_a_fall(url, cross, start)
    await momentum_after_a_fall(url, quoted, start)

    async def publish_minute(channel: AbstractChannel, minute: int, open_: str, close: str) -> None:
        for symbol in (cross, quoted):  # the cross pair's candle is handled first
            bar = candle(symbol, start + timedelta(minutes=minute), open_, close)
            await publish_json(channel, MARKET_DATA.name, f"candle.1m.{symbol}", bar)

    async with live_strategies(trading_env, rabbitmq_url, quoted) as (channel, signals, _):
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(SIGNALS.name, f"signal.{cross}")
        await queue.consume(signals.on_message)
        await publish_minute(channel, 100, "900", "950")
        [buy] = await signals.wait_for(f"signal.{quoted}", 1, timeout=60)
        await filled(url, buy, buy["quantity"])
        minute_100 = int((start + timedelta(minutes=100)).timestamp()) // 60
        older = {"signal_id": signal_id(cross_id, cross, minute_100, "buy"), "symbol": cross,
                 "side": "buy", "price": "950"}  # fmt: skip
        await filled(url, older, "0.5")
        await publish_minute(channel, 101, "950", "940")
        await signals.wait_for(f"signal.{quoted}", 2, timeout=60)
        [sell] = await signals.wait_for(f"signal.{cross}", 1, timeout=60)
    assert [s["side"] for s in signals.of(f"signal.{quoted}")] == ["buy", "sell"]
    assert (sell["side"], Decimal(sell["quantity"])) == ("sell", Decimal("0.5"))
    assert [s["side"] for s in signals.of(f"signal.{cross}")] == ["sell"]


async def test_an_exit_before_its_buy_filled_sells_once_the_buy_filled(
    trading_env: dict[str, str], rabbitmq_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A backlog decides candles milliseconds apart: the exit on 101 comes before the buy of
    100 filled, and finds nothing held. Once the buy filled, the next candle (the rule still
    flat) sells what it bought, with the id 101's exit would have had, and only once."""
    symbol = "TESTEXITWAITUSDT"
    url = trading_env["DATABASE_URL"]
    start = NOW - timedelta(minutes=200)
    strategy_id = await momentum_after_a_fall(url, symbol, start)
    caplog.set_level(logging.INFO, "mastertrade.strategy.live")
    async with live_strategies(trading_env, rabbitmq_url, symbol) as (channel, signals, _):
        for minute, open_, close in ((100, "900", "950"), (101, "950", "940")):
            bar = candle(symbol, start + timedelta(minutes=minute), open_, close)
            await publish_json(channel, MARKET_DATA.name, f"candle.1m.{symbol}", bar)
        [buy] = await signals.wait_for(f"signal.{symbol}", 1, timeout=60)
        deadline = time.monotonic() + 30
        while f"strategy {strategy_id}: no sell at 940" not in caplog.text:
            assert time.monotonic() < deadline, "the exit on 101 was not decided"
            await asyncio.sleep(0.05)
        await filled(url, buy, "0.1")
        # 102 and 103 fall on (the rule stays flat), 104 rises (it buys again)
        for minute, open_, close in ((102, "940", "930"), (103, "930", "925"), (104, "925", "935")):
            bar = candle(symbol, start + timedelta(minutes=minute), open_, close)
            await publish_json(channel, MARKET_DATA.name, f"candle.1m.{symbol}", bar)
        published = await signals.wait_for(f"signal.{symbol}", 3, timeout=60)
    minute_101 = int((start + timedelta(minutes=101)).timestamp()) // 60
    sell, again = published[1], published[2]
    assert sell["signal_id"] == signal_id(strategy_id, symbol, minute_101, "sell")
    assert (sell["side"], Decimal(sell["quantity"]), Decimal(sell["price"])) == (
        "sell", Decimal("0.1"), Decimal(930)
    )  # fmt: skip
    assert (again["side"], Decimal(again["price"])) == ("buy", Decimal(935))  # sold once


async def test_a_signal_whose_publish_fails_is_published_once_the_broker_answers(
    trading_env: dict[str, str], rabbitmq_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker drops the connection as the buy leaves: the candle is held (not dead-lettered,
    not taken for a duplicate when it comes back) and the buy goes out when the broker answers;
    lost, no later candle would signal it (the rule is long by then)."""
    symbol = "TESTRETRYUSDT"
    start = NOW - timedelta(minutes=200)
    await momentum_after_a_fall(trading_env["DATABASE_URL"], symbol, start)
    failures = [AMQPConnectionError("connection reset by peer")]
    real_publish = publish_json  # what live.py publishes with

    async def flaky_publish(*args: Any) -> None:
        if failures:
            raise failures.pop()
        await real_publish(*args)

    monkeypatch.setattr(live_module, "publish_json", flaky_publish)
    async with live_strategies(trading_env, rabbitmq_url, symbol) as (channel, signals, _):
        up = candle(symbol, start + timedelta(minutes=100), "900", "950")
        await publish_json(channel, MARKET_DATA.name, f"candle.1m.{symbol}", up)
        [buy] = await signals.wait_for(f"signal.{symbol}", 1, timeout=30)
    assert not failures  # the first publish did fail
    assert (buy["side"], Decimal(buy["price"])) == ("buy", Decimal(950))


async def test_indexed_job_pods_compute_their_own_shard_once(
    candles_url: str, pool: asyncpg.Pool
) -> None:
    settings = settings_for(candles_url)
    assert job_shard({"JOB_COMPLETION_INDEX": "2"}) == 2 and job_shard({}) is None
    with pytest.raises(ValueError, match="JOB_COMPLETION_INDEX"):
        job_shard({"JOB_COMPLETION_INDEX": "two"})
    assert await run_shard(settings, 2) == 1  # starts the day's run, stores shard 2
    assert await run_shard(settings, 2) == 0  # a second pod with index 2 finds it done
    shards = {r["shard"]: r["status"] for r in await pool.fetch("SELECT * FROM generation_shards")}
    assert shards == {0: "pending", 1: "pending", 2: "done", 3: "pending"}
    assert await run_shard(settings, None) == 3  # the service's pod works the rest
    found = await counts(pool)
    assert found["runs"] == 1
    assert found["strategies"] == found["distinct_candidates"] == found["backtests"] == 40
    assert await pool.fetchval("SELECT status FROM generation_runs") == "done"


def test_strategy_shard_command_as_a_job_pod_runs(candles_url: str) -> None:
    """`mastertrade strategy-shard` as a real process: a bad index is a usage error (exit 2);
    index 1 starts the day's run and stores that shard only (exit 0)."""
    mastertrade = str(Path(sys.executable).with_name("mastertrade"))
    env = {**os.environ, **SMALL_RUN, "DATABASE_URL": candles_url, "LOG_FORMAT": "console"}

    def run(index: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [mastertrade, "strategy-shard"], env={**env, "JOB_COMPLETION_INDEX": index},
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip

    bad = run("one")
    assert bad.returncode == 2 and "JOB_COMPLETION_INDEX" in bad.stderr
    good = run("1")
    assert good.returncode == 0, good.stderr

    async def shards() -> dict[int, str]:
        connection = await asyncpg.connect(candles_url)
        try:
            rows = await connection.fetch("SELECT shard, status FROM generation_shards")
        finally:
            await connection.close()
        return {row["shard"]: row["status"] for row in rows}

    assert asyncio.run(shards()) == {0: "pending", 1: "done", 2: "pending", 3: "pending"}
