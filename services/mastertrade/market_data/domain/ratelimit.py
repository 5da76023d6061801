"""Pacing REST calls to Binance: request weight per minute, Retry-After, reconnect backoff.

Binance counts request weight per IP in fixed one-minute windows and reports the running total
in `X-MBX-USED-WEIGHT-1M`. Going over answers 429 with Retry-After; calling again during that
pause answers 418 and bans the IP for minutes to days. So the budget stops *before* the limit
(waiting for the next window), and after a 429 nothing is sent until Retry-After has passed.
"""

from __future__ import annotations

import random

WINDOW_SECONDS = 60.0
WINDOW_MARGIN = 0.25  # seconds past the window's turn, for clock skew with Binance


class WeightBudget:
    """The used weight of the current minute and a pause imposed by a 429."""

    def __init__(self, limit: int) -> None:
        if limit <= 0:
            raise ValueError("the weight limit must be positive")
        self.limit = limit
        self.used = 0
        self._window = -1
        self.paused_until = 0.0

    def _roll(self, now: float) -> None:
        window = int(now // WINDOW_SECONDS)
        if window != self._window:
            self._window = window
            self.used = 0

    def wait_before(self, cost: int, now: float) -> float:
        """Seconds to wait before spending `cost` (0 when it fits now)."""
        if now < self.paused_until:
            return self.paused_until - now
        self._roll(now)
        if self.used + cost <= self.limit:
            return 0.0
        return (self._window + 1) * WINDOW_SECONDS - now + WINDOW_MARGIN

    def spend(self, cost: int, now: float) -> None:
        """Count a request about to be sent (the answer's header corrects it)."""
        self._roll(now)
        self.used += cost

    def report(self, used: int, now: float) -> None:
        """Binance's own count from X-MBX-USED-WEIGHT-1M."""
        self._roll(now)
        self.used = max(0, used)

    def pause(self, seconds: float, now: float) -> None:
        """Honour a Retry-After: no request before `now + seconds`."""
        self.paused_until = max(self.paused_until, now + max(0.0, seconds))


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**attempt)]."""
    return rng.uniform(0.0, min(cap, base * 2 ** min(attempt, 30)))
