"""Sentiment, pure: the answers of Twitter's recent search, Reddit's listings and LunarCrush's
coin list turned into observations.

Twitter and Reddit give posts; a poll's new posts about a subject become three observations:
`posts` (how many), `engagement` (likes, retweets, replies and quotes; or score and comments)
and `sentiment`, a word-list score in [-1, 1]: (bullish words - bearish words) / (all such
words), 0 when there are none. It is a deliberately simple, reproducible measure; the counts
beside it let a strategy weigh it. LunarCrush computes its own scores; they are stored as given.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from mastertrade.market_data.domain.events import MalformedEventError
from mastertrade.market_data.domain.observations import (
    Observation,
    Source,
    epoch_seconds,
    iso_time,
    number,
    observation,
)

BULLISH = frozenset({
    "bull", "bullish", "buy", "buying", "long", "moon", "mooning", "pump", "pumping", "rally",
    "breakout", "ath", "up", "green", "gain", "gains", "profit", "surge", "soar", "soaring",
    "strong", "hodl", "accumulate", "adoption", "undervalued",
})  # fmt: skip
BEARISH = frozenset({
    "bear", "bearish", "sell", "selling", "short", "dump", "dumping", "crash", "crashing",
    "drop", "down", "red", "loss", "losses", "fear", "panic", "weak", "scam", "rekt",
    "liquidated", "overvalued", "bubble", "capitulation",
})  # fmt: skip
WORD = re.compile(r"[a-z]+")
SCORE_PLACES = Decimal("0.0001")
LUNARCRUSH_METRICS = ("galaxy_score", "alt_rank", "sentiment", "social_dominance",
                      "interactions_24h", "social_volume_24h")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Post:
    """A tweet or a Reddit post: its id, its text, when, and how much people engaged."""

    id: str
    text: str
    created_at: datetime
    engagement: Decimal


def word_score(texts: Iterable[str]) -> Decimal:
    """(bullish - bearish) / (bullish + bearish) over every word of `texts`, in [-1, 1]."""
    up = down = 0
    for text in texts:
        for word in WORD.findall(text.lower()):
            up += word in BULLISH
            down += word in BEARISH
    if up + down == 0:
        return Decimal(0)
    return (Decimal(up - down) / Decimal(up + down)).quantize(SCORE_PLACES)


def summarize(
    source: Source, subject: str, at: datetime, posts: Sequence[Post]
) -> list[Observation]:
    """A poll's new posts about `subject` as posts, engagement and sentiment at `at`."""
    engagement = sum((post.engagement for post in posts), Decimal(0))
    return [
        observation(source, subject, "posts", at, len(posts)),
        observation(source, subject, "engagement", at, engagement),
        observation(source, subject, "sentiment", at, word_score(p.text for p in posts)),
    ]


def _object(raw: object, name: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise MalformedEventError(f"{name}: expected a JSON object")
    return raw


def _list(raw: object, name: str) -> list[Any]:
    if not isinstance(raw, list):
        raise MalformedEventError(f"{name}: expected a JSON array")
    return raw


def _text(raw: object, name: str, limit: int = 100_000) -> str:
    if not isinstance(raw, str) or len(raw) > limit:
        raise MalformedEventError(f"{name}: expected a string")
    return raw


@dataclass(frozen=True, slots=True)
class TweetPage:
    """One page of a recent search: its tweets, the newest id and the next page's token."""

    posts: list[Post]
    newest_id: str | None
    next_token: str | None


def parse_tweets(body: object) -> TweetPage:
    """`GET /2/tweets/search/recent` (tweet.fields=created_at,public_metrics)."""
    page = _object(body, "recent search")
    meta = _object(page.get("meta", {}), "meta")
    posts = []
    for raw in _list(page.get("data", []), "data"):
        tweet = _object(raw, "tweet")
        tweet_id = _text(tweet.get("id"), "tweet id", 30)
        counts = _object(tweet.get("public_metrics", {}), f"tweet {tweet_id} public_metrics")
        engaged = sum(
            (number(counts.get(k, 0), f"tweet {tweet_id} {k}")
             for k in ("like_count", "retweet_count", "reply_count", "quote_count")),
            Decimal(0),
        )  # fmt: skip
        created = iso_time(tweet.get("created_at"), f"tweet {tweet_id} created_at")
        posts.append(Post(tweet_id, _text(tweet.get("text", ""), "text"), created, engaged))
    newest = meta.get("newest_id")
    token = meta.get("next_token")
    return TweetPage(
        posts,
        _text(newest, "meta.newest_id", 30) if newest is not None else None,
        _text(token, "meta.next_token", 200) if token is not None else None,
    )


def parse_reddit_listing(body: object) -> list[Post]:
    """`GET /r/<subreddit>/new`: a Listing of t3 (link) things, newest first."""
    listing = _object(body, "listing")
    if listing.get("kind") != "Listing":
        raise MalformedEventError("listing: kind is not Listing")
    posts = []
    for raw in _list(_object(listing.get("data"), "listing data").get("children"), "children"):
        thing = _object(_object(raw, "child").get("data"), "child data")
        name = _text(thing.get("name"), "post name", 30)  # the fullname, e.g. t3_abc123
        engaged = number(thing.get("score", 0), f"{name} score") + number(
            thing.get("num_comments", 0), f"{name} num_comments"
        )
        title = _text(thing.get("title", ""), f"{name} title")
        text = f"{title} {_text(thing.get('selftext', ''), f'{name} selftext')}"
        created = epoch_seconds(thing.get("created_utc"), f"{name} created_utc")
        posts.append(Post(name, text, created, max(engaged, Decimal(0))))
    return posts


def parse_lunarcrush_coins(body: object, assets: Sequence[str], at: datetime) -> list[Observation]:
    """`GET /api4/public/coins/list/v1`: each wanted asset's scores as LunarCrush gives them
    (a metric it leaves out or sends as null is skipped)."""
    rows = _list(_object(body, "coins list").get("data"), "data")
    wanted = {asset.upper() for asset in assets}
    found = []
    for raw in rows:
        coin = _object(raw, "coin")
        symbol = str(coin.get("symbol", "")).upper()
        if symbol not in wanted:
            continue
        for metric in LUNARCRUSH_METRICS:
            if coin.get(metric) is not None:
                found.append(observation("lunarcrush", symbol, metric, at, coin[metric]))
    return found
