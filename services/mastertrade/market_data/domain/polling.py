"""When a collector polls next, pure: after a success, a failure, or a provider's "slow down".

A provider that answers 429 says when to come back: `Retry-After` (seconds or an HTTP date;
Reddit, LunarCrush, Glassnode, Moralis), Twitter's `x-rate-limit-reset` (the Unix second the
window reopens) or Reddit's `x-ratelimit-reset` (seconds until it does). That wait is honoured
as given (never shortened). Other failures back off exponentially with jitter, up to a ceiling.
"""

from __future__ import annotations

from collections.abc import Mapping
from email.utils import parsedate_to_datetime

DEFAULT_RATE_LIMIT_WAIT = 60.0
LONGEST_WAIT = 86_400.0
FIRST_BACKOFF = 5.0


def _seconds(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    # up to a Unix time in the year 5000 (Twitter's header is one); NaN fails both comparisons
    return value if 0 <= value <= 1e11 else None


def retry_after_seconds(headers: Mapping[str, str], now: float) -> float:
    """How long a 429's headers ask to wait, in seconds (a minute when they do not say)."""
    lowered = {key.lower(): value.strip() for key, value in headers.items()}
    waits = []
    if "retry-after" in lowered:
        text = lowered["retry-after"]
        seconds = _seconds(text)
        if seconds is None:
            try:
                seconds = parsedate_to_datetime(text).timestamp() - now
            except (TypeError, ValueError):
                seconds = None
        if seconds is not None:
            waits.append(seconds)
    if (reset := _seconds(lowered.get("x-rate-limit-reset", ""))) is not None:
        waits.append(reset - now)  # Twitter: the Unix second the window reopens
    if (left := _seconds(lowered.get("x-ratelimit-reset", ""))) is not None:
        waits.append(left)  # Reddit: seconds until the window reopens
    if not waits:
        return DEFAULT_RATE_LIMIT_WAIT
    return min(LONGEST_WAIT, max(1.0, *waits))


def backoff_seconds(failures: int, ceiling: float, jitter: float) -> float:
    """The pause after `failures` failures in a row (>= 1): 5 s doubling up to `ceiling`,
    scaled by `jitter` in [0.5, 1] so that replicas do not retry in step."""
    base = min(ceiling, FIRST_BACKOFF * 2.0 ** min(failures - 1, 30))
    return base * min(1.0, max(0.5, jitter))
