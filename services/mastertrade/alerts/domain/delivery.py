"""Retry delays and per-channel rate limits of deliveries (pure, clock passed in), and the
error text a delivery records."""

from __future__ import annotations

import re
from collections import deque

from mastertrade.alerts.domain.report import DAILY_REPORT_KIND
from mastertrade.core.messages import AlertEvent

# the C0 control characters but tab and newline: PostgreSQL refuses a NUL in TEXT (the outcome
# would not be recorded, and the delivery, left pending, sent again at every claim), and the
# others (a terminal's colours, a bell, a carriage return) only garble the history
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f]")


def clean_error(text: str | None) -> str | None:
    """`text` (a channel's error, often its server's answer) fit to store and to read."""
    return None if text is None else CONTROL.sub("", text)


def retry_delay(attempt: int, base: float, cap: float, retry_after: float | None) -> float:
    """Seconds to wait before attempt `attempt + 1`: the server's retry_after when it gave one,
    else base * 2^(attempt-1), never above `cap`."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), cap)
    return float(min(base * 2.0 ** max(attempt - 1, 0), cap))


def is_urgent(alert: AlertEvent) -> bool:
    """Does `alert` go out over its channels' rate limits? A critical one does (a burst of fills
    must never silence a tripped breaker), and so does the daily report: it is written once,
    when it is due, so one held back would never be sent."""
    return alert.severity == "critical" or alert.kind == DAILY_REPORT_KIND


class RateLimiter:
    """At most `per_minute` sends per channel in any sliding 60 s window, except that an urgent
    send (`is_urgent`) always goes. It still counts, so the sends after it wait their turn."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._sent: dict[str, deque[float]] = {}

    def allow(self, channel: str, now: float, urgent: bool = False) -> bool:
        window = self._sent.setdefault(channel, deque())
        while window and now - window[0] >= 60.0:
            window.popleft()
        if len(window) >= self.per_minute and not urgent:
            return False
        window.append(now)
        return True
