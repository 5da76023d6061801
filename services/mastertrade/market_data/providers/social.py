"""The sentiment collectors: Twitter/X API v2 recent search, Reddit, LunarCrush.

- Twitter: `GET /2/tweets/search/recent` with `Authorization: Bearer <TWITTER_BEARER_TOKEN>`,
  one query per asset (`#BTC OR $BTC -is:retweet`), `since_id` the newest tweet already counted;
  later polls follow `next_token` through every new page (up to `max_pages`).
- Reddit: OAuth client credentials (`POST /api/v1/access_token` on www.reddit.com with HTTP
  Basic auth of REDDIT_CLIENT_ID:REDDIT_CLIENT_SECRET, `grant_type=client_credentials`), then
  `GET /r/<subreddit>/new` on oauth.reddit.com with `Authorization: bearer <token>`; the token is
  renewed before it expires and once more if a request answers 401.
- LunarCrush: `GET /api4/public/coins/list/v1` with `Authorization: Bearer <LUNARCRUSH_API_KEY>`.

Each `poll` returns a batch whose cursors move only when the batch has been stored (`commit`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from mastertrade.market_data.domain.events import MalformedEventError
from mastertrade.market_data.domain.observations import Observation, number
from mastertrade.market_data.domain.sentiment import (
    Post,
    parse_lunarcrush_coins,
    parse_reddit_listing,
    parse_tweets,
    summarize,
)
from mastertrade.market_data.providers.batch import Batch
from mastertrade.market_data.providers.http import ProviderHttp, UnauthorizedError

SEARCH_PATH = "/2/tweets/search/recent"
TOKEN_PATH = "/api/v1/access_token"
COINS_PATH = "/api4/public/coins/list/v1"
TOKEN_MARGIN_SECONDS = 60.0


def twitter_query(asset: str) -> str:
    return f"(#{asset} OR ${asset}) -is:retweet"


class Twitter:
    """New tweets about each asset since the last poll."""

    name = "twitter"

    def __init__(self, http: ProviderHttp, token: str, assets: Sequence[str], max_pages: int = 10):
        self.http = http
        self.headers = {"Authorization": f"Bearer {token}"}
        self.assets = tuple(assets)
        self.max_pages = max_pages
        self.since: dict[str, str] = {}

    async def poll(self, at: datetime) -> Batch:
        rows: list[Observation] = []
        newest: dict[str, str] = {}
        for asset in self.assets:
            posts, latest = await self._search(asset)
            rows += summarize("twitter", asset, at, posts)
            if latest is not None:
                newest[asset] = latest
        return Batch(rows, lambda: self.since.update(newest))

    async def _search(self, asset: str) -> tuple[list[Post], str | None]:
        params: dict[str, str | int] = {"query": twitter_query(asset), "max_results": 100,
                                        "tweet.fields": "created_at,public_metrics"}  # fmt: skip
        if asset in self.since:
            params["since_id"] = self.since[asset]
        posts: list[Post] = []
        latest = None
        for _ in range(self.max_pages):
            page = parse_tweets(await self.http.request("GET", SEARCH_PATH, params=params,
                                                        headers=self.headers))  # fmt: skip
            posts += page.posts
            latest = latest or page.newest_id
            # the first poll counts one page (the latest 100); later ones every new tweet
            if page.next_token is None or asset not in self.since:
                break
            params["next_token"] = page.next_token
        return posts, latest


class Reddit:
    """New posts of each subreddit since the last poll, through an app-only OAuth token."""

    name = "reddit"

    def __init__(
        self,
        auth_http: ProviderHttp,
        api_http: ProviderHttp,
        credentials: tuple[str, str],
        subreddits: Sequence[str],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.auth_http = auth_http
        self.http = api_http
        self.credentials = credentials
        self.subreddits = tuple(subreddits)
        self.clock = clock
        self.token: str | None = None
        self.expires = 0.0
        self.seen: dict[str, datetime] = {}

    async def _access_token(self) -> str:
        if self.token is not None and self.clock() < self.expires:
            return self.token
        body = await self.auth_http.request(
            "POST", TOKEN_PATH, data={"grant_type": "client_credentials"}, auth=self.credentials
        )
        token, lifetime = _token_of(body)
        self.token, self.expires = token, self.clock() + max(0.0, lifetime - TOKEN_MARGIN_SECONDS)
        return token

    async def _listing(self, subreddit: str) -> Any:
        path = f"/r/{subreddit}/new"
        for attempt in (1, 2):
            headers = {"Authorization": f"bearer {await self._access_token()}"}
            try:
                return await self.http.request("GET", path, params={"limit": 100, "raw_json": 1},
                                               headers=headers)  # fmt: skip
            except UnauthorizedError:
                self.token = None  # revoked or expired early: one new token, then give up
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def poll(self, at: datetime) -> Batch:
        rows: list[Observation] = []
        newest: dict[str, datetime] = {}
        for subreddit in self.subreddits:
            posts = parse_reddit_listing(await self._listing(subreddit))
            since = self.seen.get(subreddit)
            fresh = [post for post in posts if since is None or post.created_at > since]
            rows += summarize("reddit", f"r/{subreddit}", at, fresh)
            if fresh:
                newest[subreddit] = max(post.created_at for post in fresh)
        return Batch(rows, lambda: self.seen.update(newest))


def _token_of(body: Any) -> tuple[str, float]:
    """Reddit's `{"access_token", "token_type": "bearer", "expires_in", "scope"}`."""
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
        error = body.get("error") if isinstance(body, dict) else None
        raise UnauthorizedError(f"reddit gave no access token ({str(error)[:60] or 'no reason'})")
    if str(body.get("token_type", "")).lower() != "bearer":
        raise MalformedEventError("reddit token: token_type is not bearer")
    return body["access_token"], float(number(body.get("expires_in", 3600), "expires_in"))


class LunarCrush:
    """LunarCrush's current scores of each asset."""

    name = "lunarcrush"

    def __init__(self, http: ProviderHttp, key: str, assets: Sequence[str]) -> None:
        self.http = http
        self.headers = {"Authorization": f"Bearer {key}"}
        self.assets = tuple(assets)

    async def poll(self, at: datetime) -> Batch:
        body = await self.http.request("GET", COINS_PATH, headers=self.headers)
        return Batch(parse_lunarcrush_coins(body, self.assets, at), lambda: None)
