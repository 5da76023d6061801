"""api_gateway on real Redis in front of real HTTP servers: routes by catalog name, keys and
scopes, per-key rate limits, body limits, request ids, and 502/503/504 when a service is down."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import StreamingResponse

from mastertrade.catalog import find_service, load_service_module, load_service_settings
from mastertrade.core.server import build_server
from mastertrade.gateway.health import HEALTH_FRESH_SECONDS
from mastertrade.gateway.keys import digest_of
from mastertrade.gateway.ratelimit import RateLimiter, batch_for
from tests.infra import free_port

pytestmark = pytest.mark.infra

READ, TRADE, ADMIN = (f"{word}-{uuid.uuid4().hex}" for word in ("read", "trade", "admin"))


def echo_app() -> FastAPI:
    """A stand-in service: tells what it received; /slow answers after 2 s; counts the health
    checks it answers (`app.state.health_checks`)."""
    app = FastAPI()
    app.state.health_checks = 0

    @app.api_route("/echo", methods=["GET", "POST", "DELETE"])
    @app.api_route("/api/v1/admin/echo", methods=["GET", "POST"])
    async def echo(request: Request) -> dict[str, Any]:
        body = await request.body()
        return {"method": request.method, "headers": dict(request.headers), "size": len(body),
                "query": request.url.query,
                "forwarded_for": request.headers.getlist("x-forwarded-for")}  # fmt: skip

    @app.get("/slow")
    async def slow() -> dict[str, str]:
        await asyncio.sleep(2)
        return {"status": "late"}

    @app.get("/health")
    async def health() -> dict[str, str]:
        app.state.health_checks += 1
        return {"status": "healthy"}

    @app.api_route("/cookies", methods=["GET", "HEAD"])
    async def cookies() -> Response:
        answer = Response(b"{}", media_type="application/json")
        answer.raw_headers.append((b"set-cookie", b"a=1; Path=/"))
        answer.raw_headers.append((b"set-cookie", b"b=2; Path=/"))
        return answer

    @app.get("/big")
    async def big() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for number in range(40):  # 2.5 MiB of unknown length: streamed, not buffered
                yield bytes([number]) * 65_536

        return StreamingResponse(chunks(), media_type="application/octet-stream")

    return app


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the server did not start"
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def service_app(name: str, env: dict[str, str]) -> FastAPI:
    spec = find_service(name)
    module = load_service_module(spec)
    return module.create_app(load_service_settings(spec, env))


@asynccontextmanager
async def gateway(env: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway in-process, seen from a client address of its own (limits are per caller)."""
    app = service_app("api-gateway", env)
    address = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


@pytest.fixture
async def upstreams(service_env: dict[str, str]) -> AsyncIterator[dict[str, str]]:
    """data_access_api for real, a stand-in echo service, one down, one missing."""
    async with serving(service_app("data-access-api", service_env)) as data_api, serving(
        echo_app()
    ) as echo:  # fmt: skip
        yield {
            **service_env,
            "DATA_ACCESS_API_URL": data_api,
            "STRATEGY_SERVICE_URL": echo,
            "ORDER_EXECUTOR_URL": echo,
            "RISK_MANAGER_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens: down
            "GATEWAY_API_KEYS": f"reader:read:{READ},trader:trade:sha256:{digest_of(TRADE)}",
            "GATEWAY_UPSTREAM_TIMEOUT": "0.5",
            "GATEWAY_ANONYMOUS_RATE_LIMIT": "1000",
        }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_routes_by_catalog_name_and_carries_the_request_id(
    upstreams: dict[str, str],
) -> None:
    async with gateway(upstreams) as client:
        candles = await client.get(
            "/api/data-access-api/api/v1/candles/BTCUSDT", params={"limit": 2},
            headers={"X-Request-ID": "trace-42"},
        )  # fmt: skip
        assert candles.status_code == 200, candles.text
        assert set(candles.json()) == {"data", "count", "next_cursor"}
        assert candles.headers["x-request-id"] == "trace-42"
        echo = await client.get("/api/strategy_service/echo?a=1&a=2", headers={"X-API-Key": READ})
        seen = echo.json()
        assert seen["query"] == "a=1&a=2"
        assert seen["headers"]["x-request-id"] == echo.headers["x-request-id"]
        assert len(seen["headers"]["x-request-id"]) == 32  # made by the gateway
        assert "x-api-key" not in seen["headers"] and "authorization" not in seen["headers"]
        assert seen["headers"]["x-forwarded-for"].startswith("10.")
        # a caller's X-Forwarded-For is extended, once, never passed on beside the gateway's;
        # what its Connection header names stays on its hop
        relayed = await client.get(
            "/api/strategy_service/echo",
            headers={
                "X-Forwarded-For": "1.2.3.4",
                "Connection": "keep-alive, X-Hop",
                "X-Hop": "secret",
            },
        )
        [forwarded] = relayed.json()["forwarded_for"]
        assert forwarded.startswith("1.2.3.4, 10.")
        assert "x-hop" not in relayed.json()["headers"]


