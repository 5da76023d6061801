"""Retry delays and per-channel rate limits of deliveries (pure, clock passed in), the digest
of what a rate limit held back, and the error text a delivery records."""

from __future__ import annotations

import re
from collections import Counter, deque

from mastertrade.alerts.domain.report import DAILY_REPORT_KIND
from mastertrade.core.messages import AlertEvent

# the C0 control characters but tab and newline: PostgreSQL refuses a NUL in TEXT (the outcome
# would not be recorded, and the delivery, left pending, sent again at every claim), and the
# others (a terminal's colours, a bell, a carriage return) only garble the history
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f]")
# a lone surrogate: no UTF-8 for it, so PostgreSQL's driver refuses the whole text (the same
# outcome as a NUL). Python decodes a byte that is not UTF-8 into one with surrogateescape, as
# aiosmtplib does an SMTP server's Latin-1 answer ("Empf\xe4nger unbekannt")
SURROGATE = re.compile("[\ud800-\udfff]")


def _escaped(found: re.Match[str]) -> str:
    code = ord(found[0])
    # a byte surrogateescape kept (U+DC80..U+DCFF) is shown as that byte, any other as itself
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def clean_error(text: str | None) -> str | None:
    """`text` (a channel's error, often its server's answer) fit to store and to read: without
    control characters, and UTF-8 whatever bytes the server sent."""
    return None if text is None else SURROGATE.sub(_escaped, CONTROL.sub("", text))


def join_notes(*notes: str | None) -> str | None:
    """What a delivery's attempts said, one after the other; None when they said nothing."""
    said = [note for note in notes if note]
    return "; ".join(said) if said else None


def retry_delay(
    attempt: int, base: float, cap: float, retry_after: float | None, server_cap: float
) -> float:
    """Seconds to wait before attempt `attempt + 1`: the server's retry_after when it gave one,
    up to `server_cap`; else base * 2^(attempt-1), up to `cap`. A server's own wait has a cap of
    its own, longer: Telegram bans a bot for minutes after a flood, and a retry sent before the
    ban ends is refused again and spends an attempt."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), server_cap)
    # the exponent held where the cap is reached anyway: 2.0 ** 1024 would overflow
    return float(min(base * 2.0 ** min(max(attempt - 1, 0), 64), cap))


HELD_BACK_KIND = "alerts_held_back"
"""The kind of the digest that tells a channel's readers what its rate limit held back."""
WINDOW_SECONDS = 60.0
"""The rate limit's sliding window, and the least time between two digests of a channel."""


def is_urgent(alert: AlertEvent) -> bool:
    """Does `alert` go out over its channels' rate limits? A critical one does (a burst of fills
    must never silence a tripped breaker), and so does the daily report: it is written once,
    when it is due, so one held back would never be sent."""
    return alert.severity == "critical" or alert.kind == DAILY_REPORT_KIND


def admit(
    limiter: RateLimiter, channel: str, now: float, alert: AlertEvent, taken_over: bool = False
) -> bool:
    """Does `alert` go out on `channel` now? The digest of what was held back (adapters/digests.py)
    always, and outside the window's count: it is one a window at most, and counted it would
    hold back the alert that brings on the next digest. An urgent alert always, counted, and so
    does a delivery `taken_over` from another replica (its lease ran out, or was released at a
    shutdown): it was admitted there, and after an outage a replica takes over many at once;
    any other while the window has room."""
    if alert.kind == HELD_BACK_KIND:
        return True
    return limiter.allow(channel, now, taken_over or is_urgent(alert))


class RateLimiter:
    """At most `per_minute` sends per channel in any sliding 60 s window, except that an urgent
    send (`is_urgent`) always goes. It still counts, so the sends after it wait their turn."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._sent: dict[str, deque[float]] = {}

    def allow(self, channel: str, now: float, urgent: bool = False) -> bool:
        window = self._sent.setdefault(channel, deque())
        while window and now - window[0] >= WINDOW_SECONDS:
            window.popleft()
        if len(window) >= self.per_minute and not urgent:
            return False
        window.append(now)
        return True


def held_back_alert(channel: str, kinds: Counter[str], per_minute: int) -> AlertEvent:
    """The digest telling `channel`'s readers what its rate limit held back."""
    count = sum(kinds.values())
    alerts = "alert" if count == 1 else "alerts"
    listed = ", ".join(f"{kind} x{n}" for kind, n in sorted(kinds.items()))
    return AlertEvent(
        kind=HELD_BACK_KIND, severity="warning", source="alert_system",
        title=f"{count} {alerts} not sent on {channel}: over its rate limit",
        message=f"{channel} sends at most {per_minute} alerts a minute "
        f"(ALERT_RATE_LIMIT_PER_MINUTE); these were recorded, not sent: {listed}. Each is in "
        f"the alert history (alert_system's GET /api/v1/alerts), its {channel} delivery "
        "rate_limited. Critical alerts and the daily report always go.",
    )  # fmt: skip
