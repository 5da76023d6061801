"""Observations of the sentiment and on-chain collectors, pure: the row, its checks, its bus shape.

An observation is one number a provider told us about one subject at one time: Glassnode's
active addresses of BTC on a day, the tweets about ETH since the last poll, a subreddit's
sentiment, a token's whale transfers. Values are exact `Decimal`s from the JSON as written
(`parse_json` reads floats as decimals and refuses NaN/Infinity), finite and within the
platform's bound. On the market data exchange an observation travels as
`<kind>.<source>.<subject>` (e.g. `sentiment.twitter.BTC`, `onchain.glassnode.BTC`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from mastertrade.core.amounts import AmountError, check_finite_amount
from mastertrade.market_data.domain.events import MalformedEventError, check_digits, in_utc

Source = Literal["twitter", "reddit", "lunarcrush", "glassnode", "moralis"]
Kind = Literal["sentiment", "onchain"]
KIND_OF: dict[Source, Kind] = {
    "twitter": "sentiment", "reddit": "sentiment", "lunarcrush": "sentiment",
    "glassnode": "onchain", "moralis": "onchain",
}  # fmt: skip
NOT_ROUTABLE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True, slots=True)
class Observation:
    """One number about one subject at one time, from one provider."""

    source: Source
    subject: str
    metric: str
    observed_at: datetime
    value: Decimal

    @property
    def kind(self) -> Kind:
        return KIND_OF[self.source]


def _refuse_constant(name: str) -> Any:
    raise MalformedEventError(f"JSON carries {name}, which is not a number")


def parse_json(text: str | bytes) -> Any:
    """A provider's JSON answer with every number exact (floats as Decimal); NaN and Infinity
    (which Python's json would otherwise accept) refused."""
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=_refuse_constant)
    except ValueError as error:
        if isinstance(error, MalformedEventError):
            raise
        raise MalformedEventError(f"the answer is not JSON: {str(error)[:100]}") from None


def number(raw: object, name: str) -> Decimal:
    """A JSON number (or decimal string) as a finite Decimal within the platform's bound, of
    at most `events.MAX_FRACTION_DIGITS` decimal places (what the database can store)."""
    if isinstance(raw, bool) or not isinstance(raw, int | Decimal | str):
        raise MalformedEventError(f"{name}: expected a number, got {type(raw).__name__}")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise MalformedEventError(f"{name}: not a number: {str(raw)[:40]!r}") from None
    try:
        check_finite_amount(value)
    except AmountError as error:
        raise MalformedEventError(f"{name}: {error}") from None
    return check_digits(value, name)


def moment(value: datetime, name: str) -> datetime:
    """A UTC time between 2000 and 2200 (`events.in_utc`)."""
    return in_utc(value, name)


def epoch_seconds(raw: object, name: str) -> datetime:
    """Unix seconds (an integer or a JSON decimal) as a UTC time."""
    seconds = number(raw, name)
    try:
        at = datetime.fromtimestamp(float(seconds), tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise MalformedEventError(f"{name}: {seconds} is not a time") from None
    return moment(at, name)


def iso_time(raw: object, name: str) -> datetime:
    """An ISO 8601 time such as 2024-05-01T12:00:00.000Z."""
    if not isinstance(raw, str) or len(raw) > 40:
        raise MalformedEventError(f"{name}: expected an ISO 8601 time string")
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedEventError(f"{name}: not an ISO 8601 time: {raw!r}") from None
    return moment(parsed, name)


def observation(
    source: Source, subject: str, metric: str, at: datetime, raw: object
) -> Observation:
    """A checked observation; the value is named `<source> <subject> <metric>` in errors."""
    value = number(raw, f"{source} {subject} {metric}")
    return Observation(source, subject, metric, moment(at, f"{source} {subject} time"), value)


def routing_key(item: Observation) -> str:
    """`<kind>.<source>.<subject>`, the subject reduced to characters a routing key word takes."""
    return f"{item.kind}.{item.source}.{NOT_ROUTABLE.sub('_', item.subject)[:100]}"


def to_message(item: Observation) -> dict[str, str]:
    """The JSON body published: decimals as strings, times in ISO 8601 UTC."""
    return {
        "type": "observation", "kind": item.kind, "source": item.source,
        "subject": item.subject, "metric": item.metric,
        "observed_at": item.observed_at.isoformat(), "value": format(item.value, "f"),
    }  # fmt: skip