async def test_keys_and_scopes_guard_every_change_of_state(upstreams: dict[str, str]) -> None:
    async with gateway(upstreams) as client:
        post = "/api/strategy-service/echo"
        assert (await client.get("/api/strategy-service/echo")).status_code == 200
        anonymous = await client.post(post, json={"a": 1})
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"] == "Bearer"
        assert (await client.post(post, headers=bearer("x" * 40))).status_code == 401
        reader = await client.post(post, headers=bearer(READ))
        assert reader.status_code == 403
        assert "scope read; this needs trade" in reader.json()["detail"]
        trader = await client.post(post, headers=bearer(TRADE), content=b"x" * 100)
        assert trader.status_code == 200
        assert trader.json()["method"] == "POST" and trader.json()["size"] == 100
        assert (await client.delete(post, headers={"X-API-Key": TRADE})).status_code == 200
        assert (await client.get("/api/v1/keys", headers=bearer(TRADE))).status_code == 403
    keys = f"{upstreams['GATEWAY_API_KEYS']},boss:admin:{ADMIN}"
    strict = {**upstreams, "GATEWAY_REQUIRE_KEY_FOR_READS": "true", "GATEWAY_API_KEYS": keys}
    async with gateway(strict) as client:
        assert (await client.get("/api/strategy-service/echo")).status_code == 401
        assert (await client.get("/api/strategy-service/echo", headers=bearer(READ))).is_success
        listed = await client.get("/api/v1/keys", headers=bearer(ADMIN))
        assert listed.json() == [{"name": "boss", "scope": "admin"},
                                 {"name": "reader", "scope": "read"},
                                 {"name": "trader", "scope": "trade"}]  # fmt: skip


async def test_admin_routes_need_an_admin_key_which_the_service_then_sees(
    upstreams: dict[str, str],
) -> None:
    keys = f"{upstreams['GATEWAY_API_KEYS']},boss:admin:{ADMIN}"
    async with gateway({**upstreams, "GATEWAY_API_KEYS": keys}) as client:
        path = "/api/strategy-service/api/v1/admin/echo"
        assert (await client.post(path)).status_code == 401
        assert (await client.get(path)).status_code == 401  # even a read of an admin route
        trader = await client.post(path, headers=bearer(TRADE))
        assert trader.status_code == 403
        assert "scope trade; this needs admin" in trader.json()["detail"]
        sneaky = await client.post(
            "/api/strategy-service/api//v1/./admin/echo", headers=bearer(TRADE)
        )
        assert sneaky.status_code == 403
        boss = await client.post(path, headers=bearer(ADMIN))
        assert boss.status_code == 200
        # the service checks the admin token again itself: it gets the caller's Authorization
        assert boss.json()["headers"]["authorization"] == f"Bearer {ADMIN}"
        elsewhere = await client.post("/api/strategy-service/echo", headers=bearer(ADMIN))
        assert "authorization" not in elsewhere.json()["headers"]


