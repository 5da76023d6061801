"""Retry delays and per-channel rate limits of deliveries (pure, clock passed in)."""

from __future__ import annotations

from collections import deque


def retry_delay(attempt: int, base: float, cap: float, retry_after: float | None) -> float:
    """Seconds to wait before attempt `attempt + 1`: the server's retry_after when it gave one,
    else base * 2^(attempt-1), never above `cap`."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), cap)
    return float(min(base * 2.0 ** max(attempt - 1, 0), cap))


class RateLimiter:
    """At most `per_minute` sends per channel in any sliding 60 s window, except that an urgent
    send (a critical alert) always goes: a burst of fills must never silence a tripped breaker.
    It still counts, so the sends after it wait their turn."""

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
