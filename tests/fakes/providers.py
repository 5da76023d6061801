"""A local server speaking the five sentiment and on-chain APIs' protocols, for tests (127.0.0.1).

- Twitter/X API v2 `GET /2/tweets/search/recent`: bearer token; `query` (the tweets of the asset
  whose `#ASSET` it names), `max_results` 10..100, `since_id`, `next_token`; answers
  `{"data": [...], "meta": {"newest_id", "oldest_id", "result_count", "next_token"}}`, and
  `{"meta": {"result_count": 0}}` when nothing matches; 401 as a problem JSON.
- Reddit: `POST /api/v1/access_token` (HTTP Basic client id:secret, `grant_type=
  client_credentials`) gives `{"access_token", "token_type": "bearer", "expires_in", "scope"}`;
  `GET /r/<sub>/new` with `Authorization: bearer <token>` gives a Listing of t3 things, newest
  first. Tokens can be revoked (the next request answers 401).
- LunarCrush v4 `GET /api4/public/coins/list/v1` (bearer key): `{"config": {...}, "data": [...]}`.
- Glassnode `GET /v1/metrics/<category>/<metric>?a&i&s` (`X-Api-Key` or `api_key`):
  `[{"t", "v"}, ...]` from `s` on.
- Moralis `GET /api/v2.2/erc20/<address>/transfers?chain&limit&order&cursor` (`X-API-Key`):
  `{"page", "page_size", "cursor", "result": [...]}`, newest first.

`force(api, status, body, headers)` queues a raw answer (a 429 with its headers, malformed JSON,
a 500) that the API gives before its normal ones. Numbers in bodies are written as the test
gives them (JSON decimals), so tests can check they arrive exactly.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TWITTER_TOKEN = "twitter-bearer-token-0123456789"
REDDIT_ID = "reddit-client-id"
REDDIT_SECRET = "reddit-client-secret-0123456789"
LUNARCRUSH_KEY = "lunarcrush-key-0123456789"
GLASSNODE_KEY = "glassnode-key-0123456789"
MORALIS_KEY = "moralis-key-0123456789"


@dataclass
class Forced:
    status: int
    body: str
    headers: dict[str, str]


@dataclass
class FakeProviders:
    """State and controls of the fake; `start()` serves it on a free loopback port."""

    tweets: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # asset -> tweets
    reddit_posts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    coins: list[dict[str, Any]] = field(default_factory=list)
    glassnode: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    transfers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # newest first
    forced: dict[str, list[Forced]] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    reddit_tokens: set[str] = field(default_factory=set)
    tokens_issued: int = 0
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """Settings pointing every collector here with valid credentials."""
        return {
            "TWITTER_BEARER_TOKEN": TWITTER_TOKEN, "TWITTER_API_URL": self.url,
            "REDDIT_CLIENT_ID": REDDIT_ID, "REDDIT_CLIENT_SECRET": REDDIT_SECRET,
            "REDDIT_AUTH_URL": self.url, "REDDIT_API_URL": self.url,
            "LUNARCRUSH_API_KEY": LUNARCRUSH_KEY, "LUNARCRUSH_API_URL": self.url,
            "GLASSNODE_API_KEY": GLASSNODE_KEY, "GLASSNODE_API_URL": self.url,
            "MORALIS_API_KEY": MORALIS_KEY, "MORALIS_API_URL": self.url,
        }  # fmt: skip

    def force(self, api: str, status: int, body: str = "", **headers: str) -> None:
        self.forced.setdefault(api, []).append(Forced(status, body, headers))

    def calls(self, api: str) -> list[dict[str, str]]:
        return [query for name, _, query in self.requests if name == api]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/2/tweets/search/recent", self._twitter)
        app.router.add_post("/api/v1/access_token", self._reddit_token)
        app.router.add_get("/r/{subreddit}/new", self._reddit_new)
        app.router.add_get("/api4/public/coins/list/v1", self._lunarcrush)
        app.router.add_get("/v1/metrics/{category}/{metric}", self._glassnode)
        app.router.add_get("/api/v2.2/erc20/{address}/transfers", self._moralis)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _enter(self, api: str, request: web.Request) -> web.Response | None:
        self.requests.append((api, request.path, dict(request.query)))
        queue = self.forced.get(api)
        if queue:
            answer = queue.pop(0)
            return web.Response(status=answer.status, text=answer.body, headers=answer.headers,
                                content_type="application/json")  # fmt: skip
        return None

    @staticmethod
    def _json(
        body: object, status: int = 200, headers: dict[str, str] | None = None
    ) -> web.Response:
        return web.Response(text=json.dumps(body), status=status, headers=headers,
                            content_type="application/json")  # fmt: skip

    # --- Twitter ------------------------------------------------------------------------------

    async def _twitter(self, request: web.Request) -> web.Response:
        if (forced := self._enter("twitter", request)) is not None:
            return forced
        if request.headers.get("Authorization") != f"Bearer {TWITTER_TOKEN}":
            return self._json({"title": "Unauthorized", "type": "about:blank", "status": 401,
                               "detail": "Unauthorized"}, 401)  # fmt: skip
        query = request.query.get("query", "")
        size = int(request.query.get("max_results", "10"))
        if not query or not 10 <= size <= 100:
            return self._json({"errors": [{"message": "bad query or max_results"}],
                               "title": "Invalid Request"}, 400)  # fmt: skip
        matching = [t for asset, ts in self.tweets.items() if f"#{asset}" in query for t in ts]
        since = int(request.query.get("since_id", "0"))
        found = sorted((t for t in matching if int(t["id"]) > since), key=lambda t: -int(t["id"]))
        offset = int(request.query.get("next_token", "0"))
        page = found[offset : offset + size]
        if not page:
            return self._json({"meta": {"result_count": 0}})
        meta: dict[str, Any] = {"newest_id": page[0]["id"], "oldest_id": page[-1]["id"],
                                "result_count": len(page)}  # fmt: skip
        if offset + size < len(found):
            meta["next_token"] = str(offset + size)
        return self._json({"data": page, "meta": meta}, headers={"x-rate-limit-remaining": "59"})

    # --- Reddit -------------------------------------------------------------------------------

    async def _reddit_token(self, request: web.Request) -> web.Response:
        if (forced := self._enter("reddit_token", request)) is not None:
            return forced
        expected = base64.b64encode(f"{REDDIT_ID}:{REDDIT_SECRET}".encode()).decode()
        form = await request.post()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return self._json({"message": "Unauthorized", "error": 401}, 401)
        if form.get("grant_type") != "client_credentials":
            return self._json({"error": "unsupported_grant_type"}, 400)
        self.tokens_issued += 1
        token = f"reddit-token-{self.tokens_issued}"
        self.reddit_tokens.add(token)
        return self._json({"access_token": token, "token_type": "bearer", "expires_in": 86400,
                           "scope": "*"})  # fmt: skip

    async def _reddit_new(self, request: web.Request) -> web.Response:
        if (forced := self._enter("reddit", request)) is not None:
            return forced
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token not in self.reddit_tokens:
            return self._json({"message": "Unauthorized", "error": 401}, 401)
        posts = self.reddit_posts.get(request.match_info["subreddit"], [])
        limit = int(request.query.get("limit", "25"))
        children = [{"kind": "t3", "data": post} for post in posts[:limit]]
        return self._json(
            {"kind": "Listing", "data": {"after": None, "dist": len(children),
                                         "children": children, "before": None}},
            headers={"x-ratelimit-remaining": "99.0", "x-ratelimit-used": "1",
                     "x-ratelimit-reset": "300"},
        )  # fmt: skip

    def revoke_reddit_tokens(self) -> None:
        self.reddit_tokens.clear()

    # --- LunarCrush, Glassnode, Moralis -------------------------------------------------------

    async def _lunarcrush(self, request: web.Request) -> web.Response:
        if (forced := self._enter("lunarcrush", request)) is not None:
            return forced
        if request.headers.get("Authorization") != f"Bearer {LUNARCRUSH_KEY}":
            return self._json({"error": "Invalid or missing API key"}, 401)
        return self._json({"config": {"generated": 1735689600}, "data": self.coins})

    async def _glassnode(self, request: web.Request) -> web.Response:
        if (forced := self._enter("glassnode", request)) is not None:
            return forced
        key = request.headers.get("X-Api-Key") or request.query.get("api_key")
        if key != GLASSNODE_KEY:
            return web.Response(status=401, text="unauthorized")
        metric = f"{request.match_info['category']}/{request.match_info['metric']}"
        since = int(request.query.get("s", "0"))
        points = self.glassnode.get((metric, request.query.get("a", "")), [])
        return self._json([point for point in points if point["t"] >= since])

    async def _moralis(self, request: web.Request) -> web.Response:
        if (forced := self._enter("moralis", request)) is not None:
            return forced
        if request.headers.get("X-API-Key") != MORALIS_KEY:
            return self._json({"message": "Token is invalid format"}, 401)
        if "chain" not in request.query:
            return self._json({"message": "chain is required"}, 400)
        found = self.transfers.get(request.match_info["address"].lower(), [])
        limit = int(request.query.get("limit", "100"))
        offset = int(request.query.get("cursor", "0"))
        page = found[offset : offset + limit]
        cursor = str(offset + limit) if offset + limit < len(found) else None
        return self._json({"page": offset // limit, "page_size": limit, "cursor": cursor,
                           "result": page})  # fmt: skip