async def test_a_path_the_service_would_read_otherwise_is_not_forwarded(
    upstreams: dict[str, str],
) -> None:
    """`%2561dmin` is decoded once here to `%61dmin` (not an admin segment) and would reach the
    service as `admin`; `%3F` and `%23` would become a query and a fragment there, and a `..`
    segment would take the segment before it away. Refused with
    400 saying why, whatever the key; the plain admin path still needs the admin scope."""
    async with gateway(upstreams) as client:
        double = await client.post("/api/strategy-service/api/v1/%2561dmin/echo",
                                   headers=bearer(TRADE))  # fmt: skip
        query = await client.get("/api/strategy-service/echo%3Fx=1")
        fragment = await client.get("/api/strategy-service/echo%23x")
        # decoded to `api/v2/x/../alerts`, which the upstream's URL reads as a receiver's path
        dots = await client.post("/api/alert-system/api/v2/x/%2e%2e/alerts", json=[],
                                 headers=bearer(TRADE))  # fmt: skip
        plain = await client.post("/api/strategy-service/api/v1/admin/echo", headers=bearer(TRADE))
    assert [answer.status_code for answer in (double, query, fragment, dots)] == [400] * 4
    assert "'%'" in double.json()["detail"] and "'?'" in query.json()["detail"]
    assert "'#'" in fragment.json()["detail"] and "'..'" in dots.json()["detail"]
    assert plain.status_code == 403


async def test_only_an_admin_key_may_post_to_the_alert_systems_receivers(
    upstreams: dict[str, str],
) -> None:
    """What Prometheus posts there is sent to people's phones: a trade key may not."""
    keys = f"{upstreams['GATEWAY_API_KEYS']},boss:admin:{ADMIN}"
    async with gateway({**upstreams, "GATEWAY_API_KEYS": keys}) as client:
        for path in ("api/v2/alerts", "api//v1/./alertmanager"):
            trader = await client.post(f"/api/alert-system/{path}", json=[],
                                       headers=bearer(TRADE))  # fmt: skip
            boss = await client.post(f"/api/alert-system/{path}", json=[], headers=bearer(ADMIN))
            assert trader.status_code == 403, path
            assert "this needs admin" in trader.json()["detail"]
            assert boss.status_code == 503  # let through; no alert system in this test
        history = await client.get("/api/alert-system/api/v1/alerts")
    assert history.status_code == 503  # reads are not held back


