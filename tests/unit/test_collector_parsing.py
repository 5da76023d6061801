"""The sentiment and on-chain collectors' pure side: the providers' answers become exact, bounded
observations or a clear refusal; a 429's wait is read from each provider's own headers; the
backoff grows to its ceiling and no further."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from email.utils import format_datetime

import pytest

from mastertrade.market_data.domain.events import MalformedEventError
from mastertrade.market_data.domain.observations import parse_json, routing_key, to_message
from mastertrade.market_data.domain.onchain import (
    parse_glassnode_series,
    parse_moralis_transfers,
    summarize_transfers,
)
from mastertrade.market_data.domain.polling import backoff_seconds, retry_after_seconds
from mastertrade.market_data.domain.sentiment import (
    parse_lunarcrush_coins,
    parse_reddit_listing,
    parse_tweets,
    summarize,
    word_score,
)

AT = datetime(2025, 1, 1, 12, tzinfo=UTC)


def test_json_numbers_arrive_exactly_and_nan_is_refused() -> None:
    assert parse_json('{"v": 0.1, "w": 12345678901234.123456789}') == {
        "v": Decimal("0.1"), "w": Decimal("12345678901234.123456789")
    }  # fmt: skip
    for bad in ('{"v": NaN}', '{"v": Infinity}', "[-Infinity]", "{not json", ""):
        with pytest.raises(MalformedEventError):
            parse_json(bad)


def test_the_word_score_is_bullish_minus_bearish_over_all_such_words() -> None:
    assert word_score(["BTC to the moon, bullish!", "nothing here"]) == Decimal(1)
    assert word_score(["bullish", "crash and dump"]) == Decimal("-0.3333")
    assert word_score(["no opinion at all"]) == Decimal(0)
    assert word_score([]) == Decimal(0)


def test_a_tweet_page_becomes_posts_engagement_and_sentiment() -> None:
    body = parse_json(
        '{"data": [{"id": "20", "text": "bullish on #BTC",'
        ' "created_at": "2025-01-01T11:59:00.000Z",'
        ' "public_metrics": {"like_count": 3, "retweet_count": 2, "reply_count": 1,'
        ' "quote_count": 0}}], "meta": {"newest_id": "20", "result_count": 1, "next_token": "x"}}'
    )
    page = parse_tweets(body)
    assert (page.newest_id, page.next_token) == ("20", "x")
    rows = {row.metric: row.value for row in summarize("twitter", "BTC", AT, page.posts)}
    assert rows == {"posts": 1, "engagement": 6, "sentiment": 1}
    assert parse_tweets(parse_json('{"meta": {"result_count": 0}}')).posts == []
    with pytest.raises(MalformedEventError, match="created_at"):
        parse_tweets({"data": [{"id": "1", "text": "x", "created_at": "yesterday"}]})


def test_a_reddit_listing_and_its_refusals() -> None:
    listing = {"kind": "Listing", "data": {"children": [{"kind": "t3", "data": {
        "name": "t3_a", "title": "Sell now", "selftext": "", "score": 10, "num_comments": 5,
        "created_utc": Decimal("1735732800.0")}}]}}  # fmt: skip
    (post,) = parse_reddit_listing(listing)
    assert (post.id, post.engagement, post.created_at) == ("t3_a", Decimal(15), AT)
    with pytest.raises(MalformedEventError, match="Listing"):
        parse_reddit_listing({"kind": "t3", "data": {}})
    with pytest.raises(MalformedEventError, match="not between 2000 and 2200"):
        listing["data"]["children"][0]["data"]["created_utc"] = 10  # type: ignore[index]
        parse_reddit_listing(listing)


def test_lunarcrush_scores_of_the_wanted_assets_only() -> None:
    body = parse_json(
        '{"data": [{"symbol": "BTC", "galaxy_score": 72.5, "alt_rank": 3, "sentiment": 81,'
        ' "social_dominance": 21.123456789, "interactions_24h": null},'
        ' {"symbol": "DOGE", "galaxy_score": 50}]}'
    )
    rows = {(r.subject, r.metric): r.value for r in parse_lunarcrush_coins(body, ["BTC"], AT)}
    assert rows == {("BTC", "galaxy_score"): Decimal("72.5"), ("BTC", "alt_rank"): 3,
                    ("BTC", "sentiment"): 81,
                    ("BTC", "social_dominance"): Decimal("21.123456789")}  # fmt: skip
    with pytest.raises(MalformedEventError, match="out of bounds"):
        parse_lunarcrush_coins({"data": [{"symbol": "BTC", "galaxy_score": 10**16}]}, ["BTC"], AT)


def test_glassnode_points_are_exact_and_nulls_are_skipped() -> None:
    body = parse_json('[{"t": 1735689600, "v": 812345.5}, {"t": 1735776000, "v": null}]')
    (row,) = parse_glassnode_series(body, "BTC", "addresses/active_count")
    assert (row.observed_at, row.value) == (datetime(2025, 1, 1, tzinfo=UTC), Decimal("812345.5"))
    assert routing_key(row) == "onchain.glassnode.BTC"
    assert to_message(row)["value"] == "812345.5"
    with pytest.raises(MalformedEventError, match="array"):
        parse_glassnode_series({"error": "x"}, "BTC", "m/x")


def test_moralis_raw_values_are_scaled_by_the_tokens_decimals_exactly() -> None:
    transfer = {"transaction_hash": "0xabc", "block_number": "100", "log_index": 7,
                "block_timestamp": "2025-01-01T11:00:00.000Z",
                "value": "1234567890123456789012", "token_decimals": "18"}  # fmt: skip
    page = parse_moralis_transfers({"cursor": None, "result": [transfer]})
    assert page.transfers[0].amount == Decimal("1234.567890123456789012")
    assert page.transfers[0].key == (100, 7)
    rows = {
        r.metric: r.value for r in summarize_transfers("0xt", AT, page.transfers, Decimal(1000))
    }
    assert rows == {"transfers": 1, "transfer_volume": Decimal("1234.567890123456789012"),
                    "largest_transfer": Decimal("1234.567890123456789012"),
                    "whale_transfers": 1}  # fmt: skip
    with pytest.raises(MalformedEventError, match="out of bounds"):
        parse_moralis_transfers({"result": [{**transfer, "value": "1" + "0" * 40}]})
    with pytest.raises(MalformedEventError, match="value"):
        parse_moralis_transfers({"result": [{**transfer, "value": "-5"}]})


def test_each_providers_rate_limit_headers_give_the_wait() -> None:
    now = 1_735_689_600.0
    assert retry_after_seconds({"Retry-After": "7"}, now) == 7
    date = format_datetime(datetime.fromtimestamp(now + 30, tz=UTC), usegmt=True)
    assert retry_after_seconds({"retry-after": date}, now) == 30
    assert retry_after_seconds({"x-rate-limit-reset": str(int(now) + 90)}, now) == 90  # Twitter
    assert retry_after_seconds({"X-Ratelimit-Reset": "120"}, now) == 120  # Reddit
    assert retry_after_seconds({}, now) == 60
    assert retry_after_seconds({"Retry-After": "soon"}, now) == 60


def test_the_backoff_doubles_to_its_ceiling_with_jitter_between_half_and_all() -> None:
    assert [backoff_seconds(n, 900, 1.0) for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert backoff_seconds(50, 900, 1.0) == 900
    assert backoff_seconds(3, 900, 0.0) == 10  # jitter never below half