async def test_rate_limits_are_per_key(upstreams: dict[str, str]) -> None:
    # counters are per key name and shared by every gateway on the Redis: names of this test
    first, other = (f"{word}-{uuid.uuid4().hex}" for word in ("first", "other"))
    env = {**upstreams, "GATEWAY_RATE_LIMIT": "3", "GATEWAY_ANONYMOUS_RATE_LIMIT": "2",
           "GATEWAY_API_KEYS": f"{first}:read:{first},{other}:read:{other}"}  # fmt: skip
    async with gateway(env) as client:
        path = "/api/strategy-service/echo"
        answers = [await client.get(path, headers=bearer(first)) for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["2", "1", "0", "0"]
        assert 1 <= int(answers[-1].headers["retry-after"]) <= 60
        assert (await client.get(path, headers=bearer(other))).status_code == 200
        anonymous = [(await client.get(path)).status_code for _ in range(3)]
        assert anonymous == [200, 200, 429]


async def test_a_forwarded_for_header_does_not_make_a_new_anonymous_caller(
    upstreams: dict[str, str],
) -> None:
    """The anonymous limit is per peer: a caller on loopback (any local process, a `kubectl
    port-forward`) writing a new X-Forwarded-For each time is still the one caller."""
    env = {**upstreams, "GATEWAY_ANONYMOUS_RATE_LIMIT": "2"}
    app = service_app("api-gateway", env)
    port = free_port()
    server = build_server(app, "127.0.0.1", port)
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the gateway did not start"
        await asyncio.sleep(0.05)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            statuses = []
            for _ in range(3):
                forged = {"X-Forwarded-For": f"203.0.113.{uuid.uuid4().int % 250}"}
                answer = await client.get("/api/strategy-service/echo", headers=forged)
                statuses.append(answer.status_code)
    finally:
        server.should_exit = True
        await task
    assert 429 in statuses, statuses  # the third at the latest (earlier ones count too)


async def test_guesses_at_a_key_are_held_to_the_anonymous_limit(upstreams: dict[str, str]) -> None:
    """A 401 counts against the caller's address as an anonymous request does: past the limit,
    guesses at a key (on a proxied route or the gateway's own) get 429, not another try."""
    env = {**upstreams, "GATEWAY_ANONYMOUS_RATE_LIMIT": "3"}
    async with gateway(env) as client:
        guesses = [
            await client.get("/api/strategy-service/echo", headers=bearer(uuid.uuid4().hex))
            for _ in range(4)
        ]
        keys = await client.get("/api/v1/keys", headers=bearer(uuid.uuid4().hex))
        known = await client.get("/api/strategy-service/echo", headers=bearer(READ))
    assert [g.status_code for g in guesses] == [401, 401, 401, 429]
    assert 1 <= int(guesses[-1].headers["retry-after"]) <= 60
    assert keys.status_code == 429
    assert known.status_code == 200  # a known key has its own limit


async def test_body_size_is_limited(upstreams: dict[str, str]) -> None:
    async with gateway({**upstreams, "GATEWAY_MAX_BODY_BYTES": "1000"}) as client:
        path = "/api/strategy-service/echo"
        assert (await client.post(path, headers=bearer(TRADE), content=b"x" * 1000)).is_success
        big = await client.post(path, headers=bearer(TRADE), content=b"x" * 1001)
        assert big.status_code == 413
        assert "larger than 1000 bytes" in big.json()["detail"]

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
            for _ in range(5):
                yield b"y" * 400

        streamed = await client.post(path, headers=bearer(TRADE), content=chunks())
        assert streamed.status_code == 413


async def test_a_service_down_slow_or_missing_gets_a_clear_answer(
    upstreams: dict[str, str],
) -> None:
    async with gateway(upstreams) as client:
        down = await client.get("/api/risk-manager/api/v1/limits")
        assert down.status_code == 502
        assert "risk-manager refused the connection or is down" in down.json()["detail"]
        slow = await client.get("/api/order-executor/slow")
        assert slow.status_code == 504
        assert "order-executor did not answer in time" in slow.json()["detail"]
        missing = await client.get("/api/market-data-service/api/v1/candles/BTCUSDT")
        assert missing.status_code == 503
        assert "set MARKET_DATA_SERVICE_URL" in missing.json()["detail"]
        unknown = await client.get("/api/trading-bot/x")
        assert unknown.status_code == 404
        assert "data-access-api" in unknown.json()["detail"]
        health = await client.get("/api/v1/health")
        assert health.status_code == 503
        body = health.json()
        assert body["status"] == "degraded"
        assert body["services"]["data_access_api"]["status"] == "healthy"
        assert body["services"]["risk_manager"]["status"] == "unreachable"
        assert "market_data_service" in body["not_configured"]
        assert (await client.get("/health")).status_code == 200  # the gateway itself is fine
        assert (await client.get("/api/strategy-service/echo")).status_code == 200


async def test_callers_of_the_health_listings_share_one_round_of_checks(
    service_env: dict[str, str],
) -> None:
    """Fifty anonymous callers at once cost each service one health check, as do callers within
    the next 2 s; the first caller after that starts a new round."""
    echo = echo_app()
    async with serving(echo) as url:
        env = {**service_env, "ORDER_EXECUTOR_URL": url, "GATEWAY_ANONYMOUS_RATE_LIMIT": "1000"}
        async with gateway(env) as client:
            paths = ["/api/v1/services", "/api/v1/health"] * 25
            burst = await asyncio.gather(*(client.get(path) for path in paths))
            checks_after_burst = echo.state.health_checks
            soon = await client.get("/api/v1/services")
            checks_soon = echo.state.health_checks
            await asyncio.sleep(HEALTH_FRESH_SECONDS + 0.1)
            later = await client.get("/api/v1/services")
    assert {answer.status_code for answer in burst} == {200}
    assert all(a.json()["order_executor"]["status"] == "healthy" for a in burst[::2])
    assert (checks_after_burst, checks_soon, echo.state.health_checks) == (1, 1, 2)
    assert soon.json() == later.json() == burst[0].json()


async def test_answers_are_relayed_exactly_and_no_cookie_crosses_callers(
    upstreams: dict[str, str],
) -> None:
    async with gateway(upstreams) as client:
        cookies = await client.get("/api/strategy-service/cookies")
        assert cookies.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; Path=/"]
        client.cookies.clear()  # this test client keeps cookies; the gateway must not
        after = (await client.get("/api/strategy-service/echo")).json()
        assert "cookie" not in after["headers"]
        big = await client.get("/api/strategy-service/big")
        assert big.status_code == 200
        assert big.content == b"".join(bytes([n]) * 65_536 for n in range(40))
        head = await client.head("/api/strategy-service/cookies")
        assert (head.status_code, head.headers["content-length"], head.content) == (200, "2", b"")


async def test_requests_beyond_the_connection_cap_wait_then_get_a_503(
    upstreams: dict[str, str],
) -> None:
    env = {**upstreams, "GATEWAY_MAX_CONNECTIONS": "1", "GATEWAY_UPSTREAM_TIMEOUT": "10",
           "DEPENDENCY_TIMEOUT": "1"}  # fmt: skip
    app = service_app("api-gateway", env)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("10.9.9.9", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            slow = asyncio.create_task(client.get("/api/order-executor/slow"))
            slots = app.state.gateway.pool.slots
            while not slots.locked():  # the slow request holds the only connection
                assert not slow.done(), slow.result().text
                await asyncio.sleep(0.01)
            busy = await client.get("/api/strategy-service/echo")
            assert busy.status_code == 503
            assert "every connection to it is busy" in busy.json()["detail"]
            assert busy.headers["retry-after"] == "1"
            assert (await slow).status_code == 200
            assert (await client.get("/api/strategy-service/echo")).status_code == 200


async def test_replicas_together_never_pass_a_callers_limit(service_env: dict[str, str]) -> None:
    # two gateways on one Redis: each reserves requests in batches (5 for a limit of 100)
    client = aioredis.from_url(service_env["REDIS_URL"])
    caller = f"key:shared-{uuid.uuid4().hex}"
    try:
        replicas = [RateLimiter(client, window=3600), RateLimiter(client, window=3600)]
        decisions = [await replicas[n % 2].hit(caller, 100) for n in range(160)]
        allowed = sum(d.allowed for d in decisions)
        # at most the limit; short of it by no more than the other replica's unspent batch
        assert 100 - (batch_for(100) - 1) <= allowed <= 100
        assert not any(d.allowed for d in decisions[110:])
        alone = RateLimiter(client, window=3600)
        solo = [await alone.hit(f"{caller}-solo", 100) for _ in range(101)]
        assert [d.remaining for d in solo[:100]] == list(range(99, -1, -1))
        assert [d.allowed for d in solo] == [True] * 100 + [False]
    finally:
        await client.aclose()


async def test_proxied_requests_keep_the_apps_metrics_and_error_answers(
    upstreams: dict[str, str],
) -> None:
    async with gateway(upstreams) as client:
        assert (await client.get("/api/strategy-service/echo")).status_code == 200
        scraped = (await client.get("/metrics")).text
        # counted under the route's template, never the raw path (a bounded label set)
        assert 'route="/api/{service}/{path:path}",service="api_gateway",status="200"' in scraped
        assert "/api/strategy-service/echo" not in scraped
        # /api/v1/ is the gateway's own: an unknown route there is still no service named v1
        unknown = await client.get("/api/v1/nothing")
        assert unknown.status_code == 404 and "'v1'" in unknown.json()["detail"]
        assert (await client.request("TRACE", "/api/strategy-service/echo")).status_code == 405
    redis_down = {**upstreams, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    async with gateway(redis_down) as client:
        refused = await client.get("/api/strategy-service/echo")
        assert refused.status_code == 503  # the rate limit cannot be counted: not a 500
        assert "unavailable" in refused.json()["detail"]
        assert refused.headers["x-request-id"]
